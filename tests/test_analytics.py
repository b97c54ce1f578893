"""Analytics from the facts store: page-level results, and KPIs equal to Phoenix's own."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from devtools.demo_data import PROJECT_NAMES
from services import analytics, prompt_filters
from services.container import get_services
from services.filters import FilterState
from services.phoenix import PhoenixClient
from store import analytics as store_analytics
from store.analytics import Filters

from .seed import seed

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_kpis_of_seeded_facts_count_unknowns_apart(app) -> None:
    seeded = seed(app, spans=40)
    store = get_services(app.server).store
    kpis = store_analytics.kpis(store, Filters()).metrics
    assert kpis.count == seeded.spans == 40
    assert kpis.errors == 10 and kpis.error_rate == 0.25
    assert kpis.tokens_unknown == kpis.cost_unknown == 8  # every fifth call
    assert kpis.tokens == sum(15 + i for i in range(40) if i % 5)
    assert kpis.p50_ms == pytest.approx(100 + 7.25 * 19.5)


def test_empty_store_gives_empty_pages_not_errors(app) -> None:
    with app.server.test_request_context("/"):
        for page, args in (
            ("traces", (None, "")),
            ("evaluations", (None, "")),
            ("analytics", (None, "prompt_version", "")),
        ):
            outputs = sys.modules[f"pages.{page}"].redraw(*args)
            assert outputs[-1].children == f"No {_what(page)} match these filters yet.", page


def _what(page: str) -> str:
    return {"traces": "traces", "evaluations": "evaluations", "analytics": "LLM calls"}[page]


@pytest.mark.parametrize(
    ("span", "size"),
    [
        (timedelta(hours=1), timedelta(minutes=1)),
        (timedelta(hours=24), timedelta(minutes=15)),
        (timedelta(days=7), timedelta(hours=3)),
        (timedelta(days=30), timedelta(hours=6)),
    ],
)
def test_bucket_size_keeps_series_readable(span: timedelta, size: timedelta) -> None:
    assert analytics.bucket_size(T0, T0 + span) == size


@pytest.mark.integration
@pytest.mark.parametrize("project", PROJECT_NAMES)
def test_kpis_equal_phoenix_graphql_aggregates(synced_app, phoenix_server, project) -> None:
    px = PhoenixClient(phoenix_server.url)
    project_id = px.project(project)["id"]
    now = datetime.now(UTC)
    cases = [
        (Filters(project=project), "span_kind == 'LLM'", None, None),
        (
            Filters(project=project, versions=("v1",)),
            "span_kind == 'LLM' and llm.prompt_template.version == 'v1'",
            None,
            None,
        ),
        (
            Filters(project=project, start=now - timedelta(days=3), end=now),
            "span_kind == 'LLM'",
            now - timedelta(days=3),
            now,
        ),
    ]
    services = get_services(synced_app.server)
    for filters, condition, start, end in cases:
        kpis = store_analytics.kpis(services.store, filters)
        ours = kpis.metrics
        means = {s.name: s.mean for s in kpis.scores if s.mean is not None}
        theirs = px.project_aggregates(project_id, start=start, end=end, filter_condition=condition)
        assert ours.count == theirs.record_count, condition
        assert ours.tokens == theirs.token_count_total, condition
        assert (ours.cost or 0.0) == pytest.approx(theirs.cost_total or 0.0, abs=1e-9), condition
        # Both interpolate linearly between ranks (percentile_cont / SQLite percentile()).
        for mine, phoenix in (
            (ours.p50_ms, theirs.p50_ms),
            (ours.p95_ms, theirs.p95_ms),
            (ours.p99_ms, theirs.p99_ms),
        ):
            assert mine == pytest.approx(phoenix, rel=1e-6, abs=1e-3), condition
        for name in ("correctness", "helpfulness"):
            summary = px.annotation_summary(
                project_id, name, start=start, end=end, filter_condition=condition
            )
            if summary is None or summary.mean_score is None:
                assert name not in means
                continue
            assert means[name] == pytest.approx(summary.mean_score, abs=1e-9)


def test_unknown_filters_say_so_and_results_are_cached_by_watermark(app) -> None:
    seed(app)
    services = get_services(app.server)
    with services.sessions() as db, app.server.app_context():
        store = services.store
        nope = prompt_filters.unknown_filter_message(db, store, FilterState(project="nope"))
        assert nope is not None and "No project named 'nope'" in nope
        v9 = prompt_filters.unknown_filter_message(db, store, FilterState(versions=("v9",)))
        assert v9 is not None and "No prompt version named 'v9'" in v9
        known = FilterState(project="support-bot", prompt="alpha", versions=("v1",))
        assert prompt_filters.unknown_filter_message(db, store, known) is None
        assert store_analytics.kpis(store, Filters(project="nope")).metrics.count == 0
        calls: list[int] = []
        filters = Filters(project="support-bot")

        def compute() -> int:
            calls.append(1)
            return store_analytics.kpis(store, filters).metrics.count

        mark = analytics.watermark(db)
        first = analytics.cached("count", filters, mark, compute)
        assert analytics.cached("count", filters, mark, compute) == first
        assert len(calls) == 1
        analytics.cached("count", filters, mark + 1, compute)
        assert len(calls) == 2
        # Other filters are another entry: the key includes them.
        analytics.cached("count", Filters(project="sales-email"), mark + 1, compute)
        assert len(calls) == 3
