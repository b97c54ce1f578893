"""Regression monitors through the real path: facts in the store, evaluation as the sync worker
runs it, notifications through the outbox to a real webhook receiver on loopback.

* A/A: 24 simulated hours, every metric, candidate and baseline from one distribution: at most
  5 % of monitors ever fire (the statistics' own A/A, with many more monitors, is in
  tests/test_monitor_stats.py).
* An injected +30 % p95 fires within two evaluations; the receiver gets exactly one signed
  notification whose link opens the right comparison; removing the shift resolves it with
  exactly one message.
* Roles and input: viewers cannot write; bad fields get a message naming them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from sqlalchemy import select

from db.models import Monitor, Notification
from devtools.demo import ensure_demo_user
from services import monitors, notify
from services.container import get_services
from services.monitor_rules import METRICS
from services.prompt_catalog import PromptCatalog
from services.span_facts import span_facts
from store.facts import SpanAnnotationRow, SpanRow
from tests.browser import login, save_screenshot
from tests.callbacks import route
from tests.seed import rest_llm_span

SECRET = "receiver-signing-secret"


@dataclass
class Receiver:
    """A real HTTP server on loopback that records every POST and answers 200."""

    server: ThreadingHTTPServer
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def bodies(self) -> list[dict[str, Any]]:
        """Return every received body, parsed, after checking its signature."""
        found = []
        for headers, body in self.requests:
            assert notify.verify_signature(
                SECRET,
                headers["X-Prompt-Analytics-Timestamp"],
                body,
                headers["X-Prompt-Analytics-Signature"],
            )
            found.append(json.loads(body))
        return found


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Start the webhook receiver; stop it after the test."""
    recorded: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recorded.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(server, recorded)
    server.shutdown()
    server.server_close()


# Data ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A prompt with two versions, as the catalog linked them: group ids by label."""

    name: str
    groups: dict[str, str]


def _prompt(app: Any, name: str) -> Prompt:
    """Create a prompt (named by prompt.id) with versions v1 then v2."""
    catalog = PromptCatalog(get_services(app.server).sessions)
    groups = {}
    for n, version in enumerate(("v1", "v2")):
        span = rest_llm_span(
            n,
            datetime(2026, 1, 1, tzinfo=UTC),
            **{
                "llm.prompt_template.template": f"{name} {version}: {{q}}",
                "llm.prompt_template.version": version,
                "prompt.id": name,
            },
        )
        (fact,) = catalog.link([span_facts("p", span, None)])
        groups[version] = str(fact.prompt_id)
    return Prompt(name, groups)


def _write(
    app: Any,
    prompt: Prompt,
    version: str,
    n: int,
    start: datetime,
    end: datetime,
    rng: np.random.Generator,
    *,
    latency_scale: float = 1.0,
    error_rate: float = 0.05,
) -> None:
    """Write n calls of one version spread over [start, end), with their evaluations."""
    store = get_services(app.server).store
    seconds = rng.uniform(0, (end - start).total_seconds(), n)
    latency = rng.lognormal(np.log(800), 0.5, n) * latency_scale
    errors = rng.random(n) < error_rate
    tokens = rng.integers(200, 800, n)
    scores = (rng.random(n) < 0.8).astype(float)
    labels = rng.choice(["good", "bad", "unsure"], n, p=[0.7, 0.2, 0.1])
    spans, notes = [], []
    for i in range(n):
        ident = uuid.uuid4().hex
        at = start + timedelta(seconds=float(seconds[i]))
        status = "ERROR" if errors[i] else "OK"
        row = SpanRow(
            span_id=ident[:16],
            trace_id=ident,
            project="shop",
            prompt_id=prompt.groups[version],
            template_hash=None,
            prompt_version=version,
            model="gpt-4o",
            start_time=at,
            latency_ms=float(latency[i]),
            prompt_tokens=int(tokens[i]) - 100,
            completion_tokens=100,
            total_tokens=int(tokens[i]),
            status=status,
            cost=float(tokens[i]) * 1e-6,
        )
        spans.append(row)
        for name, score, label in (
            ("correctness", float(scores[i]), None),
            ("review", None, str(labels[i])),
        ):
            notes.append(
                SpanAnnotationRow(
                    annotation_id=f"{ident}-{name}",
                    span_id=row.span_id,
                    trace_id=row.trace_id,
                    project="shop",
                    name=name,
                    annotator_kind="LLM",
                    label=label,
                    score=score,
                    updated_at=at,
                    is_deleted=False,
                    span_start_time=at,
                    prompt_id=row.prompt_id,
                    template_hash=None,
                    prompt_version=version,
                    model="gpt-4o",
                    span_status=status,
                )
            )
    store.write_spans(spans)
    store.write_span_annotations(notes)


def _create(app: Any, prompt: Prompt, metric: str, **fields: Any) -> int:
    """Create a monitor as a member would; return its id."""
    with get_services(app.server).sessions.begin() as db:
        spec: dict[str, Any] = {
            "name": fields.pop("name", f"{prompt.name} {metric}"),
            "prompt": prompt.name,
            "project": "shop",
            "metric": metric,
            "min_samples": 200,
            "window_hours": 2,
            **fields,
        }
        if metric == "score_mean":
            spec["evaluator"] = "correctness"
        if metric == "label_share":
            spec |= {"evaluator": "review", "label": "bad"}
        return monitors.create(db, "ana@example.com", spec).id


def _tick(app: Any, now: datetime) -> monitors.EvaluationSummary:
    """Do what the sync worker does after a tick: evaluate, then send what is due."""
    services = get_services(app.server)
    summary = monitors.evaluate_all(services.sessions, services.store, services.settings, now)
    notify.dispatch(services.sessions, services.settings, now=now)
    return summary


def _states(app: Any) -> dict[int, str]:
    """Return every monitor's state."""
    with get_services(app.server).sessions() as db:
        return {m.id: m.state for m in db.scalars(select(Monitor)).all()}


# A/A ----------------------------------------------------------------------------------------------


def test_a_a_replay_of_a_day_fires_at_most_five_percent_of_monitors(app) -> None:
    rng = np.random.default_rng(20261126)
    prompts = [_prompt(app, f"aa-{i}") for i in range(3)]
    ids = [_create(app, p, m) for p in prompts for m in METRICS]
    start = datetime(2026, 11, 20, tzinfo=UTC)
    ever_fired: set[int] = set()
    seen: set[str] = set()
    # 24 simulated hours, a look every hour, each version getting ~300 calls an hour from the
    # same distributions: identical versions. (tests/test_monitor_stats.py looks every 5 minutes
    # at 400 monitors per kind, in numpy.)
    for step in range(24):
        begin = start + timedelta(hours=step)
        for prompt in prompts:
            for version in ("v1", "v2"):
                _write(app, prompt, version, 300, begin, begin + timedelta(hours=1), rng)
        _tick(app, begin + timedelta(hours=1))
        states = _states(app)
        seen.update(states.values())
        ever_fired |= {i for i, s in states.items() if s in ("firing", "resolved")}
    assert "ok" in seen  # the monitors did decide, not only wait for data
    assert len(ever_fired) <= 0.05 * len(ids), f"{len(ever_fired)} of {len(ids)} fired"
    print(f"A/A: {len(ever_fired)} of {len(ids)} monitors ever fired")


# Injected shift and recovery ------------------------------------------------------------------


def test_a_p95_shift_fires_once_signed_and_recovery_resolves_once(
    app, client, auth, receiver
) -> None:
    rng = np.random.default_rng(7)
    prompt = _prompt(app, "checkout")
    services = get_services(app.server)
    with services.sessions.begin() as db:
        channel = monitors.create_channel(
            db,
            "ana@example.com",
            {"name": "hook", "kind": "webhook", "target": receiver.url, "secret": SECRET},
            services.settings,
        )
    monitor_id = _create(app, prompt, "p95_ms", channels=[channel.id], min_effect=10)
    t0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
    interval = timedelta(seconds=5)
    # Both versions behave alike for two hours: ok, nothing sent.
    _write(app, prompt, "v1", 1500, t0 - timedelta(hours=2), t0, rng)
    _write(app, prompt, "v2", 1500, t0 - timedelta(hours=2), t0, rng)
    _tick(app, t0)
    assert _states(app)[monitor_id] == "ok" and receiver.requests == []
    # The next sync brings v2 calls 30 % slower (its p95 too): it fires within two looks.
    _write(app, prompt, "v2", 3000, t0 - timedelta(minutes=50), t0, rng, latency_scale=1.3)
    fired_at = None
    for look in (1, 2):
        _tick(app, t0 + look * interval)
        if _states(app)[monitor_id] == "firing":
            fired_at = look
            break
    assert fired_at is not None, _last(app, monitor_id)
    print(f"shift: fired at look {fired_at}")
    for look in range(3, 8):  # later looks send nothing more
        _tick(app, t0 + look * interval)
    (message,) = receiver.bodies()
    assert message["event"] == "firing" and message["state"] == "firing"
    assert message["candidate"]["label"] == "v2" and message["baseline"]["label"] == "v1"
    assert message["interval"]["low"] > 0 and message["candidate"]["n"] >= 1500
    assert "always-valid" in message["interval"]["method"]
    # The link opens the analytics comparison of exactly these versions.
    link = urlsplit(message["link"])
    query = parse_qs(link.query)
    assert link.path == "/analytics" and query["prompt"] == ["checkout"]
    assert query["a"][0].endswith(":v1") and query["b"][0].endswith(":v2")
    auth.create()
    auth.login()
    page = route(client, link.path, f"?{link.query}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert query["a"][0] in text and query["b"][0] in text

    # The shift is gone: two hours later both versions behave alike again.
    t1 = t0 + timedelta(hours=3)
    _write(app, prompt, "v1", 1500, t1 - timedelta(hours=2), t1, rng)
    _write(app, prompt, "v2", 1500, t1 - timedelta(hours=2), t1, rng)
    for look in range(4):
        _tick(app, t1 + look * interval)
    assert _states(app)[monitor_id] == "resolved"
    firing, resolved = receiver.bodies()
    assert firing["event"] == "firing" and resolved["event"] == "resolved"
    assert resolved["previous_state"] == "firing"
    with services.sessions() as db:
        sent = db.scalars(select(Notification).where(Notification.status == "sent")).all()
    assert len(sent) == 2


def _last(app: Any, monitor_id: int) -> Any:
    """Return a monitor's last result, for a failure's message."""
    with get_services(app.server).sessions() as db:
        return db.get_one(Monitor, monitor_id).last_result


# Roles and input -------------------------------------------------------------------------------


def test_viewers_read_members_write_and_bad_input_gets_a_message(app, client, auth) -> None:
    _prompt(app, "faq")
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    good = {"name": "faq p95", "prompt": "faq", "metric": "p95_ms"}
    refused = client.post("/api/monitors", json=good)
    assert refused.status_code == 403 and "members and admins" in refused.json["message"]
    assert client.get("/api/monitors").json == []
    auth.logout()
    auth.create("member@example.com", role="member")
    auth.login("member@example.com")
    for body, message in (
        ({**good, "metric": "p97_ms"}, "metric: 'p97_ms' is not one of"),
        ({**good, "window_hours": -3}, "window_hours: must be more than 0"),
        ({**good, "min_samples": 0}, "min_samples"),
        ({**good, "prompt": "nope"}, "no prompt named 'nope'"),
        ({**good, "metric": "score_mean"}, "evaluator"),
        ({**good, "rule": "threshold"}, "threshold"),
        ({**good, "channels": [99]}, "no channel 99"),
        ({**good, "colour": "red"}, "Unknown field 'colour'"),
        ({"name": "x"}, "prompt: required"),
    ):
        answer = client.post("/api/monitors", json=body)
        assert answer.status_code == 400 and message in answer.json["message"], (body, answer.json)
    assert (
        client.post("/api/monitors", data="{", content_type="application/json").status_code == 400
    )
    created = client.post("/api/monitors", json=good)
    assert created.status_code == 201, created.json
    ident = created.json["id"]
    assert created.json["state"] == "insufficient" and "p95 latency" in created.json["rule"]
    # A bodiless post with the cookie alone would be a cross-site form's: refused for the token.
    assert client.post(f"/api/monitors/{ident}/pause").status_code == 400
    assert client.post(f"/api/monitors/{ident}/pause", json={}).json["paused"] is True
    assert client.post(f"/api/monitors/{ident}/resume", json={}).json["paused"] is False
    changed = client.put(f"/api/monitors/{ident}", json={**good, "window_hours": 6})
    assert changed.status_code == 200 and changed.json["spec"]["window_hours"] == 6
    # A script with a token from /api/token writes without the cookie.
    token = client.get("/api/token").json["token"]
    script = app.server.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    assert script.delete(f"/api/monitors/{ident}", headers=headers).status_code == 200
    assert script.get(f"/api/monitors/{ident}", headers=headers).status_code == 404
    # Channels are an admin's (a channel points this server at an address); secrets never
    # come back.
    channel = {"name": "ops", "kind": "webhook", "target": "https://example.com/h"}
    member_channel = client.post("/api/channels", json={**channel, "secret": "x" * 20})
    assert member_channel.status_code == 403 and "admins" in member_channel.json["message"]
    auth.logout()
    auth.create("admin@example.com", role="admin")
    auth.login("admin@example.com")
    made = client.post(
        "/api/channels",
        json={**channel, "secret": "sixteen-chars-s3cret"},
    )
    assert made.status_code == 201, made.json
    assert "s3cret" not in json.dumps(made.json) and made.json["secret"] == "stored encrypted"
    assert "s3cret" not in client.get("/api/channels").get_data(as_text=True)
    bad = client.post("/api/channels", json={"name": "x", "kind": "pager", "target": ""})
    assert bad.status_code == 400


def test_the_alerts_page_shows_states_and_hides_forms_from_viewers(app, client, auth) -> None:
    prompt = _prompt(app, "faq")
    _create(app, prompt, "error_rate")
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    page = route(client, "/alerts").get_data(as_text=True)
    assert "faq error_rate" in page and "alerts-read-only" in page
    assert "insufficient data" in page


def test_the_alerts_page_shows_sparkline_times_in_the_display_zone(app, client, auth) -> None:
    prompt = _prompt(app, "faq")
    _create(app, prompt, "error_rate")
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    # The body is JSON, which escapes the zone's slash: read it back.
    berlin = json.dumps(route(client, "/alerts", "?tz=Europe/Berlin").json)
    assert "times in Europe/Berlin" in berlin
    # Without tz= the user's own setting (none here: UTC) decides.
    assert "times in UTC" in json.dumps(route(client, "/alerts").json)


@pytest.mark.browser
def test_the_alerts_page_shows_a_firing_monitor_and_the_navbar_badge(dash_duo, app) -> None:
    rng = np.random.default_rng(11)
    prompt = _prompt(app, "checkout")
    now = datetime.now(UTC).replace(microsecond=0)
    _write(app, prompt, "v1", 1500, now - timedelta(hours=2), now, rng)
    _write(app, prompt, "v2", 1500, now - timedelta(hours=2), now, rng, latency_scale=1.6)
    firing = _create(app, prompt, "p95_ms", name="checkout p95: newest against the one before")
    _create(app, prompt, "error_rate", name="checkout error rate")
    for step in range(3):
        _tick(app, now - timedelta(minutes=30 * (2 - step)))
    assert _states(app)[firing] == "firing"
    ensure_demo_user(app)
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(app, navigate=False)
    login(dash_duo, "/alerts")
    dash_duo.wait_for_contains_text(f"#alerts-monitor-{firing}", "firing", timeout=20)
    dash_duo.wait_for_text_to_equal("#nav-alerts-badge", "1", timeout=20)
    # The sparkline draws both sides (Plotly loads after the card).
    dash_duo.wait_for_element(f"#alerts-monitor-{firing} .js-plotly-plot .scatterlayer", timeout=20)
    card = dash_duo.find_element(f"#alerts-monitor-{firing}").text
    assert "v2" in card and "v1" in card and "n = " in card
    # "Add channel" stays on one line: no taller than the inputs beside it.
    button = dash_duo.find_element("#alerts-c-add")
    field = dash_duo.find_element("#alerts-c-name")
    assert button.size["height"] <= field.size["height"] + 4, (button.size, field.size)
    save_screenshot(dash_duo, "alerts")
    assert dash_duo.get_logs() == []
