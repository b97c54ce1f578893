"""Phoenix misbehaving: client, proxies, pages and sync each fail clearly, then recover.

Every fault of `tests/faults.py` is injected between the dashboard and a real Phoenix. The proxies'
answers to a fault are, by design:

| fault | /api/phoenix and /phoenix answer |
|---|---|
| timeout | 504 `phoenix_timeout` |
| truncated | 502 `phoenix_incomplete` (see below) |
| malformed_json | passed through: the proxy relays bytes, it does not parse them |
| status_500 | 502 `phoenix_error`, Phoenix's body and headers dropped |
| status_429 | 429 `phoenix_rate_limited` with Phoenix's Retry-After |
| closed, refused | 502 `phoenix_unavailable` |

Answers up to 64 KiB are read whole before the proxy answers, so a cut shows as a 502; a longer one
is streamed, and a cut ends it early under the status already sent (its Content-Length then tells
the browser). `.tmp/fault-results.json` records, per fault, whether every layer survived it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import create_app
from db.models import PromptEvaluation, PromptTrace, SyncState, SyncStatus
from devtools.demo_data import PROJECT_NAMES, send_traces
from devtools.phoenix import PhoenixServer
from services.cache import cache
from services.container import get_services
from services.phoenix import (
    PhoenixClient,
    PhoenixError,
    PhoenixHTTPError,
    PhoenixUnavailable,
    SpanQuery,
)
from services.sync_worker import SyncLock, SyncWorker
from settings import PROJECT_DIR, Settings
from store.facts import FactStore

from .callbacks import home_poll, route
from .conftest import AuthActions
from .faults import (
    CONNECT_TIMEOUT_S,
    MALFORMED_BODY,
    READ_TIMEOUT_S,
    SECRET_HEADER,
    SECRET_VALUE,
    FaultServer,
    FaultyPhoenix,
    faulty_settings,
)
from .faults import FAULTS as ALL_FAULTS

pytestmark = pytest.mark.integration

FAULTS = tuple(f for f in ALL_FAULTS if f != "none")
# Faults where Phoenix cannot be talked to at all, as against answering badly.
UNREACHABLE = {"timeout", "truncated", "closed", "refused"}
LAYERS = ("client", "proxy", "pages", "sync")
TEMPLATE = "llm.prompt_template.template"
RESULTS_PATH = PROJECT_DIR / ".tmp" / "fault-results.json"
# What a raw exception or an upstream dump looks like; no message a person reads may hold it.
DUMP_MARKERS = ("Traceback", "urllib3", "HTTPConnectionPool", "Max retries", "object at 0x")
survived: dict[str, set[str]] = {fault: set() for fault in FAULTS}


@pytest.fixture(scope="module", autouse=True)
def fault_results() -> Iterator[None]:
    """Write which faults every layer survived, for the docs, when the module ends."""
    yield
    RESULTS_PATH.parent.mkdir(exist_ok=True)
    RESULTS_PATH.write_text(
        json.dumps(
            {
                "faults": len(FAULTS),
                "survived": {f: survived[f] == set(LAYERS) for f in FAULTS},
                "layers": {f: sorted(survived[f]) for f in FAULTS},
            },
            indent=2,
        )
        + "\n"
    )


def assert_clear(message: str) -> None:
    """Check a message is short, readable and leaks nothing from upstream."""
    assert len(message) < 300, message
    for marker in (*DUMP_MARKERS, SECRET_VALUE):
        assert marker not in message, message


def inject(server: FaultServer, fault: str, **options: Any) -> None:
    """Inject a fault; a 429 asks for longer than the client's Retry-After budget."""
    if fault == "status_429":
        options.setdefault("retry_after_s", 30)
    server.inject(fault, **options)


def client_on(url: str) -> PhoenixClient:
    """A Phoenix client configured as the app builds it, with the faults' short timeouts."""
    return PhoenixClient(url, connect_timeout_s=CONNECT_TIMEOUT_S, read_timeout_s=READ_TIMEOUT_S)


# 1. The client -------------------------------------------------------------------------------

EXPECTED_CLIENT = {
    "timeout": (PhoenixUnavailable, "did not answer in time"),
    "truncated": (PhoenixUnavailable, "broke off its answer"),
    "malformed_json": (PhoenixHTTPError, "not valid JSON"),
    "status_500": (PhoenixHTTPError, "answered 500: Internal Server Error"),
    "status_429": (PhoenixHTTPError, "answered 429"),
    "closed": (PhoenixUnavailable, "cannot be reached"),
    "refused": (PhoenixUnavailable, "cannot be reached"),
}


@pytest.mark.parametrize("fault", FAULTS)
def test_client_raises_a_typed_clear_error(faulty_phoenix: FaultyPhoenix, fault: str) -> None:
    server = faulty_phoenix.server
    px = client_on(server.url)
    assert px.projects()
    inject(server, fault)
    kind, text = EXPECTED_CLIENT[fault]
    calls = [px.projects, px.version, lambda: px.graphql("query { __typename }")]
    for call in calls:
        with pytest.raises(kind) as raised:
            call()
        # A 200 from the version route that is not a version has its own message.
        malformed_version = fault == "malformed_json" and call == px.version
        assert ("not a Phoenix version" if malformed_version else text) in str(raised.value)
        assert_clear(str(raised.value))
    if fault == "status_429":
        assert isinstance(raised.value, PhoenixHTTPError) and raised.value.retry_after_s == 30
    if fault == "malformed_json":
        # Even a 200 that is not a version must not read as "Connected to Phoenix".
        assert "not a Phoenix version" in px.status().error  # type: ignore[operator]
    server.clear()
    assert px.projects() and px.status().ok
    survived[fault].add("client")


def test_client_honours_retry_after_within_its_budget(faulty_phoenix: FaultyPhoenix) -> None:
    server = faulty_phoenix.server
    px = client_on(server.url)
    # Once, with a short Retry-After: the read waits that long, retries and succeeds.
    server.inject("status_429", path=r"^/v1/projects", times=1, retry_after_s=1)
    assert px.projects()
    seen = server.seen(r"^/v1/projects")
    assert [s.fault for s in seen[-2:]] == ["status_429", "none"]
    assert seen[-1].at - seen[-2].at >= 0.95
    # A wait past the budget is reported at once, with what Phoenix asked for, never slept.
    server.reset_seen()
    server.inject("status_429", retry_after_s=3600)
    began = time.monotonic()
    with pytest.raises(PhoenixHTTPError) as raised:
        px.projects()
    assert time.monotonic() - began < 1.0
    assert raised.value.status == 429 and raised.value.retry_after_s == 3600
    assert "retry in 3600 s" in str(raised.value)
    assert len(server.seen()) == 1
    # Writes are never replayed, whatever the status.
    with pytest.raises(PhoenixHTTPError):
        px.request("POST", "/v1/projects", json={"name": "never-created"})
    assert [s.method for s in server.seen()] == ["GET", "POST"]


# 2. The proxies ------------------------------------------------------------------------------

EXPECTED_PROXY = {
    "timeout": (504, "phoenix_timeout"),
    "truncated": (502, "phoenix_incomplete"),
    "status_500": (502, "phoenix_error"),
    "status_429": (429, "phoenix_rate_limited"),
    "closed": (502, "phoenix_unavailable"),
    "refused": (502, "phoenix_unavailable"),
}


def logged_in(settings: Settings) -> tuple[Any, FlaskClient]:
    """Build the app and a client signed in as a member."""
    app = create_app(settings)
    client = app.server.test_client()
    auth = AuthActions(app, client)
    email = f"member-{uuid.uuid4().hex[:6]}@example.com"
    auth.create(email=email, role="member")
    assert auth.login(email=email).status_code == 302
    return app, client


@pytest.mark.parametrize("fault", FAULTS)
def test_proxies_answer_a_fault_clearly(faulty_phoenix: FaultyPhoenix, fault: str) -> None:
    server = faulty_phoenix.server
    _app, client = logged_in(faulty_phoenix.settings)
    paths = ("/api/phoenix/v1/projects?limit=5", "/phoenix/projects")
    for path in paths:
        assert client.get(path).status_code == 200
    inject(server, fault, retry_after_s=7)
    for path in paths:
        response = client.get(path)
        body = response.get_data()
        assert SECRET_VALUE.encode() not in body
        assert SECRET_HEADER not in response.headers
        assert SECRET_VALUE not in str(response.headers)
        if fault == "malformed_json":
            # The proxy relays bytes as Phoenix sent them; it does not judge JSON.
            assert response.status_code == 200 and body == MALFORMED_BODY
            continue
        status, error = EXPECTED_PROXY[fault]
        assert response.status_code == status, body
        assert response.mimetype == "application/json"
        answer = json.loads(body)
        assert set(answer) == {"error", "message"}
        assert answer["error"] == error
        assert_clear(answer["message"])
        if fault == "status_429":
            assert response.headers["Retry-After"] == "7"
            assert "try again in 7 s" in answer["message"]
        else:
            assert "Retry-After" not in response.headers
    server.clear()
    for path in paths:
        assert client.get(path).status_code == 200
    survived[fault].add("proxy")


# 3. The pages --------------------------------------------------------------------------------


def _page(client: FlaskClient, path: str) -> str:
    """Render a page's layout through Dash Pages' own callback; return it as text."""
    response = route(client, path)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return json.dumps(response.json)


def _home_poll(client: FlaskClient) -> str:
    """Run the home page's poll: watermark, live status and the Phoenix banner."""
    return json.dumps(home_poll(client, seen=-1))


@pytest.fixture
def faulty_scratch(
    settings: Settings, scratch_phoenix: PhoenixServer, fault_server_for: Any
) -> FaultyPhoenix:
    """A fault server in front of the scratch Phoenix (with demo data), and settings for it."""
    server = fault_server_for(scratch_phoenix.url)
    return FaultyPhoenix(server, faulty_settings(settings, server.url), scratch_phoenix)


def test_pages_show_a_clear_message_for_every_fault(faulty_scratch: FaultyPhoenix) -> None:
    from pages import analytics as analytics_page
    from pages import home, traces

    server = faulty_scratch.server
    app, client = logged_in(faulty_scratch.settings)
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    assert "Connected to Phoenix" in _home_poll(client)
    failures: dict[str, str] = {}
    for fault in FAULTS:
        inject(server, fault)
        with app.server.app_context():
            cache.clear()  # the banner's probe and the registry are cached for seconds
            server.reset_seen()
            # Quick stats, traces table and analytics charts read our store only.
            stats, _top, *_picker = home.redraw(None)
            trace_parts = traces.redraw(None, "?range=30d")
            charts = analytics_page.redraw(None, "version", "?range=30d")
            assert server.seen() == [], "page data must never come from Phoenix"
            # The trace count, a component or (since the paged grid) its text.
            count = trace_parts[2]
            shown = (
                count if isinstance(count, str) else json.dumps(count.to_plotly_json(), default=str)
            )
            assert stats and " traces" in shown
            assert charts[0] is not None
            # The pane falls back to Phoenix's project list instead of failing.
            _pane, path = analytics_page.follow_project(f"?project={PROJECT_NAMES[0]}", None)
            assert path == "/projects"
        texts = {
            "banner": _home_poll(client),
            "experiments": _page(client, "/experiments"),
            "playground": _page(client, "/playground"),
        }
        heading = "Phoenix can't be reached" if fault in UNREACHABLE else "Phoenix answers with"
        page_text = (
            "Phoenix can't be reached"
            if fault in UNREACHABLE
            else "rate limiting"
            if fault == "status_429"
            else "Phoenix answered with an error"
        )
        expected = {"banner": heading, "experiments": page_text, "playground": page_text}
        for name, text in texts.items():
            problems = [m for m in (*DUMP_MARKERS, SECRET_VALUE) if m in text]
            if expected[name] not in text or problems:
                failures[f"{fault}/{name}"] = f"expected {expected[name]!r}, leaked {problems}"
        if not any(key.startswith(f"{fault}/") for key in failures):
            survived[fault].add("pages")
        server.clear()
    assert failures == {}
    with app.server.app_context():
        cache.clear()
    assert "Connected to Phoenix" in _home_poll(client)


# 4. The sync ---------------------------------------------------------------------------------


def phoenix_links(url: str) -> dict[str, set[str]]:
    """Read from Phoenix itself what the sync's link and fact rows must hold."""
    px = PhoenixClient(url)
    llm: dict[str, list[dict[str, Any]]] = {
        p: list(px.spans(p, SpanQuery(span_kinds=["LLM"]))) for p in PROJECT_NAMES
    }
    prompted = {p: [s for s in spans if s["attributes"].get(TEMPLATE)] for p, spans in llm.items()}
    evaluations = {
        a["id"]
        for p, spans in prompted.items()
        for a in px.span_annotations(p, [s["context"]["span_id"] for s in spans])
    }
    px.close()
    return {
        "span_facts": {s["context"]["span_id"] for spans in llm.values() for s in spans},
        "prompt_traces": {s["context"]["trace_id"] for ss in prompted.values() for s in ss},
        "prompt_evaluations": evaluations,
    }


def stored_span_ids(store: FactStore, project: str | None = None) -> list[str]:
    """Read the span ids in the store as readers see them (FINAL), so a duplicate would show."""
    where = "1" if project is None else "project = {project:String}"
    result = store.transport.query(
        f"SELECT span_id FROM llm_spans FINAL WHERE {where}",  # noqa: S608 - fixed text
        {"project": project} if project is not None else None,
    )
    return [row[0] for row in result.rows]


def our_links(services: Any) -> dict[str, list[str]]:
    """Read the sync's facts and rows, as lists so that a duplicate would show."""
    with services.sessions() as db:
        return {
            "span_facts": stored_span_ids(services.store),
            "prompt_traces": list(db.scalars(sa.select(PromptTrace.phoenix_trace_id))),
            "prompt_evaluations": list(db.scalars(sa.select(PromptEvaluation.phoenix_eval_id))),
        }


def assert_cursor_not_past_stored(url: str, services: Any) -> None:
    """Each project's cursor covers exactly the spans stored: none skipped, none beyond it."""
    px = PhoenixClient(url)
    with services.sessions() as db:
        cursors = {s.project: s.cursor for s in db.scalars(sa.select(SyncState))}
    stored = {project: set(stored_span_ids(services.store, project)) for project in PROJECT_NAMES}
    for project in PROJECT_NAMES:
        ordered = list(px.spans(project))
        ids = [s["id"] for s in ordered]
        upto = ids.index(cursors[project]) + 1 if cursors.get(project) else 0
        read = {s["context"]["span_id"] for s in ordered[:upto] if s["span_kind"] == "LLM"}
        assert stored[project] == read, project
    px.close()


def run_worker_once(sync: Any) -> None:
    """Let the real worker loop run one tick, with its logging and failure record, then stop."""
    worker = SyncWorker(sync, SyncLock(""), interval_s=60)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 30
    while not worker.delays and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.stop()
    thread.join(10)
    assert not thread.is_alive()


def _progress(sessions: Any) -> tuple[int, int]:
    """Return the spans read so far over all projects, and the pages' watermark."""
    with sessions() as db:
        read = db.scalar(sa.select(sa.func.sum(SyncState.spans_read))) or 0
        status = db.get(SyncStatus, 1)
        return int(read), int(status.watermark if status else 0)


# Where each fault strikes, so that the sync's different reads each meet one: the span pages
# (first or a later one), the GraphQL costs of a page, the annotations, the project list.
SYNC_TARGETS: dict[str, dict[str, Any]] = {
    "timeout": {"path": r"/spans\?", "skip": 1},
    "truncated": {"path": r"^/graphql", "skip": 1},
    "malformed_json": {"path": r"/span_annotations"},
    "status_500": {"path": r"/spans\?"},
    "status_429": {"path": r"/spans\?", "skip": 2},
    "closed": {"path": r"^/v1/projects\?"},
    "refused": {},
}


def test_sync_survives_every_fault_and_catches_up_exactly(
    faulty_scratch: FaultyPhoenix, caplog: pytest.LogCaptureFixture
) -> None:
    server, phoenix = faulty_scratch.server, faulty_scratch.phoenix
    app = create_app(faulty_scratch.settings)
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    # Small pages, so a fault can strike after some pages of a tick have committed.
    sync.page_size = 3
    sync.tick()
    caplog.set_level(logging.INFO, logger="services.sync")
    caplog.set_level(logging.INFO, logger="services.sync_worker")
    for n, fault in enumerate(FAULTS):
        new = send_traces(phoenix.url, count=4, seed=7100 + n)
        if fault == "malformed_json":
            # An evaluation that lands during the outage must arrive after it.
            span_id = next(ids[0] for ids in new.values() if ids)
            body = {
                "data": [
                    {
                        "span_id": span_id,
                        "name": f"fault-review-{n}",
                        "annotator_kind": "HUMAN",
                        "result": {"label": "good", "score": 1.0},
                        "identifier": "",
                    }
                ]
            }
            requests.post(
                f"{phoenix.url}/v1/span_annotations?sync=true", json=body, timeout=30
            ).raise_for_status()
        inject(server, fault, **SYNC_TARGETS[fault])
        read_before, mark_before = _progress(services.sessions)
        caplog.clear()
        run_worker_once(sync)
        failed = [r for r in caplog.records if r.getMessage().startswith("sync failed")]
        assert not [r for r in caplog.records if "crashed" in r.getMessage()], fault
        assert len(failed) == 1, (fault, [r.getMessage() for r in caplog.records])
        assert_clear(failed[0].getMessage())
        with services.sessions() as db:
            status = db.get(SyncStatus, 1)
            assert status is not None and status.last_error
            assert status.last_error in failed[0].getMessage()
        read_after, mark_after = _progress(services.sessions)
        # A tick that stored pages before failing still tells the pages to redraw.
        assert (mark_after > mark_before) == (read_after > read_before), fault
        if fault == "malformed_json":
            # Every span page committed before the annotations failed: a partial tick.
            assert read_after > read_before
        # The stale badge says why, in words.
        with app.server.test_request_context():
            from components.live import create_live_status
            from services.live import live_state

            badge = json.dumps([str(c) for c in create_live_status(live_state(), paused=False)])
        assert "stale" in badge and "Sync failing since" in badge
        assert_cursor_not_past_stored(phoenix.url, services)
        server.clear()
        result = sync.tick()
        assert result.changed
        truth, ours = phoenix_links(phoenix.url), our_links(services)
        for table, ids in ours.items():
            assert len(ids) == len(set(ids)), f"{fault}: duplicate {table}"
            assert set(ids) == truth[table], f"{fault}: {table} differs from Phoenix"
        with services.sessions() as db:
            healed = db.get(SyncStatus, 1)
            assert healed is not None and healed.last_error is None
        survived[fault].add("sync")
    assert not sync.tick().changed  # caught up: nothing left to read
    services.engine.dispose()
    services.store.close()


def test_a_short_rate_limit_costs_the_sync_a_wait_not_a_failure(
    faulty_scratch: FaultyPhoenix,
) -> None:
    server, phoenix = faulty_scratch.server, faulty_scratch.phoenix
    app = create_app(faulty_scratch.settings)
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    send_traces(phoenix.url, count=2, seed=7300)
    server.inject("status_429", path=r"/spans\?", times=1, retry_after_s=1)
    try:
        result = services.sync.tick()
    except PhoenixError as exc:  # pragma: no cover - the failure message is the point
        pytest.fail(f"a 1 s rate limit failed the tick: {exc}")
    assert result.llm_spans == 2
    assert [s.fault for s in server.seen(r"/spans\?")].count("status_429") == 1
    services.engine.dispose()
    services.store.close()
