"""The sync against a real Phoenix: counts equal Phoenix's, repeats change nothing, no gaps."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import create_app
from db.migrate import upgrade
from db.models import (
    AnnotationFact,
    Prompt,
    PromptEvaluation,
    PromptTrace,
    SpanFact,
    SyncState,
    SyncStatus,
)
from devtools.demo_data import PROJECT_NAMES, send_traces
from devtools.phoenix import PhoenixServer, free_port, start_phoenix
from services.container import get_services
from services.phoenix import PhoenixClient, PhoenixUnavailable, SpanQuery
from services.span_facts import AnnotationFacts, SpanFacts
from services.sync import PromptSync
from services.sync_worker import SyncLock

from .conftest import PHOENIX_UI_ENV

pytestmark = pytest.mark.integration
TEMPLATE = "llm.prompt_template.template"


@pytest.fixture
def sync_phoenix(scratch_phoenix: PhoenixServer) -> PhoenixServer:
    """The session's scratch Phoenix, which these tests add spans to and stop."""
    return scratch_phoenix


def phoenix_truth(url: str) -> dict[str, int]:
    """Count in Phoenix itself what the sync should have recorded."""
    px = PhoenixClient(url)
    by_project = {p: list(px.spans(p, SpanQuery(span_kinds=["LLM"]))) for p in PROJECT_NAMES}
    llm = [span for spans in by_project.values() for span in spans]
    prompted = [s for s in llm if s["attributes"].get(TEMPLATE)]
    annotations = [
        a
        for project, spans in by_project.items()
        for a in px.span_annotations(project, [s["context"]["span_id"] for s in spans])
    ]
    return {
        "span_facts": len(llm),
        "prompt_traces": len({s["context"]["trace_id"] for s in prompted}),
        "annotation_facts": len({a["id"] for a in annotations}),
        "prompt_evaluations": len({a["id"] for a in annotations}),
        "prompts": len(
            {
                (s["attributes"][TEMPLATE], s["attributes"].get("llm.prompt_template.version"))
                for s in prompted
            }
        ),
    }


def our_counts(db: Session) -> dict[str, int]:
    """Count what the sync recorded."""

    def count(model: type) -> int:
        return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)

    return {
        "span_facts": count(SpanFact),
        "prompt_traces": count(PromptTrace),
        "annotation_facts": count(AnnotationFact),
        "prompt_evaluations": count(PromptEvaluation),
        "prompts": count(Prompt),
    }


@pytest.fixture
def synced(settings, sync_phoenix):
    """An app on the module's Phoenix, with its sync."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=sync_phoenix.url))
    services = get_services(app.server)
    assert services.sync is not None
    return app, services.sync, services.sessions


def _watermark(sessions) -> int:
    with sessions() as db:
        status = db.get(SyncStatus, 1)
        return status.watermark if status else 0


def test_first_sync_equals_phoenix_and_a_second_changes_nothing(synced, sync_phoenix) -> None:
    _app, sync, sessions = synced
    first = sync.tick()
    assert first.changed
    with sessions() as db:
        assert our_counts(db) == phoenix_truth(sync_phoenix.url)
        # Registry prompts are linked by template hash, under their registry names.
        names = set(db.scalars(sa.select(Prompt.name)))
        assert {"support-answer", "email-draft"} <= names
        assert all(db.scalars(sa.select(Prompt.phoenix_prompt_id)))
        versions = set(db.scalars(sa.select(SpanFact.prompt_version)))
        assert {"v1", "v2"} <= versions
    mark = _watermark(sessions)
    again = sync.tick()
    assert not again.changed and again.spans_read == 0
    assert _watermark(sessions) == mark


def test_new_spans_and_late_annotations_are_picked_up(synced, sync_phoenix) -> None:
    _app, sync, sessions = synced
    sync.tick()
    new = send_traces(sync_phoenix.url, count=12, seed=901)
    result = sync.tick()
    assert result.llm_spans == 12
    # An evaluation written after its span was synced still arrives.
    span_id = next(ids[0] for ids in new.values() if ids)
    body = {
        "data": [
            {
                "span_id": span_id,
                "name": "late-review",
                "annotator_kind": "HUMAN",
                "result": {"label": "good", "score": 0.75},
                "identifier": "",
            }
        ]
    }
    requests.post(
        f"{sync_phoenix.url}/v1/span_annotations?sync=true", json=body, timeout=30
    ).raise_for_status()
    assert sync.tick().annotations == 1
    body["data"][0]["result"] = {"label": "bad", "score": 0.25}
    requests.post(
        f"{sync_phoenix.url}/v1/span_annotations?sync=true", json=body, timeout=30
    ).raise_for_status()
    assert sync.tick().annotations == 1
    with sessions() as db:
        fact = db.scalar(sa.select(AnnotationFact).where(AnnotationFact.name == "late-review"))
        assert (fact.label, fact.score) == ("bad", 0.25)
        assert our_counts(db) == phoenix_truth(sync_phoenix.url)


def test_a_lost_cursor_or_a_rebuild_duplicates_and_loses_nothing(synced, sync_phoenix) -> None:
    app, sync, sessions = synced
    sync.tick()
    with sessions.begin() as db:
        db.execute(sa.update(SyncState).values(cursor=None))
    sync.tick()
    truth = phoenix_truth(sync_phoenix.url)
    with sessions() as db:
        assert our_counts(db) == truth
    result = app.server.test_cli_runner().invoke(args=["sync", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "Read " in result.output
    with sessions() as db:
        assert our_counts(db) == truth


def test_sync_on_postgresql(settings, sync_phoenix, pg_url) -> None:
    upgrade(pg_url)
    app = create_app(
        settings.with_overrides(
            phoenix_enabled=True, phoenix_url=sync_phoenix.url, database_url=pg_url
        )
    )
    sync = get_services(app.server).sync
    assert sync is not None
    sync.tick()
    sync.tick()
    with get_services(app.server).sessions() as db:
        assert our_counts(db) == phoenix_truth(sync_phoenix.url)
    get_services(app.server).engine.dispose()


def test_sync_lock_admits_one_holder(redis_url) -> None:
    for url in (redis_url, ""):
        name = f"test-lock-{uuid.uuid4().hex}"
        first, second = SyncLock(url, name=name), SyncLock(url, name=name)
        assert first.acquire()
        assert first.acquire()  # renewing our own lock
        assert not second.acquire()
        first.release()
        assert second.acquire()
        second.release()


@contextmanager
def counted(engine: sa.Engine, phoenix: PhoenixClient, monkeypatch) -> Iterator[dict[str, list]]:
    """Record every SQL statement sent to the database and every request sent to Phoenix."""
    seen: dict[str, list] = {"sql": [], "phoenix": []}

    def on_execute(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen["sql"].append(statement)

    real = phoenix.request

    def request(method: str, path: str, **kwargs: Any):
        seen["phoenix"].append((method, path, dict(kwargs.get("params") or {})))
        return real(method, path, **kwargs)

    monkeypatch.setattr(phoenix, "request", request)
    sa.event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_execute)


def test_a_page_costs_a_few_statements_and_requests_however_many_spans(
    synced, sync_phoenix, monkeypatch
) -> None:
    app, sync, _sessions = synced
    engine = get_services(app.server).engine
    with counted(engine, sync.phoenix, monkeypatch) as seen:
        result = sync.tick()
    pages = [p for _m, path, p in seen["phoenix"] if path.endswith("/spans") and "span_kind" in p]
    costs = [path for _m, path, _p in seen["phoenix"] if path == "/graphql"]
    annotations = [path for _m, path, _p in seen["phoenix"] if path.endswith("/span_annotations")]
    llm_by_project = {
        p: len(list(PhoenixClient(sync_phoenix.url).spans(p, SpanQuery(span_kinds=["LLM"]))))
        for p in PROJECT_NAMES
    }
    assert result.llm_spans == sum(llm_by_project.values()) >= 60
    # Only LLM spans are paged, 1000 a page: one page per project (the empty one included).
    assert len(pages) == len(result.projects)
    # Their costs in one GraphQL request per page (not one per 50 spans), their annotations
    # 500 spans a request.
    assert len(costs) == sum(1 for n in llm_by_project.values() if n)
    assert len(annotations) == sum(math.ceil(n / 500) for n in llm_by_project.values())
    # A handful of SQL statements per page and per tick, not a few per span.
    assert len(seen["sql"]) <= 8 * len(pages) + 25, seen["sql"]
    assert len(seen["sql"]) < result.llm_spans


def test_a_backlog_gets_its_annotations_in_the_tick_that_reads_it(
    synced, sync_phoenix, monkeypatch
) -> None:
    """However few recent spans are re-read each tick, a tick's own spans all get theirs."""
    from services import sync as sync_module

    _app, sync, sessions = synced
    monkeypatch.setattr(sync_module, "ANNOTATION_HOT_MAX_SPANS", 5)
    monkeypatch.setattr(sync_module, "ANNOTATION_BATCH_SPANS", 10)  # and in batches
    sync.page_size = 7
    sync.tick()
    with sessions() as db:
        assert our_counts(db) == phoenix_truth(sync_phoenix.url)


def test_cursors_skip_to_the_newest_span_of_any_kind(synced, sync_phoenix, monkeypatch) -> None:
    """Only LLM spans are paged, but an idle tick must not scan the other kinds again."""
    import time
    from datetime import UTC, datetime

    app, sync, sessions = synced
    px = PhoenixClient(sync_phoenix.url)
    project = PROJECT_NAMES[0]
    # A span of another kind after every LLM span of the project: no LLM page returns it.
    tail = uuid.uuid4().hex[:16]
    moment = datetime.now(UTC).isoformat()
    span = {
        "id": "",
        "name": "tail",
        "context": {"trace_id": uuid.uuid4().hex, "span_id": tail},
        "span_kind": "CHAIN",
        "parent_id": None,
        "start_time": moment,
        "end_time": moment,
        "status_code": "OK",
    }
    requests.post(
        f"{sync_phoenix.url}/v1/projects/{project}/spans", json={"data": [span]}, timeout=30
    ).raise_for_status()
    deadline = time.monotonic() + 30
    while px.span_page(project, limit=1, order="desc").spans[0]["context"]["span_id"] != tail:
        assert time.monotonic() < deadline, "Phoenix did not store the span"
        time.sleep(0.1)
    sync.tick()
    with sessions() as db:
        cursors = {s.project: s.cursor for s in db.scalars(sa.select(SyncState))}
    for name in PROJECT_NAMES:
        assert cursors[name] == px.span_page(name, limit=1, order="desc").spans[0]["id"], name
    engine = get_services(app.server).engine
    with counted(engine, sync.phoenix, monkeypatch) as seen:
        assert not sync.tick().changed
    asked = [p for _m, path, p in seen["phoenix"] if path == f"/v1/projects/{project}/spans"]
    assert asked == [
        {
            "limit": "1000",
            "sort": "id",
            "order": "asc",
            "span_kind": "LLM",
            "cursor": cursors[project],
        }
    ]


def test_costs_of_a_page_by_connection_equal_those_by_alias(sync_phoenix) -> None:
    px = PhoenixClient(sync_phoenix.url)
    priced = 0
    for project in px.projects():
        llm = [s["id"] for s in px.spans(project["name"], SpanQuery(span_kinds=["LLM"]))]
        if not llm:
            continue
        by_alias = px.span_costs(llm)
        assert px.llm_span_costs(project["id"], llm) == by_alias
        # Spans that are not consecutive: what the connection skips is asked by alias.
        assert px.llm_span_costs(project["id"], llm[::3]) == {i: by_alias[i] for i in llm[::3]}
        priced += sum(cost is not None for cost in by_alias.values())
    assert priced, "no span has a cost: the comparison proved nothing"


class RecordingWriter:
    """A fact writer that keeps what it is given, as the facts store's writer will."""

    def __init__(self) -> None:
        self.spans: list[SpanFacts] = []
        self.annotations: dict[str, AnnotationFacts] = {}

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        assert all(f.project == project for f in facts)
        self.spans += facts

    def write_annotations(self, facts: Sequence[AnnotationFacts]) -> int:
        fresh = [f for f in facts if self.annotations.get(f.annotation_id) != f]
        self.annotations.update((f.annotation_id, f) for f in facts)
        return len(fresh)

    def clear(self) -> None:
        self.spans.clear()
        self.annotations.clear()


def test_every_fact_goes_through_the_one_writer(synced, sync_phoenix) -> None:
    _app, own, sessions = synced
    writer = RecordingWriter()
    sync = PromptSync(own.phoenix, sessions, writer=writer)
    sync.tick()
    truth = phoenix_truth(sync_phoenix.url)
    assert len(writer.spans) == len({f.span_id for f in writer.spans}) == truth["span_facts"]
    assert len(writer.annotations) == truth["annotation_facts"]
    prompted = [f for f in writer.spans if f.template is not None]
    assert prompted and all(f.prompt_id and f.prompt_version for f in prompted)
    assert all(writer.annotations[a].prompt_id for a in writer.annotations)
    with sessions() as db:
        # The writer holds every fact and link; our tables hold cursors, prompts and status.
        assert our_counts(db) == {**dict.fromkeys(truth, 0), "prompts": truth["prompts"]}
        assert db.scalar(sa.select(sa.func.count()).select_from(SyncState))
    assert not sync.tick().changed
    sync.rebuild()
    assert len(writer.spans) == truth["span_facts"]


def test_phoenix_down_then_back_resumes_without_a_gap(synced, sync_phoenix) -> None:
    """Runs last in this module: it stops and restarts the module's Phoenix."""
    _app, sync, sessions = synced
    sync.tick()
    sync_phoenix.stop()
    with pytest.raises(PhoenixUnavailable):
        sync.tick()
    sync.record_failure(PhoenixUnavailable("down for the test"))
    with sessions() as db:
        assert db.get(SyncStatus, 1).last_error == "down for the test"
    restarted = start_phoenix(
        __import__("pathlib").Path(sync_phoenix.workdir),
        port=sync_phoenix.port,
        grpc_port=sync_phoenix.grpc_port,
        extra_env=PHOENIX_UI_ENV,
    )
    sync_phoenix.pid = restarted.pid
    send_traces(sync_phoenix.url, count=8, seed=902)
    sync.tick()
    with sessions() as db:
        assert our_counts(db) == phoenix_truth(sync_phoenix.url)
        assert db.get(SyncStatus, 1).last_error is None


def test_worker_backs_off_while_phoenix_is_down(settings) -> None:
    import threading

    from services.sync_worker import SyncWorker

    app = create_app(settings)
    sessions = get_services(app.server).sessions
    dead = PhoenixClient(f"http://127.0.0.1:{free_port()}", retries=0)
    worker = SyncWorker(
        PromptSync(dead, sessions), SyncLock(""), interval_s=0.05, max_backoff_s=0.4
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    while len(worker.delays) < 6:
        threading.Event().wait(0.05)
    worker.stop()
    thread.join()
    assert worker.delays[:6] == [0.1, 0.2, 0.4, 0.4, 0.4, 0.4]
    with sessions() as db:
        status = db.get(SyncStatus, 1)
        assert status is not None and "cannot be reached" in (status.last_error or "")


@pytest.mark.integration
def test_annotation_refresh_takes_a_flat_slice_per_tick(
    settings, phoenix_server, demo_loaded, monkeypatch
) -> None:
    """Older spans of the last day are re-read a slice per tick, in turn; new ones every tick."""
    from datetime import UTC, datetime, timedelta

    from services import sync as sync_module

    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    sync.tick()
    with services.sessions.begin() as db:
        db.execute(sa.update(SpanFact).values(synced_at=datetime.now(UTC) - timedelta(hours=2)))
        total = db.scalar(sa.select(sa.func.count()).select_from(SpanFact)) or 0
    assert total >= 60
    slice_size = total // 3 + 1  # three ticks cover every span, the fourth starts over
    monkeypatch.setattr(sync_module, "ANNOTATION_SLICE_SPANS", slice_size)
    monkeypatch.setattr(sync_module, "ANNOTATION_SLICE_INTERVAL_S", 0.0)
    asked: list[set[str]] = []
    real = sync.phoenix.span_annotations

    def spy(project, span_ids, **kwargs):
        ids = list(span_ids)
        asked[-1].update(ids)
        return real(project, ids, **kwargs)

    monkeypatch.setattr(sync.phoenix, "span_annotations", spy)
    for _ in range(4):
        asked.append(set())
        assert not sync.tick().changed  # nothing new or edited: no redraw for anyone
    assert [len(a) for a in asked[:3]] == [slice_size, slice_size, total - 2 * slice_size]
    with services.sessions() as db:
        every = set(db.scalars(sa.select(SpanFact.phoenix_span_id)))
    assert set().union(*asked[:3]) == every  # every span of the day, each once per round
    assert asked[3] == asked[0]  # and round again
