"""The old pandas analytics path, kept only to benchmark the facts store against it.

Vendored from `git show fddefa0:services/analytics.py` (the last commit with the pandas code):
kpis, bucket_size, time_series and breakdown are copied unchanged; load_spans and
load_annotations keep their columns and conversions but read the store's facts instead of our
SQL database (the SQL fact tables are gone), row tuples built into frames column by column, as
the old `_frame` did. prompt_id stands in for the prompt name, which lived in our database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import pandas as pd

from store.analytics import ANNOTATIONS, Filters, _where
from store.facts import FactStore

Split = Literal["prompt_version", "model"]
NICE_BUCKETS = [
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=7),
]
MAX_BUCKETS = 120
SPAN_COLUMNS = [
    "span_id",
    "trace_id",
    "project",
    "prompt",
    "prompt_version",
    "model",
    "start_time",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "status",
    "cost",
]
ANNOTATION_COLUMNS = [
    "span_id",
    "name",
    "annotator_kind",
    "label",
    "score",
    "prompt",
    "prompt_version",
    "model",
    "start_time",
]


@dataclass(frozen=True)
class Kpis:
    """Headline numbers for the filtered LLM spans."""

    count: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    tokens: int
    cost: float | None
    mean_score: float | None
    mean_scores: dict[str, float] = field(default_factory=dict)


def _frame(store: FactStore, sql: str, params: dict[str, Any], columns: list[str]) -> Any:
    """Run a SELECT and build the frame column by column, as the old path did from SQL rows."""
    rows = store.transport.query(sql, params).rows
    if not rows:
        return pd.DataFrame(columns=columns)
    values = list(zip(*rows, strict=True))
    return pd.DataFrame(dict(zip(columns, values, strict=True)))


def load_spans(store: FactStore, filters: Filters) -> Any:
    """Read the filtered LLM-span facts into a DataFrame with UTC times."""
    where, params = _where(filters)
    select = ", ".join(c if c != "prompt" else "prompt_id AS prompt" for c in SPAN_COLUMNS)
    frame = _frame(
        store,
        f"SELECT {select} FROM llm_spans FINAL WHERE {where}",  # noqa: S608 - fixed text
        params,
        SPAN_COLUMNS,
    )
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    return frame


def load_annotations(store: FactStore, filters: Filters) -> Any:
    """Read the annotations of the filtered spans, with each span's prompt version."""
    where, params = _where(filters, ANNOTATIONS)
    frame = _frame(
        store,
        "SELECT span_id, name, annotator_kind, label, score, prompt_id, prompt_version, model,"  # noqa: S608 - fixed text and _where's clause
        f" span_start_time FROM span_annotations FINAL WHERE {where}",
        params,
        ANNOTATION_COLUMNS,
    )
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame


def _quantile(series: Any, q: float) -> float | None:
    # Linear interpolation, as PostgreSQL's percentile_cont and SQLite's percentile() do.
    return None if series.empty else float(series.quantile(q, interpolation="linear"))


def kpis(spans: Any, annotations: Any) -> Kpis:
    """Compute count, error rate, latency quantiles, tokens, cost and mean scores."""
    count = len(spans)
    scored = annotations.dropna(subset=["score"])
    mean_scores = {str(k): float(v) for k, v in scored.groupby("name")["score"].mean().items()}
    costs = spans["cost"].dropna()
    return Kpis(
        count=count,
        error_rate=float((spans["status"] == "ERROR").mean()) if count else None,
        p50_ms=_quantile(spans["latency_ms"], 0.50),
        p95_ms=_quantile(spans["latency_ms"], 0.95),
        p99_ms=_quantile(spans["latency_ms"], 0.99),
        tokens=int(spans["total_tokens"].sum()),
        cost=float(costs.sum()) if not costs.empty else None,
        mean_score=float(scored["score"].mean()) if not scored.empty else None,
        mean_scores=mean_scores,
    )


def bucket_size(start: datetime, end: datetime) -> timedelta:
    """Choose the smallest nice bucket that keeps the series to MAX_BUCKETS points."""
    span = max(end - start, timedelta(minutes=1))
    for size in NICE_BUCKETS:
        if span / size <= MAX_BUCKETS:
            return size
    return NICE_BUCKETS[-1]


def time_series(
    spans: Any,
    *,
    split: Split | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Any:
    """Aggregate per time bucket (and per version or model): volume, errors, latency, tokens."""
    columns = [
        "bucket",
        "series",
        "count",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "tokens",
        "cost",
    ]
    if spans.empty:
        return pd.DataFrame(columns=columns)
    first = start or spans["start_time"].min().to_pydatetime()
    last = end or spans["start_time"].max().to_pydatetime()
    size = bucket_size(first, last)
    frame = spans.assign(
        bucket=spans["start_time"].dt.floor(pd.Timedelta(size)),
        series=spans[split].fillna("(none)") if split else "all",
        is_error=spans["status"] == "ERROR",
    )
    grouped = frame.groupby(["bucket", "series"], sort=True)
    latency = grouped["latency_ms"]
    result = pd.DataFrame(
        {
            "count": grouped.size(),
            "error_rate": grouped["is_error"].mean(),
            "p50_ms": latency.quantile(0.50),
            "p95_ms": latency.quantile(0.95),
            "p99_ms": latency.quantile(0.99),
            "tokens": grouped["total_tokens"].sum(),
            "cost": grouped["cost"].sum(min_count=1),
        }
    ).reset_index()
    return result[columns]


def breakdown(spans: Any, annotations: Any, by: Split) -> Any:
    """Summarise per prompt version or per model."""
    columns = [by, "count", "error_rate", "p50_ms", "p95_ms", "tokens", "mean_score"]
    if spans.empty:
        return pd.DataFrame(columns=columns)
    frame = spans.assign(key=spans[by].fillna("(none)"), is_error=spans["status"] == "ERROR")
    grouped = frame.groupby("key")
    scores = (
        annotations.assign(key=annotations[by].fillna("(none)"))
        .dropna(subset=["score"])
        .groupby("key")["score"]
        .mean()
    )
    result = pd.DataFrame(
        {
            "count": grouped.size(),
            "error_rate": grouped["is_error"].mean(),
            "p50_ms": grouped["latency_ms"].quantile(0.50),
            "p95_ms": grouped["latency_ms"].quantile(0.95),
            "tokens": grouped["total_tokens"].sum(),
        }
    )
    result["mean_score"] = scores.reindex(result.index)
    return result.rename_axis(by).reset_index()[columns]


def redraw(store: FactStore, filters: Filters) -> tuple[Kpis, Any, Any]:
    """Do what the old analytics page's redraw did: load, then KPIs, series and version table."""
    spans = load_spans(store, filters)
    annotations = load_annotations(store, filters)
    return (
        kpis(spans, annotations),
        time_series(spans, split="prompt_version", start=filters.start, end=filters.end),
        breakdown(spans, annotations, "prompt_version"),
    )
