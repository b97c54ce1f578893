"""Monitors' notifications end to end, against real receivers on loopback and a migrated database.

No mocks: an HTTP server in a thread plays the webhook and Slack (answering per a script), an
aiosmtpd server receives the email, and the outbox lives in a SQLite file migrated by Alembic
(and in PostgreSQL too where `make test` provides one). Time moves by passing `now`, never by
sleeping through a backoff.
"""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import textwrap
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.migrate import upgrade
from db.models import Channel, Notification, utcnow
from db.session import make_engine, make_session_factory
from devtools.services import free_port
from services import notify, secret_box
from settings import Settings

from .conftest import TEST_SECRET

SIGNING_SECRET = "whsec-0123456789-abcdefghij-KLMNOP"
SLACK_PATH = "/services/T0000/B0000/sl4ckT0kenXYZ"
AFTER_ANY_BACKOFF = timedelta(minutes=16)  # beyond the 15-minute cap


# Receivers ---------------------------------------------------------------------------------------


@dataclass
class Received:
    """One request the HTTP receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A real HTTP server on loopback that records requests and answers per a script."""

    port: int = 0
    default_status: int = 200
    echo_path: bool = False  # answer errors with the request's path, as some proxies do
    delay_s: float = 0.0
    script: deque[int] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status = receiver.script.popleft() if receiver.script else None
                    status = status or receiver.default_status
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), body, status)
                    )
                if receiver.delay_s:
                    threading.Event().wait(receiver.delay_s)
                answer = f"no route for {self.path}" if receiver.echo_path else "ok"
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        """Return the receiver's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop serving and free the port."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """An HTTP receiver answering 200 unless told otherwise."""
    server = Receiver()
    yield server
    server.stop()


class Inbox:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Accept and keep the message."""
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        """Return the received messages, parsed."""
        return [
            email.message_from_bytes(e.original_content, policy=email.policy.default)
            for e in self.envelopes
        ]


@pytest.fixture
def smtp_inbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback (plain, no STARTTLS, no AUTH) and its port."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


# Database ----------------------------------------------------------------------------------------


@pytest.fixture
def db_url(tmp_path: Path, migrated_sqlite_template: Path) -> str:
    """A fresh migrated SQLite file."""
    path = tmp_path / "dashboard.db"
    shutil.copy(migrated_sqlite_template, path)
    return f"sqlite:///{path}"


@contextmanager
def open_sessions(url: str) -> Iterator[sessionmaker[Session]]:
    """Open sessions on a database, as one process would, and close them with it."""
    engine = make_engine(url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the test's SQLite file."""
    with open_sessions(db_url) as factory:
        yield factory


@pytest.fixture(params=["sqlite", "postgresql"])
def any_sessions(request: pytest.FixtureRequest, db_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on SQLite, then on PostgreSQL (skipped where none runs, outside CI)."""
    url = db_url
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        upgrade(url)
    with open_sessions(url) as factory:
        yield factory


@pytest.fixture
def settings_(db_url: str) -> Settings:
    """Settings with a known SECRET_KEY; no SMTP server unless a test sets one."""
    return Settings.from_env(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": db_url,
            "PHOENIX_ENABLED": "false",
            "SYNC_WORKER": "false",
            "SMTP_FROM": "alerts@example.com",
        }
    ).with_overrides(testing=True)


def add_channel(
    sessions: sessionmaker[Session], kind: str, target: str = "", secret: str = ""
) -> int:
    """Create a channel the way the API will: validated, its secret sealed."""
    notify.validate_channel(kind, target, secret)
    with sessions.begin() as db:
        channel = Channel(
            name=f"{kind}-{utcnow().timestamp()}",
            kind=kind,
            target=target,
            secret=secret_box.seal(secret, TEST_SECRET),
            created_by="admin@example.com",
        )
        db.add(channel)
        db.flush()
        return channel.id


def payload(event: str = "firing", **changes: Any) -> dict[str, Any]:
    """A monitor's notification payload, as the monitors service builds it."""
    base: dict[str, Any] = {
        "event": event,
        "monitor": {"id": 7, "name": "checkout latency"},
        "project": "shop",
        "prompt": "checkout-assistant",
        "metric": "p95 latency (ms)",
        "unit": "ms",
        "rule": "the newest version against the version before it",
        "candidate": {"label": "v3", "value": 1420.0, "n": 1204},
        "baseline": {"label": "v2", "value": 980.0, "n": 3310},
        "delta": 440.0,
        "relative_delta": 0.449,
        "interval": {"low": 310.0, "high": 560.0, "level": 0.95, "method": "bootstrap"},
        "state": "firing" if event == "firing" else "ok",
        "previous_state": "ok" if event == "firing" else "firing",
        "at": "2026-11-26T15:44:47+00:00",
        "link": "https://dash.example.com/alerts?monitor=7",
    }
    return {**base, **changes}


def add_notification(
    sessions: sessionmaker[Session],
    channel_id: int,
    key: str = "monitor:7:1:channel:1",
    now: datetime | None = None,
    **changes: Any,
) -> bool:
    """Enqueue one notification in its own transaction."""
    with sessions.begin() as db:
        return notify.enqueue(
            db,
            channel_id=channel_id,
            dedupe_key=key,
            event=changes.get("event", "firing"),
            payload=payload(**changes),
            monitor_id=None,
            now=now,
        )


def rows(sessions: sessionmaker[Session]) -> list[Notification]:
    """Return every notification, oldest first."""
    with sessions() as db:
        return list(db.scalars(select(Notification).order_by(Notification.id)))


def only_row(sessions: sessionmaker[Session]) -> Notification:
    """Return the one notification there is."""
    (row,) = rows(sessions)
    return row


# Webhook -----------------------------------------------------------------------------------------


def test_webhook_is_one_signed_post_of_the_stored_payload(sessions, settings_, receiver):
    channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    assert add_notification(sessions, channel)

    result = notify.dispatch(sessions, settings_)

    assert result == notify.DispatchResult(sent=1)
    (request,) = receiver.received
    row = only_row(sessions)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None
    assert request.path == "/hook"
    assert request.body == row.payload.encode()
    assert json.loads(request.body) == payload()  # raw numbers, as built
    headers = request.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Prompt-Analytics-Event"] == "firing"
    assert headers["X-Prompt-Analytics-Delivery"] == "monitor:7:1:channel:1"
    timestamp, signature = (
        headers["X-Prompt-Analytics-Timestamp"],
        headers["X-Prompt-Analytics-Signature"],
    )
    assert signature.startswith("sha256=")
    assert notify.verify_signature(SIGNING_SECRET, timestamp, request.body, signature)
    assert not notify.verify_signature(
        "another-secret-0123456789", timestamp, request.body, signature
    )
    assert not notify.verify_signature(
        SIGNING_SECRET, timestamp, request.body.replace(b"1420", b"1421"), signature
    )
    assert not notify.verify_signature(
        SIGNING_SECRET, timestamp, request.body, signature, now=int(timestamp) + 301
    )
    assert not notify.verify_signature(SIGNING_SECRET, "yesterday", request.body, signature)
    # The module docstring's receiver, as a README reader would copy it.
    namespace: dict[str, Any] = {}
    doc = notify.__doc__ or ""
    snippet = doc[doc.index("    import hashlib") : doc.index("(`verify_signature`")]
    exec(textwrap.dedent(snippet), namespace)  # noqa: S102
    assert namespace["verify"](SIGNING_SECRET, timestamp, request.body, signature)


def test_faults_retry_with_backoff_until_one_delivery(sessions, settings_):
    port = free_port()  # nothing listens there yet: the receiver is down
    channel = add_channel(sessions, "webhook", f"http://127.0.0.1:{port}/hook", SIGNING_SECRET)
    t0 = utcnow()
    add_notification(sessions, channel, now=t0)

    assert notify.dispatch(sessions, settings_, now=t0) == notify.DispatchResult(retried=1)
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error == "could not connect to 127.0.0.1"

    receiver = Receiver(port=port)
    try:
        receiver.script.append(500)
        # Not due yet: the backoff holds it back.
        assert notify.dispatch(sessions, settings_, now=t0 + timedelta(seconds=4)) == (
            notify.DispatchResult()
        )
        t1 = t0 + AFTER_ANY_BACKOFF
        assert notify.dispatch(sessions, settings_, now=t1) == notify.DispatchResult(retried=1)
        row = only_row(sessions)
        assert (row.status, row.attempts) == ("pending", 2)
        assert row.last_error == "127.0.0.1 answered HTTP 500 Internal Server Error: ok"

        t2 = t1 + AFTER_ANY_BACKOFF
        assert notify.dispatch(sessions, settings_, now=t2) == notify.DispatchResult(sent=1)
        row = only_row(sessions)
        assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)
        assert notify.dispatch(sessions, settings_, now=t2 + timedelta(days=1)) == (
            notify.DispatchResult()
        )
        assert [r.status for r in receiver.received] == [500, 200]
        assert receiver.received[0].body == receiver.received[1].body
        delivery = {r.headers["X-Prompt-Analytics-Delivery"] for r in receiver.received}
        assert delivery == {"monitor:7:1:channel:1"}
    finally:
        receiver.stop()


def test_backoff_doubles_from_five_seconds_up_to_fifteen_minutes():
    for attempts, nominal in [(1, 5), (2, 10), (3, 20), (8, 640), (9, 900), (40, 900)]:
        delay = notify.backoff(attempts).total_seconds()
        assert nominal * (1 - notify.BACKOFF_JITTER) <= delay <= nominal


def test_a_channel_that_is_down_costs_one_attempt_per_run(sessions, settings_):
    channel = add_channel(
        sessions, "webhook", f"http://127.0.0.1:{free_port()}/hook", SIGNING_SECRET
    )
    t0 = utcnow()
    add_notification(sessions, channel, "a", now=t0)
    add_notification(sessions, channel, "b", now=t0)

    result = notify.dispatch(sessions, settings_, now=t0)

    assert result == notify.DispatchResult(retried=1, deferred=1)
    assert [r.attempts for r in rows(sessions)] == [1, 0]


def test_exhausting_max_attempts_ends_failed(sessions, settings_, receiver):
    receiver.default_status = 503
    channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    moment = utcnow()
    add_notification(sessions, channel, now=moment)

    results = []
    for _ in range(notify.MAX_ATTEMPTS):
        results.append(notify.dispatch(sessions, settings_, now=moment))
        moment += AFTER_ANY_BACKOFF

    assert results[:-1] == [notify.DispatchResult(retried=1)] * (notify.MAX_ATTEMPTS - 1)
    assert results[-1] == notify.DispatchResult(failed=1)
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("failed", notify.MAX_ATTEMPTS)
    assert row.last_error is not None and "HTTP 503" in row.last_error
    assert notify.dispatch(sessions, settings_, now=moment + timedelta(days=1)) == (
        notify.DispatchResult()
    )
    assert len(receiver.received) == notify.MAX_ATTEMPTS


def test_gone_gives_up_at_once(sessions, settings_, receiver):
    receiver.default_status = 410
    channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings_) == notify.DispatchResult(failed=1)
    assert (only_row(sessions).status, only_row(sessions).attempts) == ("failed", 1)


def test_redirects_are_failures_not_followed(sessions, settings_, receiver):
    receiver.default_status = 302
    channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings_) == notify.DispatchResult(retried=1)
    assert len(receiver.received) == 1


# Outbox ------------------------------------------------------------------------------------------


def test_pending_notifications_survive_a_restart(db_url, settings_, receiver):
    with open_sessions(db_url) as sessions:
        channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
        add_notification(sessions, channel, "survives")
        # A dispatcher that crashed mid-send: it claimed a row (committed) and never finished.
        add_notification(sessions, channel, "crashed")
        crashed = rows(sessions)[1].id
        assert notify._claim(sessions, crashed, utcnow()) is not None
    # The process is gone, its engine and sessions with it; a new one starts on the same file.

    with open_sessions(db_url) as sessions:
        assert notify.dispatch(sessions, settings_) == notify.DispatchResult(sent=1)
        assert [r.headers["X-Prompt-Analytics-Delivery"] for r in receiver.received] == ["survives"]
        # The crashed send is retried once its lease has run out, never before.
        later = utcnow() + notify.LEASE + timedelta(seconds=1)
        assert notify.dispatch(sessions, settings_, now=later) == notify.DispatchResult(sent=1)
        assert [(r.dedupe_key, r.status, r.attempts) for r in rows(sessions)] == [
            ("survives", "sent", 1),
            ("crashed", "sent", 2),
        ]


def test_enqueue_twice_is_one_row_and_one_delivery(any_sessions, settings_, receiver):
    channel = add_channel(any_sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)

    assert add_notification(any_sessions, channel, "monitor:7:3:channel:1") is True
    assert add_notification(any_sessions, channel, "monitor:7:3:channel:1", delta=1.0) is False
    assert notify.dispatch(any_sessions, settings_) == notify.DispatchResult(sent=1)
    assert add_notification(any_sessions, channel, "monitor:7:3:channel:1") is False
    assert notify.dispatch(any_sessions, settings_) == notify.DispatchResult()

    with any_sessions() as db:
        assert db.scalar(select(func.count()).select_from(Notification)) == 1
    assert len(receiver.received) == 1
    assert json.loads(receiver.received[0].body)["delta"] == 440.0  # the first one's payload


def test_two_dispatchers_at_once_send_each_notification_once(any_sessions, settings_, receiver):
    receiver.delay_s = 0.01  # keep both dispatchers busy at the same time
    channel = add_channel(any_sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    for i in range(20):
        add_notification(any_sessions, channel, f"monitor:{i}:1:channel:{channel}")
    start = threading.Barrier(2)
    results: list[notify.DispatchResult] = []

    def run() -> None:
        start.wait()
        results.append(notify.dispatch(any_sessions, settings_))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.sent for r in results) == 20
    keys = [r.headers["X-Prompt-Analytics-Delivery"] for r in receiver.received]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 20
    assert {(r.status, r.attempts) for r in rows(any_sessions)} == {("sent", 1)}


def test_enqueue_refuses_unknown_events_and_keeps_json_strict(sessions):
    channel = add_channel(sessions, "email", "ana@example.com")
    with sessions.begin() as db, pytest.raises(ValueError, match="Unknown notification event"):
        notify.enqueue(
            db, channel_id=channel, dedupe_key="k", event="tick", payload={}, monitor_id=None
        )
    add_notification(sessions, channel, "nan", delta=float("nan"))
    assert json.loads(only_row(sessions).payload)["delta"] is None


# Slack and email ---------------------------------------------------------------------------------


def test_slack_gets_its_incoming_webhook_format(sessions, settings_, receiver):
    channel = add_channel(sessions, "slack", "#alerts", receiver.url + SLACK_PATH)
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings_) == notify.DispatchResult(sent=1)

    (request,) = receiver.received
    assert request.path == SLACK_PATH
    message = json.loads(request.body)
    assert message["text"] == (
        "[FIRING] checkout latency: p95 latency (ms) 1.42 s vs 980 ms (checkout-assistant)"
    )
    section, context = message["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    for part in [
        "*FIRING* (was ok)",
        "*p95 latency (ms)* of `checkout-assistant` in shop",
        "v3: *1.42 s* (n = 1,204)",
        "v2: *980 ms* (n = 3,310)",
        "+440 ms (+44.9%)",
        "95% interval of the change: +310 ms to +560 ms (bootstrap)",
        "<https://dash.example.com/alerts?monitor=7|Open in Prompt Analytics>",
    ]:
        assert part in text
    assert context["type"] == "context"


def test_email_reaches_the_smtp_server(sessions, settings_, smtp_inbox):
    inbox, port = smtp_inbox
    settings = settings_.with_overrides(smtp_url=f"smtp://127.0.0.1:{port}")
    channel = add_channel(sessions, "email", "ana@example.com, bo@example.com")
    add_notification(sessions, channel, "monitor:7:2:channel:3", event="resolved")

    assert notify.dispatch(sessions, settings) == notify.DispatchResult(sent=1)

    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "alerts@example.com"
    assert envelope.rcpt_tos == ["ana@example.com", "bo@example.com"]
    (message,) = inbox.messages()
    assert message["From"] == "alerts@example.com"
    assert message["To"] == "ana@example.com, bo@example.com"
    assert message["Subject"] == (
        "[RESOLVED] checkout latency: p95 latency (ms) 1.42 s vs 980 ms (checkout-assistant)"
    )
    assert message["X-Prompt-Analytics-Delivery"] == "monitor:7:2:channel:3"
    assert message["Message-ID"].endswith("@example.com>")
    body = message.get_content()
    for part in [
        "checkout latency has resolved",
        "Metric:     p95 latency (ms)",
        "Candidate:  1.42 s (v3, n = 1,204)",
        "Baseline:   980 ms (v2, n = 3,310)",
        "Interval:   95% interval of the change: +310 ms to +560 ms (bootstrap)",
        "State:      ok (was firing)",
        "Open in Prompt Analytics: https://dash.example.com/alerts?monitor=7",
    ]:
        assert part in body


def test_email_without_smtp_url_fails_the_attempt_clearly(sessions, settings_):
    channel = add_channel(sessions, "email", "ana@example.com")
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings_) == notify.DispatchResult(retried=1)
    row = only_row(sessions)
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error is not None and row.last_error.startswith("SMTP_URL is not set")


def test_email_never_sends_a_password_in_clear_text(sessions, settings_, smtp_inbox):
    inbox, port = smtp_inbox
    settings = settings_.with_overrides(smtp_url=f"smtp://mailer:s3cr%40tpw@127.0.0.1:{port}")
    channel = add_channel(sessions, "email", "ana@example.com")
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings) == notify.DispatchResult(retried=1)
    error = only_row(sessions).last_error or ""
    assert "offers no STARTTLS" in error
    assert "s3cr" not in error
    assert inbox.envelopes == []


# Secrets -----------------------------------------------------------------------------------------


def test_secret_box_round_trip_and_env_reference():
    sealed = secret_box.seal(SIGNING_SECRET, TEST_SECRET)
    assert sealed.startswith("fernet:") and SIGNING_SECRET not in sealed
    assert secret_box.unseal(sealed, TEST_SECRET) == SIGNING_SECRET
    assert secret_box.seal("", TEST_SECRET) == "" and secret_box.unseal("", TEST_SECRET) == ""

    assert secret_box.seal("env:HOOK_SECRET", TEST_SECRET) == "env:HOOK_SECRET"
    assert secret_box.unseal("env:HOOK_SECRET", TEST_SECRET, {"HOOK_SECRET": "x" * 20}) == "x" * 20
    with pytest.raises(secret_box.SecretError, match="HOOK_SECRET, which is not set"):
        secret_box.unseal("env:HOOK_SECRET", TEST_SECRET, {})
    with pytest.raises(secret_box.SecretError, match="upper-case variable name"):
        secret_box.seal("env:hook-secret", TEST_SECRET)


def test_secret_box_says_a_new_secret_key_needs_the_secrets_again():
    sealed = secret_box.seal(SIGNING_SECRET, TEST_SECRET)
    with pytest.raises(
        secret_box.SecretError, match="Rotating SECRET_KEY requires re-entering channel secrets"
    ) as caught:
        secret_box.unseal(sealed, "another-secret-key-0123456789-abcdefghijk")
    assert SIGNING_SECRET not in str(caught.value)
    with pytest.raises(secret_box.SecretError, match="no known form"):
        secret_box.unseal(SIGNING_SECRET, TEST_SECRET)


def test_describe_never_reveals_the_secret():
    sealed = secret_box.seal(SIGNING_SECRET, TEST_SECRET)
    assert secret_box.describe(sealed) == "stored encrypted"
    assert secret_box.describe("env:HOOK_SECRET") == "from $HOOK_SECRET"
    assert secret_box.describe("") == "none"
    assert SIGNING_SECRET not in secret_box.describe(SIGNING_SECRET)


def test_an_env_secret_is_read_at_send_time(sessions, settings_, receiver):
    channel = add_channel(sessions, "webhook", f"{receiver.url}/hook", "env:HOOK_SECRET")
    add_notification(sessions, channel)

    assert notify.dispatch(sessions, settings_, environ={}) == notify.DispatchResult(retried=1)
    assert "HOOK_SECRET, which is not set" in (only_row(sessions).last_error or "")
    later = utcnow() + AFTER_ANY_BACKOFF
    environ = {"HOOK_SECRET": SIGNING_SECRET}
    assert notify.dispatch(sessions, settings_, now=later, environ=environ) == (
        notify.DispatchResult(sent=1)
    )
    (request,) = receiver.received
    assert notify.verify_signature(
        SIGNING_SECRET,
        request.headers["X-Prompt-Analytics-Timestamp"],
        request.body,
        request.headers["X-Prompt-Analytics-Signature"],
    )


def test_payload_and_errors_never_hold_a_secret(sessions, settings_, receiver):
    receiver.default_status = 500
    receiver.echo_path = True  # the answer repeats the URL's path: Slack's secret part
    slack = add_channel(sessions, "slack", "", receiver.url + SLACK_PATH)
    webhook = add_channel(sessions, "webhook", f"{receiver.url}/hook", SIGNING_SECRET)
    add_notification(sessions, slack, "to-slack")
    add_notification(sessions, webhook, "to-webhook")

    assert notify.dispatch(sessions, settings_) == notify.DispatchResult(retried=2)
    stored = rows(sessions)
    assert [r.last_error for r in stored] == [
        "127.0.0.1 answered HTTP 500 Internal Server Error: no route for [secret]",
        "127.0.0.1 answered HTTP 500 Internal Server Error: no route for /hook",
    ]
    with sessions() as db:
        channels = list(db.scalars(select(Channel)))
    for text in [*(r.payload for r in stored), *(c.secret for c in channels)]:
        assert "sl4ckT0ken" not in text and SIGNING_SECRET not in text
    assert receiver.url + SLACK_PATH not in repr(
        notify._claim(sessions, stored[0].id, utcnow() + AFTER_ANY_BACKOFF)
    )


def test_validate_channel_messages():
    cases = [
        ("webhook", "ftp://example.com", SIGNING_SECRET, "A webhook needs an http(s) URL"),
        ("webhook", "https://example.com/hook", "short", "signing secret of at least 16"),
        ("slack", "", "", "incoming-webhook URL as the secret"),
        ("slack", "", "hooks.slack.com/services/x", "incoming-webhook URL as the secret"),
        ("email", " , ", "", "Give at least one email address"),
        ("email", "ana@example.com, bo", "", "'bo' is not an email address"),
        ("email", "ana@example.com\nBcc: eve@example.com", "", "is not an email address"),
        ("webhook", "https://example.com/hook", "env:bad name", "upper-case variable name"),
        ("pager", "", "", "Unknown channel kind"),
    ]
    for kind, target, secret, message in cases:
        with pytest.raises(notify.ChannelError, match=re.escape(message)):
            notify.validate_channel(kind, target, secret)
    notify.validate_channel("webhook", "http://127.0.0.1:9/hook", "env:HOOK_SECRET")
    notify.validate_channel("slack", "", "https://hooks.slack.com/services/T/B/X")
    notify.validate_channel("email", "ana@example.com,bo@example.org", "")


# Rendering ---------------------------------------------------------------------------------------


def test_render_formats_each_unit_and_unknown_values():
    subject, text = notify.render(
        payload(
            metric="error rate",
            unit="percent",
            candidate={"label": "v3", "value": 0.042, "n": 12040},
            baseline={"label": "v2", "value": None, "n": None},
            delta=None,
            relative_delta=None,
            interval={"low": None, "high": None},
        )
    )
    assert subject == "[FIRING] checkout latency: error rate 4.2% vs \u2013 (checkout-assistant)"
    assert "Candidate:  4.2% (v3, n = 12,040)" in text
    assert "Baseline:   \u2013 (v2, n = \u2013)" in text
    assert "Interval:   not computed for this rule" in text

    _, cost = notify.render(
        payload(unit="usd", delta=0.0125, interval={"low": 0.01, "high": 0.015})
    )
    assert "+$0.0125" in cost and "+$0.0100 to +$0.0150" in cost


def test_test_payload_renders_as_a_test():
    example = notify.test_payload("ops webhook", "https://dash.example.com/alerts")
    subject, text = notify.render(example)
    assert subject == "[TEST] Prompt Analytics test notification for ops webhook"
    assert text.startswith("This is a test notification for ops webhook.")
    assert "https://dash.example.com/alerts" in text
    assert json.loads(notify.serialize_payload(example))["event"] == "test"
    assert notify.slack_message(example)["text"] == subject
