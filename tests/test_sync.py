"""The sync against a real Phoenix: counts equal Phoenix's, repeats change nothing, no gaps.

The facts live in the store (ClickHouse); prompts, links, cursors and status in our database.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import sqlalchemy as sa

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
from services.container import Services, get_services
from services.fact_writer import AnnotationBatch, SqlFactWriter
from services.phoenix import PhoenixClient, PhoenixUnavailable, SpanQuery
from services.span_facts import AnnotationFacts, SpanFacts
from services.sync import PromptSync
from services.sync_worker import SyncLock
from store import analytics
from store.facts import FactStore, SpanRow

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
    trace_annotations = [
        a
        for project, spans in by_project.items()
        for a in px.trace_annotations(project, [s["context"]["trace_id"] for s in spans])
    ]
    return {
        "span_facts": len(llm),
        "prompt_traces": len({s["context"]["trace_id"] for s in prompted}),
        "annotation_facts": len({a["id"] for a in annotations}),
        "trace_annotation_facts": len({a["id"] for a in trace_annotations}),
        "prompt_evaluations": len({a["id"] for a in annotations}),
        "prompts": len(
            {
                (s["attributes"][TEMPLATE], s["attributes"].get("llm.prompt_template.version"))
                for s in prompted
            }
        ),
    }


def store_count(store: FactStore, table: str, live: str = "1") -> int:
    """Count a store table's rows as readers see them: newest version, deleted ones left out."""
    result = store.transport.query(f"SELECT count() FROM {table} FINAL WHERE {live}")  # noqa: S608
    return int(result.rows[0][0])


def our_counts(services: Services) -> dict[str, int]:
    """Count what the sync recorded: facts in the store, prompts and links in our database."""
    live = "is_deleted = 0"
    with services.sessions() as db:

        def count(model: type) -> int:
            return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)

        return {
            "span_facts": store_count(services.store, "llm_spans"),
            "prompt_traces": count(PromptTrace),
            "annotation_facts": store_count(services.store, "span_annotations", live),
            "trace_annotation_facts": store_count(services.store, "trace_annotations", live),
            "prompt_evaluations": count(PromptEvaluation),
            "prompts": count(Prompt),
        }


@pytest.fixture
def synced(settings, sync_phoenix):
    """An app on the module's Phoenix, with its sync."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=sync_phoenix.url))
    services = get_services(app.server)
    assert services.sync is not None
    yield app, services.sync, services.sessions
    services.store.close()


def _watermark(sessions) -> int:
    with sessions() as db:
        status = db.get(SyncStatus, 1)
        return status.watermark if status else 0


def test_first_sync_equals_phoenix_and_a_second_changes_nothing(synced, sync_phoenix) -> None:
    _app, sync, sessions = synced
    first = sync.tick()
    assert first.changed
    assert our_counts(get_services(_app.server)) == phoenix_truth(sync_phoenix.url)
    with sessions() as db:
        # Registry prompts are linked by template hash, under their registry names.
        names = set(db.scalars(sa.select(Prompt.name)))
        assert {"support-answer", "email-draft"} <= names
        assert all(db.scalars(sa.select(Prompt.phoenix_prompt_id)))
    versions = sync.store.transport.query("SELECT DISTINCT prompt_version FROM llm_spans FINAL")
    assert {"v1", "v2"} <= {row[0] for row in versions.rows}
    mark = _watermark(sessions)
    again = sync.tick()
    assert not again.changed and again.spans_read == 0
    assert _watermark(sessions) == mark


def test_new_spans_and_late_annotations_are_picked_up(synced, sync_phoenix) -> None:
    _app, sync, _sessions = synced
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
    found = sync.store.transport.query(
        "SELECT label, score FROM span_annotations FINAL"
        " WHERE name = 'late-review' AND is_deleted = 0"
    )
    assert found.rows == [("bad", 0.25)]
    assert our_counts(get_services(_app.server)) == phoenix_truth(sync_phoenix.url)


def test_a_lost_cursor_or_a_rebuild_duplicates_and_loses_nothing(synced, sync_phoenix) -> None:
    app, sync, sessions = synced
    sync.tick()
    with sessions.begin() as db:
        db.execute(sa.update(SyncState).values(cursor=None))
    sync.tick()
    truth = phoenix_truth(sync_phoenix.url)
    services = get_services(app.server)
    assert our_counts(services) == truth
    result = app.server.test_cli_runner().invoke(args=["sync", "--rebuild"])
    assert result.exit_code == 0, result.output
    assert "Read " in result.output
    assert our_counts(services) == truth


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
    assert our_counts(get_services(app.server)) == phoenix_truth(sync_phoenix.url)
    get_services(app.server).engine.dispose()
    get_services(app.server).store.close()


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
    sync.watch.checked()  # its GraphQL requests are counted in their own test
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

    _app, sync, _sessions = synced
    monkeypatch.setattr(sync_module, "ANNOTATION_HOT_MAX_SPANS", 5)
    monkeypatch.setattr(sync_module, "ANNOTATION_BATCH_SPANS", 10)  # and in batches
    sync.page_size = 7
    sync.tick()
    assert our_counts(get_services(_app.server)) == phoenix_truth(sync_phoenix.url)


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


def store_aggregates(store: FactStore) -> dict[str, int]:
    """What the pages count, read through the store's own aggregates."""
    scores = analytics.score_summary(store, analytics.Filters())
    return {
        "span_facts": analytics.kpis(store, analytics.Filters()).metrics.count,
        "annotation_facts": sum(s.annotations for s in scores),
        "trace_annotation_facts": sum(s.annotations for s in analytics.trace_score_summary(store)),
    }


def post_annotation(url: str, kind: str, target: str, name: str, score: float) -> None:
    """Write an evaluation of a span or trace into Phoenix, as an evaluator would."""
    key = "span_id" if kind == "span" else "trace_id"
    body = {
        "data": [
            {
                key: target,
                "name": name,
                "annotator_kind": "CODE",
                "result": {"label": "ok", "score": score},
                "identifier": "",
            }
        ]
    }
    requests.post(
        f"{url}/v1/{kind}_annotations?sync=true", json=body, timeout=30
    ).raise_for_status()


def test_two_ticks_over_the_same_pages_and_two_syncs_at_once_count_nothing_twice(
    synced, sync_phoenix
) -> None:
    app, sync, sessions = synced
    services = get_services(app.server)
    # Two syncs on one store and database, as two replicas would, at the same time.
    other = PromptSync(PhoenixClient(sync_phoenix.url), sessions, services.store)
    errors: list[BaseException] = []

    def run(each: PromptSync) -> None:
        try:
            each.tick()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(each,)) for each in (sync, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    # And the same pages read once more from the start.
    with sessions.begin() as db:
        db.execute(sa.update(SyncState).values(cursor=None))
    sync.tick()
    truth = phoenix_truth(sync_phoenix.url)
    assert our_counts(services) == truth
    aggregates = store_aggregates(services.store)
    assert aggregates == {key: truth[key] for key in aggregates}


def test_trace_annotations_arrive(synced, sync_phoenix) -> None:
    app, sync, _sessions = synced
    sync.tick()
    trace_id = sync.store.transport.query("SELECT any(trace_id) FROM llm_spans").rows[0][0]
    name = f"trace-review-{uuid.uuid4().hex[:8]}"
    post_annotation(sync_phoenix.url, "trace", trace_id, name, 0.5)
    assert sync.tick().annotations == 1
    found = sync.store.transport.query(
        "SELECT trace_id, score FROM trace_annotations FINAL WHERE name = {name:String}",
        {"name": name},
    )
    assert found.rows == [(trace_id, 0.5)]
    assert our_counts(get_services(app.server)) == phoenix_truth(sync_phoenix.url)
    assert not sync.tick().changed


def test_a_deleted_annotation_disappears(synced, sync_phoenix) -> None:
    app, sync, _sessions = synced
    sync.tick()
    span = sync.store.transport.query("SELECT any(span_id), any(project) FROM llm_spans").rows[0]
    trace = sync.store.transport.query(
        "SELECT trace_id FROM llm_spans WHERE span_id = {id:String}", {"id": span[0]}
    ).rows[0][0]
    name = f"doomed-{uuid.uuid4().hex[:8]}"
    post_annotation(sync_phoenix.url, "span", span[0], name, 1.0)
    post_annotation(sync_phoenix.url, "trace", trace, name, 1.0)
    assert sync.tick().annotations == 2
    store = sync.store
    before = store_aggregates(store)
    for kind in ("span", "trace"):
        requests.delete(
            f"{sync_phoenix.url}/v1/projects/{span[1]}/{kind}_annotations",
            params={"name": name, "delete_all": "true"},  # narrowed to this name
            timeout=30,
        ).raise_for_status()
    assert sync.tick().annotations == 2
    assert store_count(store, "span_annotations", f"name = '{name}' AND is_deleted = 0") == 0
    assert store_count(store, "trace_annotations", f"name = '{name}' AND is_deleted = 0") == 0
    after = store_aggregates(store)
    assert after["annotation_facts"] == before["annotation_facts"] - 1
    assert after["trace_annotation_facts"] == before["trace_annotation_facts"] - 1
    assert our_counts(get_services(app.server)) == phoenix_truth(sync_phoenix.url)


def test_rebuild_moves_facts_from_sql_to_the_store(synced, sync_phoenix) -> None:
    """A deployment from before the store: its SQL facts, then `sync --rebuild`."""
    app, own, sessions = synced
    services = get_services(app.server)
    # What the sync wrote before the store: facts in our SQL tables (and a stale extra one).
    old = PromptSync(own.phoenix, sessions, services.store, writer=SqlFactWriter(sessions))
    old.tick()
    with sessions.begin() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(SpanFact))
        db.add(
            SpanFact(
                phoenix_span_id="gone-from-phoenix",
                phoenix_trace_id="gone",
                project=PROJECT_NAMES[0],
                start_time=datetime.now(UTC),
                latency_ms=1.0,
                status="OK",
            )
        )
    assert store_count(services.store, "llm_spans") == 0
    result = app.server.test_cli_runner().invoke(args=["sync", "--rebuild"])
    assert result.exit_code == 0, result.output
    truth = phoenix_truth(sync_phoenix.url)
    assert our_counts(services) == truth
    assert store_aggregates(services.store) == {
        key: truth[key] for key in ("span_facts", "annotation_facts", "trace_annotation_facts")
    }
    with sessions() as db:
        # Nothing reads the SQL facts any more; the rebuild emptied them.
        assert not db.scalar(sa.select(sa.func.count()).select_from(SpanFact))
        assert not db.scalar(sa.select(sa.func.count()).select_from(AnnotationFact))


class RecordingWriter:
    """A fact writer that keeps what it is given, as the facts store's writer will."""

    def __init__(self) -> None:
        self.spans: list[SpanFacts] = []
        self.annotations: dict[str, AnnotationFacts] = {}

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        assert all(f.project == project for f in facts)
        self.spans += facts

    def write_annotations(self, batch: AnnotationBatch) -> int:
        facts = batch.span_annotations
        fresh = [f for f in facts if self.annotations.get(f.annotation_id) != f]
        self.annotations.update((f.annotation_id, f) for f in facts)
        return len(fresh)

    def clear(self) -> None:
        self.spans.clear()
        self.annotations.clear()


def test_every_fact_goes_through_the_one_writer(synced, sync_phoenix) -> None:
    _app, own, sessions = synced
    writer = RecordingWriter()
    sync = PromptSync(own.phoenix, sessions, own.store, writer=writer)
    sync.tick()
    truth = phoenix_truth(sync_phoenix.url)
    assert len(writer.spans) == len({f.span_id for f in writer.spans}) == truth["span_facts"]
    assert len(writer.annotations) == truth["annotation_facts"]
    prompted = [f for f in writer.spans if f.template is not None]
    assert prompted and all(f.prompt_id and f.prompt_version for f in prompted)
    assert all(writer.annotations[a].prompt_id for a in writer.annotations)
    # The writer holds every fact and link; our tables hold cursors, prompts and status.
    assert our_counts(get_services(_app.server)) == {
        **dict.fromkeys(truth, 0),
        "prompts": truth["prompts"],
    }
    with sessions() as db:
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
    assert our_counts(get_services(_app.server)) == phoenix_truth(sync_phoenix.url)
    with sessions() as db:
        assert db.get(SyncStatus, 1).last_error is None


def test_worker_backs_off_while_phoenix_is_down(settings) -> None:
    import threading

    from services.sync_worker import SyncWorker

    app = create_app(settings)
    sessions = get_services(app.server).sessions
    dead = PhoenixClient(f"http://127.0.0.1:{free_port()}", retries=0)
    worker = SyncWorker(
        PromptSync(dead, sessions, get_services(app.server).store),
        SyncLock(""),
        interval_s=0.05,
        max_backoff_s=0.4,
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


def age_spans(store: FactStore, age: timedelta) -> set[str]:
    """Make every stored span look synced `age` ago (rewritten, as ClickHouse has no UPDATE)."""
    columns = [f.name for f in fields(SpanRow)]
    rows = store.transport.query(f"SELECT {', '.join(columns)} FROM llm_spans FINAL")  # noqa: S608
    store.transport.command("TRUNCATE TABLE llm_spans")
    store.write_spans((SpanRow(*row) for row in rows.rows), synced_at=datetime.now(UTC) - age)
    return {row[0] for row in rows.rows}


@pytest.mark.integration
def test_annotation_refresh_takes_a_flat_slice_per_tick(
    settings, phoenix_server, demo_loaded, monkeypatch
) -> None:
    """Older spans of the last day are re-read a slice per tick, in turn; new ones every tick."""
    from services import sync as sync_module

    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    sync.tick()
    every = age_spans(services.store, timedelta(hours=2))
    total = len(every)
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
    assert set().union(*asked[:3]) == every  # every span of the day, each once per round
    assert asked[3] == asked[0]  # and round again


def _span_score(store: FactStore, name: str) -> list[tuple[str, float]]:
    """Return the live span annotations of a name: (span id, score)."""
    return store.transport.query(
        "SELECT span_id, score FROM span_annotations FINAL"
        " WHERE name = {name:String} AND is_deleted = 0",
        {"name": name},
    ).rows


def test_annotations_on_spans_synced_long_ago_appear_change_and_go(synced, sync_phoenix) -> None:
    """The summary watch finds additions, edits and deletions however old the span."""
    app, sync, _sessions = synced
    sync.tick()
    age_spans(sync.store, timedelta(days=3))  # beyond the hot window and the day's slices
    sync.watch.interval_s = 0.0
    assert not sync.tick().changed  # our summaries equal Phoenix's: nothing to re-read
    span, project = sync.store.transport.query(
        "SELECT span_id, project FROM llm_spans ORDER BY start_time LIMIT 1"
    ).rows[0]
    name = f"offline-{uuid.uuid4().hex[:8]}"
    post_annotation(sync_phoenix.url, "span", span, name, 0.25)
    assert sync.tick().annotations == 1
    assert _span_score(sync.store, name) == [(span, 0.25)]
    post_annotation(sync_phoenix.url, "span", span, name, 0.75)  # same identifier: an edit
    assert sync.tick().annotations == 1
    assert _span_score(sync.store, name) == [(span, 0.75)]
    requests.delete(
        f"{sync_phoenix.url}/v1/projects/{project}/span_annotations",
        params={"name": name, "delete_all": "true"},
        timeout=30,
    ).raise_for_status()
    assert sync.tick().annotations == 1
    assert _span_score(sync.store, name) == []
    assert not sync.tick().changed
    assert our_counts(get_services(app.server)) == phoenix_truth(sync_phoenix.url)


def test_an_idle_summary_check_costs_two_requests_a_project(
    synced, sync_phoenix, monkeypatch
) -> None:
    _app, sync, _sessions = synced
    sync.tick()
    projects = sync.phoenix.projects()
    asked: list[str] = []
    real = sync.phoenix.request

    def request(method: str, path: str, **kwargs: Any):
        asked.append(path)
        return real(method, path, **kwargs)

    monkeypatch.setattr(sync.phoenix, "request", request)
    for project in projects:
        assert sync.watch.changed_spans(project) == []
    assert len(asked) <= 2 * len(projects)
