"""The sync against a real Phoenix: counts equal Phoenix's, repeats change nothing, no gaps."""

from __future__ import annotations

import uuid

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
from services.sync import SyncLock

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

    from services.sync import PromptSync, SyncWorker

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
