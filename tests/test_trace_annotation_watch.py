"""The trace annotation watch against a real Phoenix: old traces' annotations come, change, go.

Each test syncs the scratch Phoenix, then makes every span look synced days ago, beyond the hot
window and the day's slices: only the watch's comparison of trace annotation summaries can
then find what changed on those traces.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from app import create_app
from devtools.demo_data import PROJECT_NAMES
from devtools.phoenix import PhoenixServer
from services import annotation_watch
from services.container import Services, get_services
from services.phoenix import PhoenixClient
from services.span_facts import parse_time
from services.sync import PromptSync
from store import analytics
from store.facts import FactStore

from .test_sync import age_spans, our_counts, phoenix_truth, post_annotation, store_count

pytestmark = pytest.mark.integration


@pytest.fixture
def synced(settings: Any, scratch_phoenix: PhoenixServer) -> Iterator[tuple[Services, PromptSync]]:
    """A sync that has read the scratch Phoenix, whose spans all look synced three days ago."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=scratch_phoenix.url))
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    sync.tick()
    age_spans(sync.store, timedelta(days=3))
    sync.watch.interval_s = 0.0  # a check every tick, not every minute
    assert not sync.tick().changed  # our summaries equal Phoenix's: nothing to re-read
    yield services, sync
    services.store.close()


def _oldest_trace(store: FactStore) -> tuple[str, str]:
    """Return the trace and project of the earliest stored span."""
    trace_id, project = store.transport.query(
        "SELECT trace_id, project FROM llm_spans ORDER BY start_time LIMIT 1"
    ).rows[0]
    return str(trace_id), str(project)


def _held(store: FactStore, name: str, table: str = "trace_annotations") -> list[tuple[Any, ...]]:
    """Return the live trace annotations of a name: (trace id, score, trace start)."""
    return store.transport.query(
        f"SELECT trace_id, score, trace_start_time FROM {table} FINAL"  # noqa: S608
        " WHERE name = {name:String} AND is_deleted = 0",
        {"name": name},
    ).rows


def _phoenix_start(url: str, project: str, trace_id: str) -> datetime:
    """Return Phoenix's start time of a trace, as its REST listing of traces tells it."""
    for trace in PhoenixClient(url).traces(project, limit=1000):
        if trace["trace_id"] == trace_id:
            return parse_time(trace["start_time"])
    raise AssertionError(f"Phoenix has no trace {trace_id}")


def _delete(url: str, project: str, name: str) -> None:
    """Delete every trace annotation of a name in a project, as a Phoenix user would."""
    requests.delete(
        f"{url}/v1/projects/{project}/trace_annotations",
        params={"name": name, "delete_all": "true"},
        timeout=30,
    ).raise_for_status()


def test_a_trace_annotation_on_a_trace_synced_long_ago_appears_changes_and_goes(
    synced: tuple[Services, PromptSync],
    scratch_phoenix: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services, sync = synced
    trace_id, project = _oldest_trace(sync.store)
    start = _phoenix_start(scratch_phoenix.url, project, trace_id)
    # Found by the trace watch alone: no span's annotations are read again.
    span_reads: list[list[str]] = []
    real = sync.phoenix.span_annotations

    def spy(project: str, span_ids: Any, **kwargs: Any) -> Any:
        span_reads.append(list(span_ids))
        return real(project, span_ids, **kwargs)

    monkeypatch.setattr(sync.phoenix, "span_annotations", spy)
    # Ranges are halved down to two traces, and only those traces are read again.
    monkeypatch.setattr(annotation_watch, "LEAF_TRACES", 2)
    trace_reads: list[str] = []
    real_traces = sync.phoenix.trace_annotations

    def trace_spy(project: str, trace_ids: Any, **kwargs: Any) -> Any:
        trace_reads.extend(trace_ids)
        return real_traces(project, trace_ids, **kwargs)

    monkeypatch.setattr(sync.phoenix, "trace_annotations", trace_spy)
    name = f"old-trace-{uuid.uuid4().hex[:8]}"

    post_annotation(scratch_phoenix.url, "trace", trace_id, name, 0.25)
    assert sync.tick().annotations == 1
    assert trace_id in trace_reads and len(trace_reads) <= 2
    held = _held(sync.store, name)
    assert [(t, s) for t, s, _start in held] == [(trace_id, 0.25)]
    assert held[0][2].timestamp() == start.timestamp()  # the instant Phoenix's range filters

    post_annotation(scratch_phoenix.url, "trace", trace_id, name, 0.75)  # same identifier: edit
    trace_reads.clear()
    assert sync.tick().annotations == 1
    assert trace_id in trace_reads and len(trace_reads) <= 2
    assert [(t, s) for t, s, _start in _held(sync.store, name)] == [(trace_id, 0.75)]

    _delete(scratch_phoenix.url, project, name)
    trace_reads.clear()
    assert sync.tick().annotations == 1
    assert trace_id in trace_reads and len(trace_reads) <= 2
    assert _held(sync.store, name) == []

    trace_reads.clear()
    assert not sync.tick().changed
    assert trace_reads == span_reads == []
    assert our_counts(services) == phoenix_truth(scratch_phoenix.url)


def test_an_idle_trace_check_rereads_nothing_and_costs_two_requests_a_project(
    synced: tuple[Services, PromptSync],
    scratch_phoenix: PhoenixServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _services, sync = synced
    # At least one annotated trace, so the comparison has something to agree on.
    trace_id, _project = _oldest_trace(sync.store)
    post_annotation(scratch_phoenix.url, "trace", trace_id, f"idle-{uuid.uuid4().hex[:8]}", 1.0)
    assert sync.tick().annotations == 1
    asked: list[str] = []
    real = sync.phoenix.request

    def request(method: str, path: str, **kwargs: Any) -> Any:
        asked.append(path)
        return real(method, path, **kwargs)

    monkeypatch.setattr(sync.phoenix, "request", request)
    projects = sync.phoenix.projects()
    asked.clear()
    for project in projects:
        assert sync.watch.changed_traces(project) == []
    # The names, then (where there are annotations) one request for every summary.
    assert len(projects) < len(asked) <= 2 * len(projects)
    assert set(asked) == {"/graphql"}
    # And a whole tick, the watch due, reads no annotation of any trace or span.
    asked.clear()
    assert not sync.tick().changed
    assert not [p for p in asked if p.endswith(("_annotations", "/traces"))]


def test_annotations_of_traces_without_llm_spans_are_compared_but_kept_apart(
    synced: tuple[Services, PromptSync], scratch_phoenix: PhoenixServer
) -> None:
    """Phoenix's trace summaries count every trace; the pages count only traces we sync."""
    _services, sync = synced
    url = scratch_phoenix.url
    project = PROJECT_NAMES[0]
    trace_id = uuid.uuid4().hex
    # A trace of one CHAIN span, among the project's old traces.
    first = sync.store.transport.query(
        "SELECT min(start_time) FROM llm_spans WHERE project = {p:String}", {"p": project}
    ).rows[0][0]
    moment = (first + timedelta(seconds=1)).astimezone(UTC).isoformat()
    span = {
        "id": "",
        "name": "retrieve-only",
        "context": {"trace_id": trace_id, "span_id": uuid.uuid4().hex[:16]},
        "span_kind": "CHAIN",
        "parent_id": None,
        "start_time": moment,
        "end_time": moment,
        "status_code": "OK",
    }
    requests.post(
        f"{url}/v1/projects/{project}/spans", json={"data": [span]}, timeout=30
    ).raise_for_status()
    px = PhoenixClient(url)
    deadline = time.monotonic() + 30
    listed: set[str] = set()
    while trace_id not in listed:
        assert time.monotonic() < deadline, "Phoenix did not store the trace"
        time.sleep(0.1)
        listed = {t["trace_id"] for t in px.traces(project, start=parse_time(moment), limit=1000)}
    name = f"no-llm-{uuid.uuid4().hex[:8]}"
    before = analytics.trace_score_summary(sync.store)
    post_annotation(url, "trace", trace_id, name, 0.5)

    assert not sync.tick().changed  # no page shows it...
    assert _held(sync.store, name) == []
    held = _held(sync.store, name, "unsynced_trace_annotations")  # ...but the watch holds it
    assert [(t, s) for t, s, _start in held] == [(trace_id, 0.5)]
    assert analytics.trace_score_summary(sync.store) == before
    for each in px.projects():
        assert sync.watch.changed_traces(each) == []  # so Phoenix's summaries and ours agree

    _delete(url, project, name)
    assert not sync.tick().changed
    assert _held(sync.store, name, "unsynced_trace_annotations") == []
    for each in px.projects():
        assert sync.watch.changed_traces(each) == []


def test_a_trace_annotation_read_with_its_spans_gets_its_trace_start_at_the_next_check(
    settings: Any, scratch_phoenix: PhoenixServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spans' reads know no trace start; the check asks Phoenix for it, then agrees."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=scratch_phoenix.url))
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    try:
        sync.tick()
        undated = "trace_start_time IS NULL AND is_deleted = 0"
        assert store_count(sync.store, "trace_annotations", undated) == 0
        # A trace synced just now (its spans are hot) that no trace annotation dates yet.
        trace_id, project = sync.store.transport.query(
            "SELECT trace_id, project FROM llm_spans WHERE trace_id NOT IN"
            " (SELECT trace_id FROM trace_annotations) ORDER BY start_time LIMIT 1"
        ).rows[0]
        name = f"hot-trace-{uuid.uuid4().hex[:8]}"
        post_annotation(scratch_phoenix.url, "trace", trace_id, name, 0.5)
        listed: list[str] = []
        real = sync.phoenix.traces

        def spy(project: str, **kwargs: Any) -> Any:
            listed.append(project)
            return real(project, **kwargs)

        monkeypatch.setattr(sync.phoenix, "traces", spy)
        sync.watch.checked()  # the spans' reads alone, first
        assert sync.tick().annotations == 1
        assert [(t, s, start) for t, s, start in _held(sync.store, name)] == [(trace_id, 0.5, None)]
        sync.watch.interval_s = 0.0
        assert not sync.tick().changed
        held = _held(sync.store, name)
        assert [(t, s) for t, s, _start in held] == [(trace_id, 0.5)]
        start = _phoenix_start(scratch_phoenix.url, project, trace_id)
        assert held[0][2].timestamp() == start.timestamp()
        assert listed == []  # dated by asking for the trace, not by re-reading a range
        for each in sync.phoenix.projects():
            assert sync.watch.changed_traces(each) == []
    finally:
        services.store.close()


class _EverywhereDifferent:
    """A stand-in Phoenix whose every range holds an annotation and a million traces."""

    def __init__(self) -> None:
        self.requests = 0

    def graphql(self, query: str, _variables: Any) -> dict[str, Any]:
        self.requests += 1
        node: dict[str, Any] = {}
        for alias, field in re.findall(r"(a\d+): (traceCount|traceAnnotationSummary)", query):
            node[alias] = (
                1_000_000
                if field == "traceCount"
                else {"count": 1, "meanScore": 1.0, "labelFractions": []}
            )
        return {"node": node}


def test_a_check_rereads_at_most_a_few_ranges_the_newest_and_asks_little() -> None:
    """A store that differs everywhere (just migrated) is caught up over checks, not in one."""
    phoenix = _EverywhereDifferent()
    watch = annotation_watch.AnnotationWatch(phoenix, store=None)  # type: ignore[arg-type]
    end = datetime(2026, 11, 20, tzinfo=UTC)
    root = annotation_watch.Range(end - timedelta(days=1), end, ("quality",))
    kind = annotation_watch._Kind(
        summary="traceAnnotationSummary",
        arguments="",
        count="traceCount",
        ours=lambda _part: {},
        small=lambda _part, count: count is not None and count <= annotation_watch.LEAF_TRACES,
    )
    leaves = watch._bisect({"id": "p", "name": "p"}, root, {}, kind, 16)
    assert len(leaves) == 16
    assert all(leaf.end - leaf.start <= annotation_watch.LEAF_WIDTH for leaf in leaves)
    assert leaves[-1].end == end  # the newest
    assert phoenix.requests <= 2 * 18  # two a level (32 ranges of two aliases), 17 levels
