"""Analytics: pandas aggregation on the synced facts, checked against Phoenix's own aggregates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from app import create_app
from devtools.demo_data import PROJECT_NAMES
from services import analytics
from services.analytics import Filters
from services.container import get_services
from services.phoenix import PhoenixClient

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _spans(rows: Sequence[tuple[str, float, str, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "span_id": f"s{i}",
                "trace_id": f"t{i}",
                "project": "p",
                "prompt": "support",
                "prompt_version": version,
                "model": "gpt-4o",
                "start_time": pd.Timestamp(T0 + timedelta(minutes=i)),
                "latency_ms": latency,
                "prompt_tokens": tokens // 2,
                "completion_tokens": tokens - tokens // 2,
                "total_tokens": tokens,
                "status": status,
                "cost": None,
            }
            for i, (version, latency, status, tokens) in enumerate(rows)
        ],
        columns=analytics.SPAN_COLUMNS,
    )


def _annotations(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "span_id": f"s{i}",
                "name": name,
                "annotator_kind": "LLM",
                "label": None,
                "score": score,
                "explanation": None,
                "prompt": "support",
                "prompt_version": version,
                "model": "gpt-4o",
                "start_time": pd.Timestamp(T0),
            }
            for i, (version, name, score) in enumerate(rows)
        ],
        columns=[
            "span_id",
            "name",
            "annotator_kind",
            "label",
            "score",
            "explanation",
            "prompt",
            "prompt_version",
            "model",
            "start_time",
        ],
    )


def test_kpis_on_a_known_frame() -> None:
    spans = _spans(
        [
            ("v1", 100, "OK", 10),
            ("v1", 200, "ERROR", 20),
            ("v2", 300, "OK", 30),
            ("v2", 400, "OK", 40),
        ]
    )
    result = analytics.kpis(
        spans, _annotations([("v1", "correctness", 1.0), ("v2", "correctness", 0.0)])
    )
    assert result.count == 4
    assert result.error_rate == 0.25
    assert result.p50_ms == 250.0
    assert result.p95_ms == pytest.approx(385.0)
    assert result.tokens == 100
    assert result.mean_scores == {"correctness": 0.5}


def test_empty_filters_give_empty_results_not_errors() -> None:
    empty = _spans([])
    assert analytics.kpis(empty, _annotations([])).count == 0
    assert analytics.time_series(empty).empty
    assert analytics.breakdown(empty, _annotations([]), "model").empty
    assert analytics.score_summary(_annotations([])).empty


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


def test_time_series_split_by_version() -> None:
    spans = _spans([("v1", 100, "OK", 10)] * 3 + [("v2", 50, "ERROR", 5)] * 2)
    series = analytics.time_series(spans, split="prompt_version")
    assert set(series["series"]) == {"v1", "v2"}
    assert series["count"].sum() == 5
    assert series[series["series"] == "v2"]["error_rate"].max() == 1.0


def test_version_comparison_is_seeded_and_tells_signal_from_noise() -> None:
    rng = np.random.default_rng(1)
    rows = [("v1", float(x), "OK", 10) for x in rng.normal(1000, 50, 200)]
    rows += [("v2", float(x), "OK", 10) for x in rng.normal(700, 50, 200)]
    spans = _spans(rows)
    first = analytics.compare_versions(spans, _annotations([]), "v1", "v2", seed=7)
    second = analytics.compare_versions(spans, _annotations([]), "v1", "v2", seed=7)
    assert first == second
    p50 = next(d for d in first if d.metric == "p50 latency (ms)")
    assert p50.delta == pytest.approx(-300, abs=30)
    assert p50.ci_low is not None and p50.delta is not None and p50.ci_high is not None
    assert p50.significant and p50.ci_low < p50.delta < p50.ci_high
    errors = next(d for d in first if d.metric == "error rate")
    assert errors.delta == 0 and not errors.significant


@pytest.fixture
def synced_app(settings, phoenix_server, demo_loaded):
    """An app whose sync has read the session's Phoenix."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    return app


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
        with services.sessions() as db:
            spans = analytics.load_spans(db, filters)
            annotations = analytics.load_annotations(db, filters)
        ours = analytics.kpis(spans, annotations)
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
                assert name not in ours.mean_scores
                continue
            assert ours.mean_scores[name] == pytest.approx(summary.mean_score, abs=1e-9)


@pytest.mark.integration
def test_unknown_filters_say_so_and_results_are_cached_by_watermark(synced_app) -> None:
    services = get_services(synced_app.server)
    with services.sessions() as db, synced_app.server.app_context():
        nope = analytics.unknown_filter_message(db, Filters(project="nope"))
        assert nope is not None and "No project named 'nope'" in nope
        v9 = analytics.unknown_filter_message(db, Filters(versions=("v9",)))
        assert v9 is not None and "No prompt version named 'v9'" in v9
        assert analytics.unknown_filter_message(db, Filters(project=PROJECT_NAMES[0])) is None
        assert analytics.load_spans(db, Filters(project="nope")).empty
        calls: list[int] = []
        filters = Filters(project=PROJECT_NAMES[0])

        def compute() -> int:
            calls.append(1)
            return len(analytics.load_spans(db, filters))

        mark = analytics.watermark(db)
        first = analytics.cached("count", filters, mark, compute)
        assert analytics.cached("count", filters, mark, compute) == first
        assert len(calls) == 1
        analytics.cached("count", filters, mark + 1, compute)
        assert len(calls) == 2
