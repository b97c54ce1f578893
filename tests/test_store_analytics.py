"""The store's aggregates against an independent numpy/pandas computation over 200k facts.

Quantiles are compared with numpy's default (linear interpolation), means over known values only,
everything to a relative 1e-9. The data has what real data has: unknown tokens and costs, spans
without a prompt or model, one version label ("v1") used by several prompts, annotations with a
label and no score, deleted annotations, and rows exactly on the window's edges.
"""

from __future__ import annotations

import dataclasses
import math
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.analytics import bucket_size as pandas_bucket_size
from store import analytics, slices, views
from store.analytics import Filters, PromptSet, VersionKey
from store.facts import FactStore, SpanAnnotationRow, SpanRow, open_store
from store.filters import PromptMap

from .test_store import SERVER_ENV, _backends, chdb_dir, same  # noqa: F401

ROWS = 200_000
REL = 1e-9
BASE = datetime(2026, 5, 1, tzinfo=UTC)
START = BASE + timedelta(days=1)
END = BASE + timedelta(days=8)
PROMPTS = ["p-a1", "p-a2", "p-b1", "p-c1", None]  # p-a1 and p-b1 are both "v1"
VERSION_OF = {"p-a1": "v1", "p-a2": "v2", "p-b1": "v1", "p-c1": "v3", None: "unversioned"}
NAME_OF = {"p-a1": "alpha", "p-a2": "alpha", "p-b1": "beta", "p-c1": "gamma"}
MODELS = ["gpt-4o", "claude", "llama", None]


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Build the synthetic spans and annotations, seeded, with numpy."""
    rng = np.random.default_rng(20260501)
    prompt = rng.choice(len(PROMPTS), ROWS, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    micros = rng.integers(0, 10 * 86400 * 10**6, ROWS)
    micros[:4] = [
        int((START - BASE).total_seconds()) * 10**6,  # exactly at start: in
        int((END - BASE).total_seconds()) * 10**6,  # exactly at end: out
        int((START - BASE).total_seconds()) * 10**6 - 1,  # a microsecond before start: out
        int((END - BASE).total_seconds()) * 10**6 - 1,  # a microsecond before end: in
    ]
    known_tokens = rng.random(ROWS) >= 0.05
    prompt_tokens = rng.integers(10, 4000, ROWS)
    completion_tokens = rng.integers(1, 1500, ROWS)
    spans = pd.DataFrame(
        {
            "span_id": [f"s{i:07d}" for i in range(ROWS)],
            "trace_id": [f"t{i // 3:07d}" for i in range(ROWS)],
            "project": np.where(rng.random(ROWS) < 0.9, "alpha-project", "beta-project"),
            "prompt_id": [PROMPTS[i] for i in prompt],
            "model": [MODELS[i] for i in rng.integers(0, len(MODELS), ROWS)],
            "start_time": [BASE + timedelta(microseconds=int(m)) for m in micros],
            "latency_ms": rng.lognormal(6.5, 0.8, ROWS) * (1 + prompt / 10),
            "prompt_tokens": np.where(known_tokens, prompt_tokens, -1),
            "completion_tokens": np.where(known_tokens, completion_tokens, -1),
            "status": np.where(rng.random(ROWS) < 0.04 + prompt * 0.01, "ERROR", "OK"),
            "cost": np.where(rng.random(ROWS) < 0.1, np.nan, rng.random(ROWS) / 100),
        }
    )
    spans["prompt_version"] = spans["prompt_id"].map(VERSION_OF)
    spans["template_hash"] = spans["prompt_id"].map(
        lambda p: f"h-{p}" if isinstance(p, str) else None
    )
    spans["total_tokens"] = np.where(
        known_tokens, spans["prompt_tokens"] + spans["completion_tokens"], -1
    )
    annotated = spans[rng.random(ROWS) < 0.6]
    notes = []
    for name, scale in (("correctness", 1.0), ("helpfulness", 5.0)):
        count = len(annotated)
        score = np.round(rng.random(count) * scale, 3)
        unscored = rng.random(count) < 0.05  # a label without a score
        frame = annotated.assign(
            annotation_id=annotated["span_id"] + "-" + name,
            name=name,
            score=np.where(unscored, np.nan, score),
            label=np.where(score >= scale / 2, "pass", "fail"),
            is_deleted=rng.random(count) < 0.02,
        )
        notes.append(frame)
    return spans, pd.concat(notes, ignore_index=True)


def _none(value: Any) -> Any:
    """Turn the frame's placeholders for unknown (-1, NaN) into None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, int | np.integer) and value < 0:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    """Return a column as Python values, its placeholders for unknown (-1, NaN) as None."""
    return [_none(value) for value in frame[name].tolist()]


@pytest.fixture(scope="module")
def seed_rows() -> tuple[pd.DataFrame, pd.DataFrame, list[SpanRow], list[SpanAnnotationRow]]:
    """Build the frames and the store's rows once: every backend of the module writes them."""
    spans, notes = _frames()
    span_columns = [_column(spans, f.name) for f in dataclasses.fields(SpanRow)]
    span_rows = [SpanRow(*row) for row in zip(*span_columns, strict=True)]
    fixed = {"annotator_kind": "LLM"}
    renamed = {"updated_at": "start_time", "span_start_time": "start_time", "span_status": "status"}
    note_columns = [
        [fixed[f.name]] * len(notes)
        if f.name in fixed
        else _column(notes, renamed.get(f.name, f.name))
        for f in dataclasses.fields(SpanAnnotationRow)
    ]
    note_rows = [SpanAnnotationRow(*row) for row in zip(*note_columns, strict=True)]
    return spans, notes, span_rows, note_rows


# Exactness is the engine's: chdb here, and a real server when one is given. The HTTP path is
# covered by tests/test_store.py, which runs every store test over it too.
# Each backend reading the facts alone, and chdb (the same engine a server runs) also with
# every day pre-aggregated into slices but one (BASE + 4 days, written after its build), so
# that slices and facts meet in one query.
@pytest.fixture(
    scope="module",
    params=[(b, "facts") for b in _backends() if b != "http"] + [("chdb", "slices")],
    ids=lambda param: "-".join(param),
)
def seeded(
    request: pytest.FixtureRequest,
    chdb_dir,  # noqa: F811
    seed_rows: tuple[pd.DataFrame, pd.DataFrame, list[SpanRow], list[SpanAnnotationRow]],
) -> Iterator[tuple[FactStore, pd.DataFrame, pd.DataFrame]]:
    """One store holding the 200k spans and their annotations, for every test of this module."""
    spans, notes, span_rows, note_rows = seed_rows
    backend, mode = request.param
    url = f"chdb://{chdb_dir}" if backend == "chdb" else os.environ[SERVER_ENV]
    store = open_store(url, database=f"test_{uuid.uuid4().hex[:12]}")
    store.write_spans(span_rows)
    store.write_span_annotations(note_rows)
    if mode == "slices":
        assert slices.refresh(store, before=(BASE + timedelta(days=30)).date()) >= 2 * 10
        dirty = (BASE + timedelta(days=4)).date()
        store.mark_written("spans", [dirty])
        store.mark_written("annotations", [dirty])
        for kind in slices.KINDS:
            covered = slices.covered_days(store, kind, FILTERS, None)
            assert len(covered) == 6 and dirty not in covered
    spans = spans.assign(
        total_tokens=spans["total_tokens"].where(spans["total_tokens"] >= 0),
        start_time=pd.to_datetime(spans["start_time"], utc=True),
    )
    notes = notes[~notes["is_deleted"]].assign(
        start_time=pd.to_datetime(notes[~notes["is_deleted"]]["start_time"], utc=True)
    )
    yield store, spans, notes
    store.drop()
    store.close()


def _window(frame: pd.DataFrame, project: str = "alpha-project") -> pd.DataFrame:
    """Select the rows of the test window, half-open like the store."""
    when = frame["start_time"]
    return frame[(frame["project"] == project) & (when >= START) & (when < END)]


FILTERS = Filters(project="alpha-project", start=START, end=END)


def close(a: float | None, b: float | None) -> bool:
    """Compare two numbers to a relative 1e-9 (None only equals None)."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)


def expected_metrics(frame: pd.DataFrame) -> dict[str, Any]:
    """Compute the metrics of a set of calls with numpy, independently of the store."""
    latency = frame["latency_ms"].to_numpy(float)
    tokens = frame["total_tokens"].dropna()
    cost = frame["cost"].dropna()
    quantiles = np.quantile(latency, [0.5, 0.95, 0.99]) if latency.size else np.zeros(3)
    return {
        "count": len(frame),
        "errors": int((frame["status"] == "ERROR").sum()),
        "error_rate": float((frame["status"] == "ERROR").mean()) if len(frame) else None,
        "p50_ms": float(quantiles[0]) if latency.size else None,
        "p95_ms": float(quantiles[1]) if latency.size else None,
        "p99_ms": float(quantiles[2]) if latency.size else None,
        "tokens": int(tokens.sum()) if len(tokens) else None,
        "tokens_mean": float(tokens.mean()) if len(tokens) else None,
        "tokens_unknown": len(frame) - len(tokens),
        "cost": float(cost.sum()) if len(cost) else None,
        "cost_mean": float(cost.mean()) if len(cost) else None,
        "cost_unknown": len(frame) - len(cost),
    }


def assert_metrics(got: analytics.Metrics, frame: pd.DataFrame) -> None:
    """Assert that the store's metrics equal numpy's for the same rows."""
    expected = expected_metrics(frame)
    for name, value in expected.items():
        assert close(getattr(got, name), value), (name, getattr(got, name), value)


def assert_scores(got: tuple[analytics.EvaluatorScore, ...], notes: pd.DataFrame) -> None:
    """Assert per-evaluator means over scored annotations, and the counts."""
    expected = {
        name: (group["score"].mean(), int(group["score"].notna().sum()), len(group))
        for name, group in notes.groupby("name")
    }
    assert [s.name for s in got] == sorted(expected)
    for score in got:
        mean, scored, count = expected[score.name]
        assert close(score.mean, float(mean)) and (score.scored, score.annotations) == (
            scored,
            count,
        )


def test_edges_are_half_open(seeded) -> None:
    store, spans, _notes = seeded
    window = _window(spans)
    assert (
        window["span_id"].isin(["s0000000", "s0000003"]).sum()
        == (spans.loc[[0, 3], "project"] == "alpha-project").sum()
    )
    assert analytics.kpis(store, FILTERS).metrics.count == len(window)


def test_kpis_equal_numpy(seeded) -> None:
    store, spans, notes = seeded
    got = analytics.kpis(store, FILTERS)
    assert_metrics(got.metrics, _window(spans))
    assert got.metrics.tokens_unknown > 0 and got.metrics.cost_unknown > 0
    assert_scores(got.scores, _window(notes))


def test_versions_are_per_prompt_and_equal_numpy(seeded) -> None:
    store, spans, notes = seeded
    rows = analytics.breakdown(store, FILTERS, "version")
    window, scored = _window(spans), _window(notes)
    keys = [(r.key.prompt_id, r.key.prompt_version) for r in rows]
    # v1 of prompt a and v1 of prompt b are two rows; spans with no prompt are a row too.
    assert ("p-a1", "v1") in keys and ("p-b1", "v1") in keys and (None, "unversioned") in keys
    assert len(keys) == len(set(keys)) == 5
    for row in rows:
        mine = (
            window["prompt_id"].isna()
            if row.key.prompt_id is None
            else (window["prompt_id"] == row.key.prompt_id)
        )
        assert_metrics(row.metrics, window[mine])
        assert row.key.template_hash == (
            None if row.key.prompt_id is None else f"h-{row.key.prompt_id}"
        )
        notes_mine = (
            scored["prompt_id"].isna()
            if row.key.prompt_id is None
            else (scored["prompt_id"] == row.key.prompt_id)
        )
        assert_scores(row.scores, scored[notes_mine])


def test_models_equal_numpy(seeded) -> None:
    store, spans, notes = seeded
    window, scored = _window(spans), _window(notes)
    rows = analytics.breakdown(store, FILTERS, "model")
    assert [r.key.model for r in rows] == [None, "claude", "gpt-4o", "llama"]
    for row in rows:
        mine = window["model"].isna() if row.key.model is None else window["model"] == row.key.model
        assert_metrics(row.metrics, window[mine])
        of = scored["model"].isna() if row.key.model is None else scored["model"] == row.key.model
        assert_scores(row.scores, scored[of])


def test_series_equal_pandas_buckets(seeded) -> None:
    store, spans, _notes = seeded
    series = analytics.time_series(store, FILTERS, "version")
    assert series.bucket_size == pandas_bucket_size(START, END) == timedelta(hours=3)
    window = _window(spans)
    frame = window.assign(
        bucket=window["start_time"].dt.floor(pd.Timedelta(series.bucket_size)),
        key=window["prompt_id"].fillna(""),
    )
    groups = dict(iter(frame.groupby(["bucket", "key"])))
    assert len(series.points) == len(groups)
    for point in series.points:
        group = groups[(pd.Timestamp(point.bucket), point.key.prompt_id or "")]
        assert_metrics(point.metrics, group)


def test_redraw_is_the_three_aggregates_in_one(seeded) -> None:
    store, _spans, _notes = seeded
    redraw = analytics.redraw(store, FILTERS)
    assert same(redraw.kpis, analytics.kpis(store, FILTERS))
    assert same(redraw.series, analytics.time_series(store, FILTERS, "version"))
    assert same(list(redraw.breakdown), analytics.breakdown(store, FILTERS, "version"))
    by_model = analytics.redraw(store, FILTERS, "model")
    assert same(list(by_model.breakdown), analytics.breakdown(store, FILTERS, "model"))


def test_prompt_sets_filter_by_id_or_hash(seeded) -> None:
    store, spans, _notes = seeded
    window = _window(spans)
    both = Filters(
        **{**analytics.asdict_shallow(FILTERS), "prompts": PromptSet(("p-a1",), ("h-p-b1",))}
    )
    expected = window[window["prompt_id"].isin(["p-a1", "p-b1"])]
    assert_metrics(analytics.kpis(store, both).metrics, expected)
    nothing = Filters(**{**analytics.asdict_shallow(FILTERS), "prompts": PromptSet()})
    assert analytics.kpis(store, nothing).metrics == analytics._empty_metrics()
    versions = Filters(**{**analytics.asdict_shallow(FILTERS), "versions": ("v1",)})
    assert_metrics(
        analytics.kpis(store, versions).metrics, window[window["prompt_version"] == "v1"]
    )
    errors = Filters(**{**analytics.asdict_shallow(FILTERS), "status": "ERROR", "model": "llama"})
    assert_metrics(
        analytics.kpis(store, errors).metrics,
        window[(window["status"] == "ERROR") & (window["model"] == "llama")],
    )


def test_score_summary_and_label_shares_equal_pandas(seeded) -> None:
    store, _spans, notes = seeded
    scored = _window(notes)
    summary = analytics.score_summary(store, FILTERS)
    assert len(summary) == scored.groupby(["name", "prompt_id"], dropna=False).ngroups
    for item in summary:
        mine = scored[
            (scored["name"] == item.name)
            & (
                scored["prompt_id"].isna()
                if item.key.prompt_id is None
                else scored["prompt_id"] == item.key.prompt_id
            )
        ]
        assert item.annotations == len(mine) and item.scored == mine["score"].notna().sum()
        assert close(item.mean, float(mine["score"].mean()))
        shares = mine["label"].value_counts(normalize=True)
        assert {s.label: s.share for s in item.labels} == pytest.approx(shares.to_dict(), rel=REL)
        for share in item.labels:
            assert share.ci_low <= share.share <= share.ci_high


def test_evaluation_trend_equals_pandas(seeded) -> None:
    store, _spans, notes = seeded
    size, points = analytics.evaluation_trend(store, FILTERS)
    scored = _window(notes).dropna(subset=["score"])
    frame = scored.assign(
        bucket=scored["start_time"].dt.floor(pd.Timedelta(size)),
        key=scored["prompt_id"].fillna(""),
    )
    expected = frame.groupby(["bucket", "name", "key"])["score"].agg(["mean", "count"])
    assert len(points) == len(expected)
    for point in points:
        mean, count = expected.loc[
            (pd.Timestamp(point.bucket), point.name, point.key.prompt_id or "")
        ]
        assert close(point.mean, float(mean)) and point.scored == count


def test_top_prompts_merge_versions_by_name(seeded) -> None:
    store, spans, _notes = seeded
    ranked = analytics.top_prompts(store, FILTERS, NAME_OF, limit=2)
    window = _window(spans)
    window = window.assign(prompt=window["prompt_id"].map(NAME_OF))
    counts = window["prompt"].value_counts()
    assert [r.prompt for r in ranked] == list(counts.index[:2])
    for rank in ranked:
        assert_metrics(rank.metrics, window[window["prompt"] == rank.prompt])
        assert [s.name for s in rank.scores] == ["correctness", "helpfulness"]


def test_period_stats_compare_two_windows(seeded) -> None:
    store, spans, _notes = seeded
    stats = analytics.period_stats(store, timedelta(days=3), END, Filters(project="alpha-project"))
    alpha = spans[spans["project"] == "alpha-project"]
    current = alpha[(alpha["start_time"] >= END - timedelta(days=3)) & (alpha["start_time"] < END)]
    previous = alpha[
        (alpha["start_time"] >= END - timedelta(days=6))
        & (alpha["start_time"] < END - timedelta(days=3))
    ]
    assert_metrics(stats.current.metrics, current)
    assert_metrics(stats.previous.metrics, previous)
    assert sum(p.metrics.count for p in stats.series.points) == len(current)


def test_compare_versions_is_exact_bounded_and_repeatable(seeded, monkeypatch) -> None:
    store, spans, notes = seeded
    fetched: list[int] = []
    query = store.transport.query

    def counting(sql: str, params: Any = None) -> Any:
        result = query(sql, params)
        fetched.append(len(result.rows))
        return result

    monkeypatch.setattr(store.transport, "query", counting)
    a, b = VersionKey("v1", "p-a1"), VersionKey("v2", "p-a2")
    deltas = analytics.compare_versions(store, FILTERS, a, b, seed=7)
    assert max(fetched) <= analytics.COMPARE_SAMPLE_ROWS
    again = analytics.compare_versions(store, FILTERS, a, b, seed=7)
    # The same seed draws the same resamples; a mean's last bit may differ, as the engine adds
    # partial sums in whichever order its threads finish.
    assert [dataclasses.replace(d, a=None, b=None, delta=None) for d in deltas] == [
        dataclasses.replace(d, a=None, b=None, delta=None) for d in again
    ]
    for first, second in zip(deltas, again, strict=True):
        for mine, theirs in ((first.a, second.a), (first.b, second.b), (first.delta, second.delta)):
            assert close(mine, theirs)
    window = _window(spans)
    side_a, side_b = window[window["prompt_id"] == "p-a1"], window[window["prompt_id"] == "p-a2"]
    by_metric = {d.metric: d for d in deltas}
    p95 = by_metric["p95 latency (ms)"]
    assert close(p95.a, float(np.quantile(side_a["latency_ms"], 0.95)))
    assert close(p95.b, float(np.quantile(side_b["latency_ms"], 0.95)))
    assert p95.ci_low is not None and p95.ci_high is not None and p95.delta is not None
    assert p95.ci_low <= p95.delta <= p95.ci_high
    assert p95.n_a == len(side_a) and "5000 rows" in p95.method
    rate = by_metric["error rate"]
    assert close(
        rate.delta, (side_b["status"] == "ERROR").mean() - (side_a["status"] == "ERROR").mean()
    )
    assert "Wilson" in rate.method
    scored = _window(notes)
    correctness = by_metric["mean correctness"]
    expected_a = scored[(scored["prompt_id"] == "p-a1") & (scored["name"] == "correctness")]
    assert close(correctness.a, float(expected_a["score"].mean()))
    # The same label of two prompts is two sides, not one.
    other = analytics.compare_versions(store, FILTERS, VersionKey("v1", "p-b1"), b, seed=7)
    assert other[0].a != p95.a and other[0].n_a != p95.n_a


def test_an_empty_selection_gives_empty_results(seeded) -> None:
    store, _spans, _notes = seeded
    nothing = Filters(project="no-such-project")
    assert analytics.kpis(store, nothing).metrics == analytics._empty_metrics()
    assert analytics.time_series(store, nothing).points == ()
    assert analytics.breakdown(store, nothing) == []
    assert analytics.redraw(store, nothing).breakdown == ()
    assert analytics.evaluation_trend(store, nothing)[1] == []
    assert analytics.spans_page(store, nothing).rows == []
    deltas = analytics.compare_versions(store, nothing, VersionKey("v1"), VersionKey("v2"))
    assert all(d.delta is None for d in deltas)


def test_score_spreads_equal_numpy(seeded) -> None:
    store, _spans, notes = seeded
    spreads = views.score_spreads(store, FILTERS)
    scored = _window(notes).dropna(subset=["score"])
    groups = scored.groupby(["name", "prompt_id", "prompt_version"], dropna=False)
    assert len(spreads) == groups.ngroups
    for spread in spreads:
        mine = scored[
            (scored["name"] == spread.name)
            & (
                scored["prompt_id"].isna()
                if spread.prompt_id is None
                else scored["prompt_id"] == spread.prompt_id
            )
            & (scored["prompt_version"] == spread.prompt_version)
        ]["score"].to_numpy(float)
        expected = np.quantile(mine, [0, 0.25, 0.5, 0.75, 1])
        got = (spread.minimum, spread.q1, spread.median, spread.q3, spread.maximum)
        assert spread.scored == len(mine)
        assert all(close(a, float(b)) for a, b in zip(got, expected, strict=True)), spread


# An admin's merge and relabel, as our database hands them to queries: p-a1 and p-b1 (two
# wordings, both stated "v1") become one prompt "merged" whose v1 pools both; p-a2 joins it as
# "v2"; p-c1 is relabelled "v9". The facts are not touched.
MAP = PromptMap(
    groups=("p-a1", "p-a2", "p-b1", "p-c1"),
    prompts=("merged", "merged", "merged", "gamma"),
    labels=("v1", "v2", "v1", "v9"),
    revision=1,
)
MAPPED = {"p-a1": ("merged", "v1"), "p-a2": ("merged", "v2"), "p-b1": ("merged", "v1")}
MAPPED["p-c1"] = ("gamma", "v9")


def _mapped(frame: pd.DataFrame) -> pd.DataFrame:
    """Apply MAP to a frame with numpy/pandas, independently of the store."""
    pairs = frame["prompt_id"].map(lambda p: MAPPED.get(p, (None, None)))
    return frame.assign(
        prompt=[p for p, _v in pairs],
        label=[v if p is not None else "unversioned" for p, v in pairs],
    )


def test_a_prompt_map_merges_and_relabels_at_query_time(seeded) -> None:
    store, spans, notes = seeded
    filters = dataclasses.replace(FILTERS, prompt_map=MAP)
    window, scored = _mapped(_window(spans)), _mapped(_window(notes))
    rows = analytics.breakdown(store, filters, "version")
    keys = {(r.key.prompt_id, r.key.prompt_version) for r in rows}
    assert keys == {("merged", "v1"), ("merged", "v2"), ("gamma", "v9"), (None, "unversioned")}
    for row in rows:
        prompt, label = row.key.prompt_id, row.key.prompt_version
        mine = (
            window["prompt"].isna()
            if prompt is None
            else ((window["prompt"] == prompt) & (window["label"] == label))
        )
        # Pooled exactly: v1's quantiles are over both wordings' calls together.
        assert_metrics(row.metrics, window[mine])
        notes_mine = (
            scored["prompt"].isna()
            if prompt is None
            else ((scored["prompt"] == prompt) & (scored["label"] == label))
        )
        assert_scores(row.scores, scored[notes_mine])
    # The series and the score summary group the same way.
    series = analytics.time_series(store, filters, "version")
    assert {(p.key.prompt_id, p.key.prompt_version) for p in series.points} == keys
    summary = analytics.score_summary(store, filters)
    assert {(s.key.prompt_id, s.key.prompt_version) for s in summary} == keys
    # A version filter is by the shown label: v1 is both wordings, and v9 is p-c1.
    v1 = analytics.kpis(store, dataclasses.replace(filters, versions=("v1",)))
    assert v1.metrics.count == int((window["label"] == "v1").sum())
    v9 = analytics.kpis(store, dataclasses.replace(filters, versions=("v9",)))
    assert v9.metrics.count == int((window["prompt_id"] == "p-c1").sum())
    # A comparison's side is (prompt, label) under the map.
    deltas = analytics.compare_versions(
        store, filters, VersionKey("v1", "merged"), VersionKey("v2", "merged"), seed=3
    )
    p95 = {d.metric: d for d in deltas}["p95 latency (ms)"]
    side_a = window[(window["prompt"] == "merged") & (window["label"] == "v1")]
    assert p95.n_a == len(side_a)
    assert close(p95.a, float(np.quantile(side_a["latency_ms"], 0.95)))
