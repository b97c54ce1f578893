"""Regression monitors: keep them (create, edit, pause, delete), evaluate them, and notify.

A monitor's definition is services/monitor_rules.py's; the statistics are
services/monitor_stats.py's (always-valid confidence sequences, so looking after every sync tick
does not inflate false alarms); the reads are store/monitor_queries.py's; the messages go
through services/notify.py's outbox. This module joins them:

* It resolves the sides: a prompt's versions in the order they first appeared (so "the newest"
  and "the version before it" mean what they say), each version the template groups that show
  its label (prompt identities and labels as an admin left them).
* It moves the state: ok, firing, resolved (ok again after firing) and insufficient (a side
  below its minimum sample, or no such version yet). Every change is an event; changes into and
  out of firing are notified, once per channel (the outbox's key is the monitor, its transition
  number and the channel), so a re-run tick or a second replica never sends twice.
* The sync worker calls evaluate_all after a tick that brought data and once a minute, on the
  replica that holds the sync lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    Channel,
    Monitor,
    MonitorChannel,
    MonitorEvent,
    MonitorPoint,
    Prompt,
    PromptIdentity,
    utcnow,
)
from services import notify, secret_box
from services.monitor_rules import (
    NEWEST,
    PREVIOUS,
    MonitorError,
    MonitorSpec,
    load_spec,
    parse_spec,
)
from services.monitor_stats import SideEstimate, decide, threshold_verdict
from services.prompt_filters import natural_key
from services.span_facts import aware
from settings import Settings
from store.facts import FactStore
from store.filters import Filters, PromptSet
from store.monitor_queries import side_estimate

log = logging.getLogger(__name__)
ALPHA = 0.05
POINTS_KEPT = timedelta(days=7)
NOTIFIED = frozenset({"firing"})
MAX_NAME = 200


class NotFound(LookupError):
    """No monitor or channel with that id."""


@dataclass(frozen=True)
class Sides:
    """What a monitor compares: each side's label, filters and window."""

    candidate: str
    baseline: str | None
    candidate_filters: Filters
    baseline_filters: Filters | None
    prompt_id: str | None
    window: tuple[datetime, datetime]


@dataclass(frozen=True)
class MonitorView:
    """One monitor as pages and the API show it."""

    id: int
    name: str
    spec: MonitorSpec
    paused: bool
    state: str
    state_since: datetime
    last_evaluated_at: datetime | None
    last_result: dict[str, Any] | None
    created_by: str

    def as_json(self) -> dict[str, Any]:
        """Return the monitor as the API answers it."""
        return {
            "id": self.id,
            "name": self.name,
            "spec": json.loads(self.spec.to_json()),
            "rule": self.spec.rule_text(),
            "paused": self.paused,
            "state": self.state,
            "state_since": aware(self.state_since).isoformat(),
            "last_evaluated_at": aware(self.last_evaluated_at).isoformat()
            if self.last_evaluated_at
            else None,
            "last_result": self.last_result,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class ChannelView:
    """One channel as pages and the API show it: never its secret."""

    id: int
    name: str
    kind: str
    target: str
    secret: str  # secret_box.describe: how it is stored, not what it is

    def as_json(self) -> dict[str, Any]:
        """Return the channel as the API answers it."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "secret": self.secret,
        }


# Keeping monitors --------------------------------------------------------------------------------


def _view(monitor: Monitor) -> MonitorView:
    """Describe a monitor row."""
    return MonitorView(
        id=monitor.id,
        name=monitor.name,
        spec=load_spec(monitor.spec),
        paused=monitor.paused,
        state=monitor.state,
        state_since=monitor.state_since,
        last_evaluated_at=monitor.last_evaluated_at,
        last_result=json.loads(monitor.last_result) if monitor.last_result else None,
        created_by=monitor.created_by,
    )


def _check_refs(db: Session, spec: MonitorSpec) -> None:
    """Refuse a monitor of an unknown prompt or with unknown channels."""
    known = db.scalar(select(PromptIdentity.id).where(PromptIdentity.name == spec.prompt))
    if known is None:
        raise MonitorError(f"prompt: no prompt named {spec.prompt!r} (see the Prompts page).")
    if spec.channels:
        found = set(db.scalars(select(Channel.id).where(Channel.id.in_(spec.channels))).all())
        if missing := [c for c in spec.channels if c not in found]:
            raise MonitorError(f"channels: no channel {missing[0]}.")


def _set_channels(db: Session, monitor_id: int, channels: Sequence[int]) -> None:
    """Make a monitor notify exactly these channels."""
    db.execute(delete(MonitorChannel).where(MonitorChannel.monitor_id == monitor_id))
    for channel in channels:
        db.add(MonitorChannel(monitor_id=monitor_id, channel_id=channel))


def create(db: Session, actor: str, raw: Mapping[str, Any]) -> MonitorView:
    """Create a monitor from a form or JSON body; it is evaluated at the next tick."""
    spec = parse_spec(raw)
    _check_refs(db, spec)
    monitor = Monitor(
        name=spec.name,
        spec=spec.to_json(),
        paused=False,
        state="insufficient",
        transition=0,
        state_since=utcnow(),
        created_by=actor,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    db.add(monitor)
    db.flush()
    _set_channels(db, monitor.id, spec.channels)
    return _view(monitor)


def _monitor(db: Session, monitor_id: int) -> Monitor:
    """Return a monitor row, or raise NotFound."""
    monitor = db.get(Monitor, monitor_id)
    if monitor is None:
        raise NotFound(f"No monitor {monitor_id}.")
    return monitor


def update_monitor(db: Session, monitor_id: int, raw: Mapping[str, Any]) -> MonitorView:
    """Replace a monitor's definition; its state starts afresh when what it watches changed."""
    monitor = _monitor(db, monitor_id)
    spec = parse_spec(raw)
    _check_refs(db, spec)
    old = load_spec(monitor.spec)
    monitor.name = spec.name
    monitor.spec = spec.to_json()
    monitor.updated_at = utcnow()
    watched = ("prompt", "metric", "rule", "project", "evaluator", "label", "candidate")
    if any(getattr(old, f) != getattr(spec, f) for f in (*watched, "baseline")):
        # A new question: the old answer (and its firing) no longer applies.
        monitor.state = "insufficient"
        monitor.state_since = utcnow()
        monitor.last_result = None
    _set_channels(db, monitor.id, spec.channels)
    db.flush()
    return _view(monitor)


def set_paused(db: Session, monitor_id: int, paused: bool) -> MonitorView:
    """Pause (no evaluation, no notification) or resume a monitor."""
    monitor = _monitor(db, monitor_id)
    monitor.paused = paused
    monitor.updated_at = utcnow()
    db.flush()
    return _view(monitor)


def delete_monitor(db: Session, monitor_id: int) -> None:
    """Delete a monitor, its points and events; delivered notifications stay in the outbox log."""
    db.delete(_monitor(db, monitor_id))
    db.flush()


def get(db: Session, monitor_id: int) -> MonitorView:
    """Return one monitor."""
    return _view(_monitor(db, monitor_id))


def list_monitors(db: Session) -> list[MonitorView]:
    """List every monitor, firing first, then by name."""
    rows = db.scalars(select(Monitor).order_by(Monitor.name, Monitor.id)).all()
    order = {"firing": 0, "insufficient": 2}
    return sorted((_view(m) for m in rows), key=lambda v: (order.get(v.state, 1), v.name))


def firing_count(db: Session) -> int:
    """Count monitors firing now (the navbar's badge)."""
    return int(
        db.scalar(select(func.count()).where(Monitor.state == "firing", Monitor.paused.is_(False)))
        or 0
    )


def points(db: Session, monitor_id: int, limit: int = 500) -> list[MonitorPoint]:
    """Return a monitor's recent evaluations, oldest first, for its sparkline."""
    rows = db.scalars(
        select(MonitorPoint)
        .where(MonitorPoint.monitor_id == monitor_id)
        .order_by(MonitorPoint.at.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def events(db: Session, monitor_id: int, limit: int = 50) -> list[MonitorEvent]:
    """Return a monitor's changes of state, newest first."""
    return list(
        db.scalars(
            select(MonitorEvent)
            .where(MonitorEvent.monitor_id == monitor_id)
            .order_by(MonitorEvent.id.desc())
            .limit(limit)
        ).all()
    )


# Channels ----------------------------------------------------------------------------------------


def _channel_view(channel: Channel) -> ChannelView:
    """Describe a channel without its secret."""
    return ChannelView(
        channel.id, channel.name, channel.kind, channel.target, secret_box.describe(channel.secret)
    )


def create_channel(
    db: Session, actor: str, raw: Mapping[str, Any], settings: Settings
) -> ChannelView:
    """Create a channel; its secret is sealed (or kept as an env: reference), never echoed."""
    if not isinstance(raw, Mapping):
        raise MonitorError("A channel is a JSON object.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME:
        raise MonitorError(f"name: give the channel a name of at most {MAX_NAME} characters.")
    kind = raw.get("kind")
    target = raw.get("target") or ""
    secret = raw.get("secret") or ""
    if not isinstance(kind, str) or not isinstance(target, str) or not isinstance(secret, str):
        raise MonitorError("kind, target and secret are text.")
    try:
        notify.validate_channel(kind, target.strip(), secret.strip())
        sealed = secret_box.seal(secret.strip(), settings.secret_key) if secret.strip() else ""
    except (notify.ChannelError, secret_box.SecretError) as exc:
        raise MonitorError(str(exc)) from None
    if db.scalar(select(Channel.id).where(Channel.name == name.strip())) is not None:
        raise MonitorError(f"name: a channel named {name.strip()!r} exists.")
    channel = Channel(
        name=name.strip(),
        kind=kind,
        target=target.strip(),
        secret=sealed,
        created_by=actor,
        created_at=utcnow(),
    )
    db.add(channel)
    db.flush()
    return _channel_view(channel)


def list_channels(db: Session) -> list[ChannelView]:
    """List every channel, by name."""
    return [_channel_view(c) for c in db.scalars(select(Channel).order_by(Channel.name)).all()]


def delete_channel(db: Session, channel_id: int) -> None:
    """Delete a channel; monitors stop notifying it."""
    channel = db.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"No channel {channel_id}.")
    db.delete(channel)
    db.flush()


def send_test(db: Session, channel_id: int, settings: Settings, actor: str) -> None:
    """Queue a test notification to one channel (sent by the next dispatch)."""
    channel = db.get(Channel, channel_id)
    if channel is None:
        raise NotFound(f"No channel {channel_id}.")
    payload = notify.test_payload(channel.name, f"{base_url(settings)}/alerts")
    payload["requested_by"] = actor
    notify.enqueue(
        db,
        channel_id=channel.id,
        dedupe_key=f"test:{channel.id}:{utcnow().isoformat()}",
        event="test",
        payload=payload,
        monitor_id=None,
    )


# Evaluation --------------------------------------------------------------------------------------


def base_url(settings: Settings) -> str:
    """Return the address links in notifications start with."""
    return settings.public_url or f"http://{settings.host}:{settings.port}"


def versions_in_order(db: Session, prompt: str) -> list[tuple[str, str, list[str]]]:
    """List a prompt's versions as (identity id, label, groups), oldest first appearance first.

    A version first appears with the earliest span of its groups; versions first seen at the
    same moment (registry versions no span uses yet) go in natural order, v9 before v10, then
    by the label's text.
    """
    rows = db.execute(
        select(Prompt.id, Prompt.identity_id, Prompt.label, Prompt.version, Prompt.first_seen_at)
        .join(PromptIdentity, PromptIdentity.id == Prompt.identity_id)
        .where(PromptIdentity.name == prompt)
    ).all()
    first: dict[str, datetime] = {}
    groups: dict[str, list[str]] = {}
    ident = ""
    for group, identity, label, version, seen in rows:
        shown = label or version
        ident = str(identity)
        groups.setdefault(shown, []).append(str(group))
        at = aware(seen)
        first[shown] = min(first.get(shown, at), at)
    ordered = sorted(first, key=lambda lab: (first[lab], natural_key(lab), lab))
    return [(ident, lab, sorted(groups[lab])) for lab in ordered]


def _filters(spec: MonitorSpec, groups: Sequence[str], start: datetime, end: datetime) -> Filters:
    """Narrow the facts to one side: the project, the groups, the window."""
    return Filters(project=spec.project, prompts=PromptSet(ids=tuple(groups)), start=start, end=end)


def resolve_sides(db: Session, spec: MonitorSpec, now: datetime) -> Sides | str:
    """Work out both sides of a monitor now, or say why it cannot be evaluated yet."""
    versions = versions_in_order(db, spec.prompt)
    if not versions:
        return f"No calls of the prompt {spec.prompt!r} have synced yet."
    ident = versions[0][0]
    labels = [label for _i, label, _g in versions]
    by_label = {label: groups for _i, label, groups in versions}
    window = timedelta(hours=spec.window_hours)
    start, end = now - window, now
    every = sorted(g for _i, _l, groups in versions for g in groups)
    if spec.rule == "relative":
        candidate = labels[-1] if spec.candidate == NEWEST else spec.candidate
        if candidate not in by_label:
            return f"The prompt has no version {candidate!r} yet."
        if spec.baseline == PREVIOUS:
            at = labels.index(candidate)
            if at == 0:
                return f"{candidate!r} is the prompt's first version: nothing before it."
            baseline = labels[at - 1]
        else:
            baseline = spec.baseline
        if baseline not in by_label:
            return f"The prompt has no version {baseline!r} yet."
        return Sides(
            candidate,
            baseline,
            _filters(spec, by_label[candidate], start, end),
            _filters(spec, by_label[baseline], start, end),
            ident,
            (start, end),
        )
    # The previous period and the threshold watch the prompt as a whole, or one named version.
    if spec.candidate == NEWEST:
        label, groups = "all versions", every
    elif spec.candidate in by_label:
        label, groups = spec.candidate, by_label[spec.candidate]
    else:
        return f"The prompt has no version {spec.candidate!r} yet."
    if spec.rule == "previous_period":
        return Sides(
            f"{label}, last {spec.window_hours:g} h",
            f"{label}, the {spec.window_hours:g} h before",
            _filters(spec, groups, start, end),
            _filters(spec, groups, start - window, start),
            ident,
            (start - window, end),
        )
    return Sides(label, None, _filters(spec, groups, start, end), None, ident, (start, end))


def _estimate(store: FactStore, spec: MonitorSpec, filters: Filters) -> SideEstimate:
    """Estimate one side: at half the error rate when two sides share it (the union bound)."""
    return side_estimate(
        store,
        filters,
        spec.metric,
        alpha=ALPHA if spec.rule == "threshold" else ALPHA / 2,
        evaluator=spec.evaluator,
        label=spec.label,
    )


def _side_json(label: str | None, estimate: SideEstimate | None) -> dict[str, Any] | None:
    """Describe one side for pages and notifications."""
    if estimate is None:
        return None
    return {
        "label": label,
        "value": estimate.value,
        "low": estimate.low,
        "high": estimate.high,
        "n": estimate.n,
    }


def _link(settings: Settings, spec: MonitorSpec, sides: Sides) -> str:
    """Link to the analytics comparison of this monitor's sides, filters in the URL."""
    start, end = sides.window
    query: dict[str, str] = {"prompt": spec.prompt, "range": "custom"}
    if spec.project:
        query["project"] = spec.project
    query["start"] = start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    query["end"] = (end + timedelta(minutes=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    if spec.evaluator:
        query["evaluator"] = spec.evaluator
    if spec.rule == "relative" and sides.baseline is not None and sides.prompt_id:
        query["a"] = f"{sides.prompt_id}:{sides.baseline}"
        query["b"] = f"{sides.prompt_id}:{sides.candidate}"
    return f"{base_url(settings)}/analytics?{urlencode(query)}"


def evaluate(
    db: Session, store: FactStore, spec: MonitorSpec, settings: Settings, now: datetime
) -> dict[str, Any]:
    """Evaluate one monitor now: its verdict and every number behind it (JSON-ready)."""
    sides = resolve_sides(db, spec, now)
    result: dict[str, Any] = {
        "at": now.isoformat(),
        "metric": spec.metric_text,
        "unit": spec.unit,
        "rule": spec.rule_text(),
        "project": spec.project,
        "prompt": spec.prompt,
    }
    if isinstance(sides, str):
        return {**result, "state": "insufficient", "reason": sides, "link": None}
    candidate = _estimate(store, spec, sides.candidate_filters)
    baseline = (
        _estimate(store, spec, sides.baseline_filters)
        if sides.baseline_filters is not None
        else None
    )
    if baseline is None:
        assert spec.threshold is not None
        verdict = threshold_verdict(
            candidate,
            spec.threshold,
            higher_is_bad=spec.higher_is_bad,
            min_samples=spec.min_samples,
        )
    else:
        verdict = decide(
            candidate,
            baseline,
            higher_is_bad=spec.higher_is_bad,
            min_effect=spec.min_effect,
            min_effect_unit="absolute" if spec.min_effect_unit == "absolute" else "percent",
            min_samples=spec.min_samples,
        )
    return {
        **result,
        "state": verdict.state,
        "reason": None,
        "candidate": _side_json(sides.candidate, candidate),
        "baseline": _side_json(sides.baseline, baseline),
        "threshold": spec.threshold,
        "delta": verdict.delta,
        "relative_delta": verdict.relative_delta,
        "interval": {
            "low": verdict.low,
            "high": verdict.high,
            "level": 1 - ALPHA,
            "method": verdict.method_text,
        },
        "link": _link(settings, spec, sides),
    }


def next_state(old: str, verdict: str) -> str:
    """Move the state machine: a firing monitor that is fine again is resolved, and stays so."""
    if verdict == "ok" and old in {"firing", "resolved"}:
        return "resolved"
    return verdict


@dataclass
class EvaluationSummary:
    """What one pass over the monitors did."""

    evaluated: int = 0
    changed: int = 0
    notifications: int = 0
    errors: int = 0


def evaluate_all(
    sessions: sessionmaker[Session],
    store: FactStore,
    settings: Settings,
    now: datetime | None = None,
) -> EvaluationSummary:
    """Evaluate every active monitor, record points and changes, and queue notifications."""
    moment = now or utcnow()
    summary = EvaluationSummary()
    with sessions() as db:
        ids = db.scalars(select(Monitor.id).where(Monitor.paused.is_(False))).all()
    for monitor_id in ids:
        try:
            with sessions.begin() as db:
                summary.notifications += _evaluate_one(
                    db, store, settings, monitor_id, moment, summary
                )
        except Exception:  # one bad monitor must not stop the others
            summary.errors += 1
            log.exception("monitor %s could not be evaluated", monitor_id)
    with sessions.begin() as db:
        db.execute(delete(MonitorPoint).where(MonitorPoint.at < moment - POINTS_KEPT))
    return summary


def _evaluate_one(
    db: Session,
    store: FactStore,
    settings: Settings,
    monitor_id: int,
    now: datetime,
    summary: EvaluationSummary,
) -> int:
    """Evaluate one monitor in the caller's transaction; return how many messages it queued."""
    monitor = db.get(Monitor, monitor_id)
    if monitor is None or monitor.paused:
        return 0
    spec = load_spec(monitor.spec)
    result = evaluate(db, store, spec, settings, now)
    summary.evaluated += 1
    old = monitor.state
    new = next_state(old, result["state"])
    result["state"] = new
    result["previous_state"] = old
    candidate, baseline = result.get("candidate") or {}, result.get("baseline") or {}
    db.add(
        MonitorPoint(
            monitor_id=monitor.id,
            at=now,
            candidate=candidate.get("value"),
            baseline=baseline.get("value"),
            state=new,
        )
    )
    monitor.last_evaluated_at = now
    monitor.last_result = json.dumps(result, sort_keys=True, default=str)
    if new == old:
        return 0
    # The transition number is the notification's identity: bump it only if nobody else did.
    moved = db.execute(
        update(Monitor)
        .where(Monitor.id == monitor.id, Monitor.transition == monitor.transition)
        .values(state=new, state_since=now, transition=Monitor.transition + 1)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return 0
    transition = monitor.transition + 1
    summary.changed += 1
    db.add(
        MonitorEvent(
            monitor_id=monitor.id,
            transition=transition,
            at=now,
            from_state=old,
            to_state=new,
            result=monitor.last_result,
        )
    )
    if new not in NOTIFIED and old not in NOTIFIED:
        return 0
    event = "firing" if new == "firing" else "resolved"
    payload = {**result, "event": event, "monitor": {"id": monitor.id, "name": monitor.name}}
    channels = db.scalars(
        select(MonitorChannel.channel_id).where(MonitorChannel.monitor_id == monitor.id)
    ).all()
    queued = 0
    for channel in channels:
        queued += notify.enqueue(
            db,
            channel_id=channel,
            dedupe_key=f"monitor:{monitor.id}:{transition}:channel:{channel}",
            event=event,
            payload=payload,
            monitor_id=monitor.id,
            now=now,
        )
    return queued
