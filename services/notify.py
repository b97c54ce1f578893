"""Deliver monitors' notifications through an outbox, so none is lost and none is sent twice.

A monitor that changes state enqueues one Notification row per channel, in the same
transaction as the change (`enqueue`); its dedupe key, (monitor, transition, channel), makes a
state change enqueued twice (two replicas, a retried tick) one message. `dispatch` sends what is
due, oldest first: it claims a row (attempts + 1, next attempt pushed a lease ahead) in a
committed transaction of its own before sending, so a crash mid-send retries after the lease
and two dispatchers never send one row at once. A failure retries with exponential backoff
(5 s, 10 s, ... at most 15 min) up to MAX_ATTEMPTS, about an hour; then the row is 'failed'.
Rows stay in the database, so a restart or a channel that is down loses nothing. Delivery is
at least once: a crash after a receiver took a message, before we noted it, sends it again,
with the same X-Prompt-Analytics-Delivery header (receivers dedupe on it).

Channels: a JSON webhook signed with HMAC-SHA256, a Slack incoming webhook, or email (SMTP_URL).

Receiving the webhook
---------------------
Each notification is one POST of its JSON payload, with these headers:

    Content-Type: application/json
    X-Prompt-Analytics-Event: firing | resolved | test
    X-Prompt-Analytics-Delivery: <key of the notification, the same on every retry>
    X-Prompt-Analytics-Timestamp: <Unix seconds when this attempt was sent>
    X-Prompt-Analytics-Signature: sha256=<hex>

<hex> is HMAC-SHA256, keyed by the channel's secret, over the timestamp, a dot, and the raw
body: ``f"{timestamp}.".encode() + body``. Check it on the raw bytes before parsing them, in
constant time, and refuse a timestamp more than 5 minutes away from your clock (a replay):

    import hashlib, hmac, time

    def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
        mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
        fresh = abs(time.time() - int(timestamp)) <= 300
        return fresh and hmac.compare_digest("sha256=" + mac.hexdigest(), signature)

(`verify_signature` here does the same.) Answer any 2xx to accept. Anything else is retried,
except 410 Gone, which gives up at once. The payload, raw numbers in the metric's unit
(latencies in ms, rates and relative changes as fractions of 1, costs in USD):

    {"event": "firing" | "resolved" | "test", "monitor": {"id", "name"}, "project", "prompt",
     "metric", "unit", "rule", "candidate": {"label", "value", "n"},
     "baseline": {"label", "value", "n"}, "delta", "relative_delta",
     "interval": {"low", "high", "level", "method"}, "state", "previous_state", "at", "link"}

Any value may be null when it is unknown.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import os
import random
import smtplib
import ssl
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any, Literal, cast, get_args
from urllib.parse import unquote, urlsplit

import requests
from sqlalchemy import CursorResult, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from components.formats import FORMATTERS, NO_VALUE, Unit, fmt_count, fmt_delta, fmt_pct, fmt_value
from db.models import Channel, Notification, utcnow
from services import secret_box
from settings import Settings

logger = logging.getLogger(__name__)

Event = Literal["firing", "resolved", "test"]
EVENTS: tuple[str, ...] = get_args(Event)
ChannelKind = Literal["webhook", "slack", "email"]
CHANNEL_KINDS: tuple[str, ...] = get_args(ChannelKind)

MAX_ATTEMPTS = 12
# Longer than the slowest send (3 s connect + 10 s read, or SMTP's 10 s per step, a few steps):
# a row whose lease ran out was abandoned by a crashed dispatcher, not still being sent.
LEASE = timedelta(seconds=60)
BACKOFF_BASE_S = 5.0
BACKOFF_CAP_S = 15 * 60.0
# Up to 10 % less than the nominal delay, so rows that failed together do not retry together.
BACKOFF_JITTER = 0.1
HTTP_TIMEOUT_S = (3.0, 10.0)  # (connect, read)
SMTP_TIMEOUT_S = 10.0
SIGNATURE_TOLERANCE_S = 300
MAX_ERROR_CHARS = 300
MIN_SIGNING_SECRET = 16
MAX_DEDUPE_KEY = 200  # Notification.dedupe_key's length
SLACK_SECTION_CHARS = 3000  # Slack refuses a longer section text
USER_AGENT = "prompt-analytics-notify/1"
EVENT_HEADER = "X-Prompt-Analytics-Event"
DELIVERY_HEADER = "X-Prompt-Analytics-Delivery"
TIMESTAMP_HEADER = "X-Prompt-Analytics-Timestamp"
SIGNATURE_HEADER = "X-Prompt-Analytics-Signature"
SIGNATURE_PREFIX = "sha256="
EVENT_WORD = {"firing": "FIRING", "resolved": "RESOLVED", "test": "TEST"}
SLACK_EMOJI = {"firing": ":rotating_light:", "resolved": ":white_check_mark:", "test": ":wave:"}


class ChannelError(ValueError):
    """A channel's kind, target or secret cannot be used; the message says how to fix it."""


class DeliveryError(Exception):
    """One attempt to deliver failed; the message is short and holds no secret."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class DispatchResult:
    """What one dispatch did: rows sent, to be retried, given up, and left for the next run."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    # Due rows of a channel that already failed in this run: tried next run, not counted as an
    # attempt, so one channel that is down does not spend a run on its timeouts.
    deferred: int = 0


@dataclass(frozen=True)
class _Claim:
    """A notification this dispatcher holds the lease of, with its channel."""

    id: int
    dedupe_key: str
    event: str
    payload: str
    attempts: int
    channel_id: int
    kind: str
    target: str
    secret: str = field(repr=False)  # sealed, but still kept out of logs


# Channels ----------------------------------------------------------------------------------------


def _check_url(url: str, message: str) -> None:
    """Refuse anything but an absolute http(s) URL with a host."""
    # http is allowed as well as https: receivers on loopback or a private network (and the
    # tests) often have no TLS, and the signature still proves who sent the body.
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or ord(c) < 32 for c in url)
    ):
        raise ChannelError(message)
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ChannelError(f"{message} (its port is not a number from 0 to 65535)") from None


def email_addresses(target: str) -> list[str]:
    """Return the comma-separated addresses of an email channel, each checked."""
    addresses = [a.strip() for a in target.split(",") if a.strip()]
    if not addresses:
        raise ChannelError("Give at least one email address (several: separate them by commas).")
    for address in addresses:
        try:
            parsed = Address(addr_spec=address)
        except (ValueError, IndexError, HeaderParseError):
            parsed = None
        if parsed is None or not parsed.domain or parsed.addr_spec != address:
            raise ChannelError(f"{address!r} is not an email address such as ana@example.com.")
    return addresses


def validate_channel(kind: str, target: str, secret: str) -> None:
    """Check a channel as entered (the secret in plain or as env:NAME); raise ChannelError."""
    if kind not in CHANNEL_KINDS:
        raise ChannelError(f"Unknown channel kind {kind!r}; use webhook, slack or email.")
    try:
        reference = secret_box.reference_name(secret)
    except secret_box.SecretError as exc:
        raise ChannelError(str(exc)) from None
    if kind == "webhook":
        _check_url(target, "A webhook needs an http(s) URL, such as https://example.com/hook.")
        if reference is None and len(secret) < MIN_SIGNING_SECRET:
            raise ChannelError(
                f"A webhook needs a signing secret of at least {MIN_SIGNING_SECRET} characters "
                "(or env:NAME): receivers check X-Prompt-Analytics-Signature with it."
            )
    elif kind == "slack":
        # An env:NAME reference is read at send time and checked then.
        if reference is None:
            _check_url(
                secret,
                "A Slack channel needs its incoming-webhook URL as the secret "
                "(https://hooks.slack.com/services/...), or env:NAME; http(s) URLs are accepted.",
            )
    else:
        email_addresses(target)


# Outbox ------------------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> datetime:
    """Return an aware UTC time (naive counts as UTC): SQLite compares stored UTC text."""
    if moment is None:
        return utcnow()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _json_ready(value: Any) -> Any:
    """Make a payload JSON: NaN and infinities become null (unknown), times ISO 8601."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def serialize_payload(payload: Mapping[str, Any]) -> str:
    """Return the payload's JSON as it is stored, signed and sent (keys sorted)."""
    return json.dumps(_json_ready(payload), sort_keys=True, separators=(",", ":"), allow_nan=False)


def enqueue(
    db: Session,
    *,
    channel_id: int,
    dedupe_key: str,
    event: str,
    payload: Mapping[str, Any],
    monitor_id: int | None,
    now: datetime | None = None,
) -> bool:
    """Add a pending notification unless its dedupe key exists; tell whether it is new.

    Runs in the caller's transaction: the state change and its notifications commit together.
    """
    if event not in EVENTS:
        raise ValueError(f"Unknown notification event {event!r}; use one of {', '.join(EVENTS)}.")
    if not dedupe_key or len(dedupe_key) > MAX_DEDUPE_KEY:
        raise ValueError(f"A dedupe key has 1 to {MAX_DEDUPE_KEY} characters.")
    moment = _utc(now)
    # fact_writer.upsert cannot say whether its row was new; RETURNING can (a skipped row
    # returns nothing), on PostgreSQL and SQLite 3.35+ alike.
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Notification)
        .values(
            dedupe_key=dedupe_key,
            channel_id=channel_id,
            monitor_id=monitor_id,
            event=event,
            payload=serialize_payload(payload),
            status="pending",
            attempts=0,
            next_attempt_at=moment,
            created_at=moment,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(Notification.id)
    )
    return db.execute(statement).scalar_one_or_none() is not None


def backoff(attempts: int) -> timedelta:
    """Return the wait after the attempts-th failure: 5 s doubling, at most 15 min, jittered."""
    nominal = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(max(attempts - 1, 0), 20))
    return timedelta(seconds=nominal * (1 - random.uniform(0, BACKOFF_JITTER)))


def _rowcount(result: Any) -> int:
    """Return how many rows an UPDATE changed."""
    return cast(CursorResult[Any], result).rowcount


def _claim(
    sessions: sessionmaker[Session], notification_id: int, moment: datetime
) -> _Claim | None:
    """Take the lease of a due row, committed before sending; None if another dispatcher has it."""
    with sessions.begin() as db:
        # The UPDATE comes first in its transaction: on SQLite it takes the write lock before
        # reading, so a second dispatcher waits, then sees the new next_attempt_at and skips.
        taken = _rowcount(
            db.execute(
                update(Notification)
                .where(
                    Notification.id == notification_id,
                    Notification.status == "pending",
                    Notification.next_attempt_at <= moment,
                )
                .values(attempts=Notification.attempts + 1, next_attempt_at=moment + LEASE)
                .execution_options(synchronize_session=False)
            )
        )
        if taken != 1:
            return None
        row = db.execute(
            select(
                Notification.id,
                Notification.dedupe_key,
                Notification.event,
                Notification.payload,
                Notification.attempts,
                Channel.id,
                Channel.kind,
                Channel.target,
                Channel.secret,
            )
            .join(Channel, Channel.id == Notification.channel_id)
            .where(Notification.id == notification_id)
        ).one()
        return _Claim(*row)


def _record_sent(sessions: sessionmaker[Session], claim: _Claim, moment: datetime) -> None:
    """Mark a claimed row sent."""
    with sessions.begin() as db:
        db.execute(
            update(Notification)
            .where(Notification.id == claim.id, Notification.status == "pending")
            .values(status="sent", sent_at=moment, last_error=None)
            .execution_options(synchronize_session=False)
        )


def _record_failure(
    sessions: sessionmaker[Session], claim: _Claim, error: DeliveryError, moment: datetime
) -> Literal["retried", "failed"]:
    """Note a failed attempt: retry after a backoff, or give up after the last attempt."""
    give_up = error.permanent or claim.attempts >= MAX_ATTEMPTS
    message = str(error)[:MAX_ERROR_CHARS]
    values: dict[str, Any] = {"last_error": message}
    if give_up:
        values["status"] = "failed"
    else:
        values["next_attempt_at"] = moment + backoff(claim.attempts)
    with sessions.begin() as db:
        # Only while the lease is still ours: after a long stall another dispatcher may have
        # taken the row again, and its outcome is the newer one.
        db.execute(
            update(Notification)
            .where(
                Notification.id == claim.id,
                Notification.status == "pending",
                Notification.attempts == claim.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    logger.warning(
        "notification %s to channel %s: attempt %s failed%s: %s",
        claim.id,
        claim.channel_id,
        claim.attempts,
        ", giving up" if give_up else "",
        message,
    )
    return "failed" if give_up else "retried"


def dispatch(
    sessions: sessionmaker[Session],
    settings: Settings,
    *,
    now: datetime | None = None,
    limit: int = 100,
    environ: Mapping[str, str] | None = None,
) -> DispatchResult:
    """Send the pending notifications that are due, oldest first; return what happened."""
    # A given `now` stands still (tests); otherwise each claim reads the clock, so a long run
    # never leases a row into the past.
    fixed = None if now is None else _utc(now)

    def clock() -> datetime:
        return fixed or utcnow()

    env = os.environ if environ is None else environ
    with sessions() as db:
        due = db.execute(
            select(Notification.id, Notification.channel_id)
            .where(Notification.status == "pending", Notification.next_attempt_at <= clock())
            .order_by(Notification.created_at, Notification.id)
            .limit(limit)
        ).all()
    counts: Counter[str] = Counter()
    failing: set[int] = set()
    # One Session pools connections for the run. It never retries (requests' adapter has
    # max_retries=0): the outbox is the retry, with its backoff, and it survives restarts. It
    # keeps trust_env, since reaching Slack or a webhook may need the machine's HTTPS_PROXY.
    with requests.Session() as http:
        http.headers["User-Agent"] = USER_AGENT
        for notification_id, channel_id in due:
            if channel_id in failing:
                counts["deferred"] += 1
                continue
            claim = _claim(sessions, notification_id, clock())
            if claim is None:
                continue  # another dispatcher holds it, or it was sent meanwhile
            try:
                _deliver(claim, settings, http, env)
            except DeliveryError as exc:
                counts[_record_failure(sessions, claim, exc, clock())] += 1
                failing.add(channel_id)
            except Exception as exc:  # a bug must not stop the outbox: note it, retry later
                logger.exception("notification %s could not be delivered", claim.id)
                error = DeliveryError(f"internal error ({type(exc).__name__}); see the server log")
                counts[_record_failure(sessions, claim, error, clock())] += 1
            else:
                _record_sent(sessions, claim, clock())
                counts["sent"] += 1
                logger.info("notification %s sent to channel %s", claim.id, channel_id)
    return DispatchResult(**counts)


# Sending -----------------------------------------------------------------------------------------


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    """Return the signature header's value: sha256=<hex HMAC of "timestamp." + body>."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    header: str,
    *,
    now: float | None = None,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """Tell whether a webhook's signature header matches its body and its time is recent."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False  # a replay of an old, validly signed body
    return hmac.compare_digest(sign(secret, sent_at, body), header)


def _scrub(text: str, secrets: Iterable[str]) -> str:
    """Blank out any secret that found its way into an error message."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "[secret]")
    return text


def _snippet(response: requests.Response) -> str:
    """Return the start of an error answer, on one line, read no further than needed."""
    try:
        head = next(response.iter_content(200), b"")
    except requests.RequestException:
        return ""
    text = head.decode("utf-8", "replace") if isinstance(head, bytes) else str(head)
    return " ".join(text.split())[:200]


def _post(http: requests.Session, url: str, body: bytes, headers: Mapping[str, str]) -> None:
    """POST a body; return on 2xx, else raise DeliveryError naming only the host."""
    host = urlsplit(url).hostname or "the receiver"
    try:
        # No redirects: a 3xx would move a signed POST elsewhere (or turn it into a GET), so a
        # receiver must be configured at its final address. stream: read an error's start only.
        with http.post(
            url,
            data=body,
            headers=dict(headers),
            timeout=HTTP_TIMEOUT_S,
            allow_redirects=False,
            stream=True,
        ) as response:
            if 200 <= response.status_code < 300:
                return
            status, reason, snippet = response.status_code, response.reason, _snippet(response)
    # The exceptions' own texts name the full URL, which for Slack is the secret: say less.
    except requests.ConnectTimeout:
        raise DeliveryError(f"could not connect to {host} within {HTTP_TIMEOUT_S[0]:g} s") from None
    except requests.ReadTimeout:
        raise DeliveryError(f"{host} did not answer within {HTTP_TIMEOUT_S[1]:g} s") from None
    except requests.exceptions.SSLError:
        raise DeliveryError(f"the TLS handshake with {host} failed") from None
    except requests.ConnectionError:
        raise DeliveryError(f"could not connect to {host}") from None
    except requests.RequestException as exc:
        raise DeliveryError(f"the request to {host} failed ({type(exc).__name__})") from None
    # Any other answer is retried: a 5xx or 429 passes, and a 4xx is often a receiver being
    # redeployed or a secret being rotated, which the next hour of retries outlives. 410 Gone
    # alone says the endpoint will never come back (Slack: channel archived or deleted).
    detail = f": {snippet}" if snippet else ""
    raise DeliveryError(f"{host} answered HTTP {status} {reason}{detail}", permanent=status == 410)


def _unsealed(claim: _Claim, settings: Settings, environ: Mapping[str, str]) -> str:
    """Return the channel's plain secret, or raise DeliveryError saying why not."""
    try:
        return secret_box.unseal(claim.secret, settings.secret_key, environ)
    except secret_box.SecretError as exc:
        raise DeliveryError(str(exc)) from None


def _send_webhook(
    claim: _Claim, settings: Settings, http: requests.Session, environ: Mapping[str, str]
) -> None:
    """POST the stored payload, signed with the channel's secret."""
    try:
        _check_url(claim.target, "The webhook's URL is not an http(s) URL; edit the channel.")
    except ChannelError as exc:
        raise DeliveryError(str(exc)) from None
    secret = _unsealed(claim, settings, environ)
    if not secret:
        raise DeliveryError("The webhook channel has no signing secret; edit the channel.")
    body = claim.payload.encode()
    # The receiver compares this with its own clock, so it is the real time even when a test
    # dispatches at a made-up `now`.
    timestamp = str(int(time.time()))
    _post(
        http,
        claim.target,
        body,
        {
            "Content-Type": "application/json",
            EVENT_HEADER: claim.event,
            DELIVERY_HEADER: claim.dedupe_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        },
    )


def _send_slack(
    claim: _Claim, settings: Settings, http: requests.Session, environ: Mapping[str, str]
) -> None:
    """POST the Slack message to the channel's incoming-webhook URL (its secret)."""
    url = _unsealed(claim, settings, environ)
    try:
        _check_url(url, "The Slack incoming-webhook URL is not an http(s) URL; edit the channel.")
    except ChannelError as exc:
        raise DeliveryError(str(exc)) from None
    body = json.dumps(slack_message(json.loads(claim.payload))).encode()
    try:
        _post(http, url, body, {"Content-Type": "application/json"})
    except DeliveryError as exc:
        # Slack never echoes the URL, but a proxy's error page might: blank it out.
        raise DeliveryError(
            _scrub(str(exc), [url, urlsplit(url).path]), permanent=exc.permanent
        ) from None


def _smtp_error(exc: Exception, where: str) -> DeliveryError:
    """Describe an SMTP failure in a few words."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"{where} refused the login in SMTP_URL ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(sorted(exc.recipients))
        return DeliveryError(f"{where} refused every recipient: {refused}")
    if isinstance(exc, smtplib.SMTPResponseException):
        text = (
            exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
        )
        return DeliveryError(f"{where} answered {exc.smtp_code} {' '.join(text.split())}")
    if isinstance(exc, smtplib.SMTPException):
        return DeliveryError(f"SMTP error with {where} ({type(exc).__name__}: {exc})")
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return DeliveryError(f"could not talk to {where} ({reason})")


def _message_id(dedupe_key: str, sender: str) -> str:
    """Return a Message-ID that is the same on every retry, so mail systems can dedupe."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "prompt-analytics.invalid"
    return f"<{hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]}@{domain}>"


def build_email(
    payload: Mapping[str, Any], *, sender: str, to: list[str], dedupe_key: str, event: str
) -> EmailMessage:
    """Build the email of a notification: subject and plain-text body from the payload."""
    subject, text = render(payload)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = _message_id(dedupe_key, sender)
    message[EVENT_HEADER] = event
    message[DELIVERY_HEADER] = dedupe_key
    message.set_content(text)
    return message


def _send_email(claim: _Claim, settings: Settings) -> None:
    """Send the notification by SMTP to the channel's addresses."""
    if not settings.smtp_url:
        raise DeliveryError("SMTP_URL is not set, so email channels cannot send; set it.")
    if not settings.smtp_from:
        raise DeliveryError("SMTP_FROM is not set; set the sender address of monitors' email.")
    try:
        to = email_addresses(claim.target)
    except ChannelError as exc:
        raise DeliveryError(str(exc)) from None
    message = build_email(
        json.loads(claim.payload),
        sender=settings.smtp_from,
        to=to,
        dedupe_key=claim.dedupe_key,
        event=claim.event,
    )
    parts = urlsplit(settings.smtp_url)
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError:
        raise DeliveryError("SMTP_URL's port is not a number from 0 to 65535.") from None
    host = parts.hostname or ""
    where = f"the SMTP server {host}:{port}"
    user = unquote(parts.username or "")
    password = unquote(parts.password or "")
    context = ssl.create_default_context()
    try:
        client: smtplib.SMTP
        if parts.scheme == "smtps":
            client = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT_S, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S)
        with client:
            client.ehlo()
            if parts.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=context)
                client.ehlo()
            elif parts.scheme == "smtp" and user:
                raise DeliveryError(
                    f"{where} offers no STARTTLS; refusing to send SMTP_URL's password in "
                    "clear text (use smtps:// or a server that offers STARTTLS)."
                )
            if user:
                client.login(user, password)
            refused = client.send_message(message)
    except DeliveryError:
        raise
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(_scrub(str(_smtp_error(exc, where)), [password])) from None
    if refused:
        # The others got it: retrying would send them a second copy.
        logger.warning(
            "notification %s: %s refused %s", claim.id, where, ", ".join(sorted(refused))
        )


def _deliver(
    claim: _Claim, settings: Settings, http: requests.Session, environ: Mapping[str, str]
) -> None:
    """Send one claimed notification through its channel, or raise DeliveryError."""
    if claim.kind == "webhook":
        _send_webhook(claim, settings, http, environ)
    elif claim.kind == "slack":
        _send_slack(claim, settings, http, environ)
    elif claim.kind == "email":
        _send_email(claim, settings)
    else:
        raise DeliveryError(f"unknown channel kind {claim.kind!r}", permanent=True)


# Rendering ---------------------------------------------------------------------------------------


def _one_line(value: Any, default: str = NO_VALUE) -> str:
    """Return a value as text on one line (no header or mrkdwn line breaks sneak in)."""
    if value is None or value == "":
        return default
    return " ".join(str(value).split())


def _number(value: Any) -> float | None:
    """Return a finite number, or None for null and anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mapping(payload: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """Return a nested object of the payload, or an empty one."""
    value = payload.get(key)
    return value if isinstance(value, Mapping) else {}


def _unit(payload: Mapping[str, Any]) -> Unit:
    """Return the payload's unit as the formatters know it ('number' when unknown)."""
    unit = payload.get("unit")
    return cast(Unit, unit) if unit in FORMATTERS else "number"


def _signed_fraction(value: float | None) -> str:
    """Show a relative change as a signed percentage: +44.9%."""
    if value is None:
        return NO_VALUE
    text = fmt_pct(abs(value))
    if not any(c in "123456789" for c in text):
        return text
    return ("+" if value > 0 else "-") + text


def _at(value: Any) -> str:
    """Show an ISO 8601 time as UTC to the minute, or as given if it does not parse."""
    if not isinstance(value, str):
        return NO_VALUE
    try:
        return _utc(datetime.fromisoformat(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return _one_line(value)


@dataclass(frozen=True)
class _Facts:
    """A payload's pieces, each formatted for people."""

    event: str
    monitor: str
    prompt: str
    project: str | None
    metric: str
    rule: str
    candidate_label: str
    candidate: str
    candidate_n: str
    baseline_label: str
    baseline: str
    baseline_n: str
    change: str
    interval: str | None
    state: str
    previous_state: str | None
    at: str
    link: str | None
    channel: str


def _facts(payload: Mapping[str, Any]) -> _Facts:
    """Format a payload's values in their unit; unknown ones read as a dash."""
    unit = _unit(payload)
    candidate, baseline = _mapping(payload, "candidate"), _mapping(payload, "baseline")
    interval = _mapping(payload, "interval")
    change = fmt_delta(_number(payload.get("delta")), unit)
    relative = _number(payload.get("relative_delta"))
    if relative is not None:
        change += f" ({_signed_fraction(relative)})"
    low, high = _number(interval.get("low")), _number(interval.get("high"))
    interval_text = None
    if low is not None or high is not None:
        level = _number(interval.get("level")) or 0.95
        method = _one_line(interval.get("method"), "")
        interval_text = (
            f"{level * 100:g}% interval of the change: {fmt_delta(low, unit)} to "
            f"{fmt_delta(high, unit)}" + (f" ({method})" if method else "")
        )
    event = str(payload.get("event", ""))
    return _Facts(
        event=event if event in EVENTS else "firing",
        monitor=_one_line(_mapping(payload, "monitor").get("name"), "monitor"),
        prompt=_one_line(payload.get("prompt")),
        project=_one_line(payload["project"]) if payload.get("project") else None,
        metric=_one_line(payload.get("metric"), "metric"),
        rule=_one_line(payload.get("rule")),
        candidate_label=_one_line(candidate.get("label"), "candidate"),
        candidate=fmt_value(_number(candidate.get("value")), unit),
        candidate_n=fmt_count(_number(candidate.get("n"))),
        baseline_label=_one_line(baseline.get("label"), "baseline"),
        baseline=fmt_value(_number(baseline.get("value")), unit),
        baseline_n=fmt_count(_number(baseline.get("n"))),
        change=change,
        interval=interval_text,
        state=_one_line(payload.get("state"), event),
        previous_state=_one_line(payload["previous_state"])
        if payload.get("previous_state")
        else None,
        at=_at(payload.get("at")),
        link=_one_line(payload["link"]) if payload.get("link") else None,
        channel=_one_line(payload.get("channel"), "this channel"),
    )


def _subject(facts: _Facts) -> str:
    """Return the one-line summary: the email's subject and Slack's notification text."""
    word = EVENT_WORD[facts.event]
    if facts.event == "test":
        return f"[{word}] Prompt Analytics test notification for {facts.channel}"
    return (
        f"[{word}] {facts.monitor}: {facts.metric} {facts.candidate} vs {facts.baseline} "
        f"({facts.prompt})"
    )[:250]


def _headline(facts: _Facts) -> str:
    """Say in a sentence what happened."""
    if facts.event == "test":
        return (
            f"This is a test notification for {facts.channel}. The numbers below are examples; "
            "no monitor fired."
        )
    if facts.event == "resolved":
        return f"{facts.monitor} has resolved: {facts.metric} of {facts.prompt} is back in bounds."
    return f"{facts.monitor} is firing: {facts.metric} of {facts.prompt} got worse."


def render(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Return a notification's subject and plain text, numbers formatted for people."""
    facts = _facts(payload)
    prompt = facts.prompt + (f" (project {facts.project})" if facts.project else "")
    state = facts.state + (f" (was {facts.previous_state})" if facts.previous_state else "")
    rows = [
        ("Monitor", facts.monitor),
        ("Prompt", prompt),
        ("Metric", facts.metric),
        ("Rule", facts.rule),
        ("Candidate", f"{facts.candidate} ({facts.candidate_label}, n = {facts.candidate_n})"),
        ("Baseline", f"{facts.baseline} ({facts.baseline_label}, n = {facts.baseline_n})"),
        ("Change", facts.change),
        ("Interval", facts.interval or "not computed for this rule"),
        ("State", state),
        ("At", facts.at),
    ]
    lines = [_headline(facts), "", *(f"{name + ':':<11} {value}" for name, value in rows)]
    if facts.link:
        lines += ["", f"Open in Prompt Analytics: {facts.link}"]
    return _subject(facts), "\n".join(lines) + "\n"


def _mrkdwn(text: str) -> str:
    """Escape the three characters Slack's mrkdwn gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_message(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Return Slack's incoming-webhook JSON: a one-line text and a section with the facts."""
    facts = _facts(payload)
    e = _mrkdwn
    where = f" in {e(facts.project)}" if facts.project else ""
    was = f" (was {e(facts.previous_state)})" if facts.previous_state else ""
    lines = [
        f"{SLACK_EMOJI[facts.event]} *{EVENT_WORD[facts.event]}*{was}: *{e(facts.monitor)}*",
        f"*{e(facts.metric)}* of `{e(facts.prompt)}`{where}",
        f"*Candidate* {e(facts.candidate_label)}: *{e(facts.candidate)}* "
        f"(n = {e(facts.candidate_n)})",
        f"*Baseline* {e(facts.baseline_label)}: *{e(facts.baseline)}* (n = {e(facts.baseline_n)})",
        f"*Change*: {e(facts.change)}",
        f"*Interval*: {e(facts.interval or 'not computed for this rule')}",
    ]
    if facts.event == "test":
        lines.insert(0, e(_headline(facts)))
    if facts.link:
        # A URL inside <...|...> must not hold the delimiters themselves.
        url = facts.link.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
        lines.append(f"<{url}|Open in Prompt Analytics>")
    return {
        "text": _subject(facts),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "\n".join(lines)[:SLACK_SECTION_CHARS]},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": e(f"{facts.rule} · {facts.at}")}],
            },
        ],
    }


def test_payload(channel_name: str, link: str) -> dict[str, Any]:
    """Return an example payload for a channel's "send a test notification" button."""
    return {
        "event": "test",
        "channel": channel_name,
        "monitor": {"id": None, "name": "Test notification"},
        "project": "default",
        "prompt": "example-prompt",
        "metric": "p95 latency (ms)",
        "unit": "ms",
        "rule": "An example: no monitor fired.",
        "candidate": {"label": "candidate (example)", "value": 1420.0, "n": 1204},
        "baseline": {"label": "baseline (example)", "value": 980.0, "n": 3310},
        "delta": 440.0,
        "relative_delta": 440.0 / 980.0,
        "interval": {"low": 310.0, "high": 560.0, "level": 0.95, "method": "example"},
        "state": "test",
        "previous_state": None,
        "at": utcnow().isoformat(),
        "link": link,
    }
