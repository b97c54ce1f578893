"""Aggregate the synced facts with pandas: KPIs, time series, breakdowns, version comparisons."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from db.models import AnnotationFact, Prompt, SpanFact, SyncStatus
from services.cache import cache

Split = Literal["prompt_version", "model"]
T = TypeVar("T")
# Bucket sizes a reader can take in at a glance; the smallest that gives <= MAX_BUCKETS wins.
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
BOOTSTRAP_SAMPLES = 1000
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


@dataclass(frozen=True)
class Filters:
    """What an analyst narrowed the data to; every field is optional."""

    project: str | None = None
    prompt: str | None = None
    versions: tuple[str, ...] = ()
    model: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def key(self) -> str:
        """Return a stable digest of the filters, for cache keys."""
        raw = json.dumps(asdict(self), default=str, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


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


@dataclass(frozen=True)
class Delta:
    """B minus A for one metric, with a seeded 95 % bootstrap confidence interval."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def significant(self) -> bool:
        """Tell whether the interval excludes zero."""
        return (
            self.ci_low is not None
            and self.ci_high is not None
            and (self.ci_low > 0 or self.ci_high < 0)
        )


def span_query(filters: Filters) -> Select:
    """Build the SELECT of LLM-span facts matching the filters."""
    statement = select(
        SpanFact.phoenix_span_id.label("span_id"),
        SpanFact.phoenix_trace_id.label("trace_id"),
        SpanFact.project,
        Prompt.name.label("prompt"),
        SpanFact.prompt_version,
        SpanFact.model,
        SpanFact.start_time,
        SpanFact.latency_ms,
        SpanFact.prompt_tokens,
        SpanFact.completion_tokens,
        SpanFact.total_tokens,
        SpanFact.status,
        SpanFact.cost,
    ).outerjoin(Prompt, Prompt.id == SpanFact.prompt_id)
    if filters.project:
        statement = statement.where(SpanFact.project == filters.project)
    if filters.prompt:
        statement = statement.where(Prompt.name == filters.prompt)
    if filters.versions:
        statement = statement.where(SpanFact.prompt_version.in_(filters.versions))
    if filters.model:
        statement = statement.where(SpanFact.model == filters.model)
    if filters.status:
        statement = statement.where(SpanFact.status == filters.status)
    if filters.start:
        statement = statement.where(SpanFact.start_time >= filters.start)
    if filters.end:
        statement = statement.where(SpanFact.start_time < filters.end)
    return statement


def _frame(db: Session, statement: Select, columns: list[str]) -> pd.DataFrame:
    """Run a Core SELECT and build the frame column by column."""
    # Core rows and per-column construction: the ORM's row handling and pandas' row-wise
    # inference were most of a cold analytics redraw.
    rows = db.connection().execute(statement).fetchall()
    if not rows:
        return pd.DataFrame(columns=columns)  # object columns, as string operations expect
    values = list(zip(*rows, strict=True))
    return pd.DataFrame(dict(zip(columns, values, strict=True)))


def load_spans(db: Session, filters: Filters) -> pd.DataFrame:
    """Read the filtered LLM-span facts into a DataFrame with UTC times."""
    frame = _frame(db, span_query(filters), SPAN_COLUMNS)
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    return frame


def load_annotations(db: Session, filters: Filters) -> pd.DataFrame:
    """Read the annotations of the filtered spans, with each span's prompt version."""
    spans = span_query(filters).subquery()
    statement = select(
        AnnotationFact.phoenix_span_id.label("span_id"),
        AnnotationFact.name,
        AnnotationFact.annotator_kind,
        AnnotationFact.label,
        AnnotationFact.score,
        AnnotationFact.explanation,
        spans.c.prompt,
        spans.c.prompt_version,
        spans.c.model,
        spans.c.start_time,
    ).join(spans, spans.c.span_id == AnnotationFact.phoenix_span_id)
    columns = [
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
    ]
    frame = _frame(db, statement, columns)
    frame["start_time"] = pd.to_datetime(frame["start_time"], utc=True)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame


def _quantile(series: pd.Series, q: float) -> float | None:
    # Linear interpolation, as PostgreSQL's percentile_cont and SQLite's percentile() do.
    return None if series.empty else float(series.quantile(q, interpolation="linear"))


def kpis(spans: pd.DataFrame, annotations: pd.DataFrame) -> Kpis:
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
    spans: pd.DataFrame,
    *,
    split: Split | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
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


def breakdown(spans: pd.DataFrame, annotations: pd.DataFrame, by: Split) -> pd.DataFrame:
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


def score_summary(annotations: pd.DataFrame) -> pd.DataFrame:
    """Per evaluator and prompt version: count, mean score and label fractions."""
    if annotations.empty:
        return pd.DataFrame(columns=["name", "prompt_version", "count", "mean_score", "labels"])
    frame = annotations.assign(prompt_version=annotations["prompt_version"].fillna("(none)"))
    rows = []
    for (name, version), group in frame.groupby(["name", "prompt_version"]):
        labels = group["label"].dropna().value_counts(normalize=True)
        rows.append(
            {
                "name": name,
                "prompt_version": version,
                "count": len(group),
                "mean_score": float(group["score"].mean())
                if group["score"].notna().any()
                else None,
                "labels": {str(k): float(v) for k, v in labels.items()},
            }
        )
    return pd.DataFrame(rows)


def _bootstrap_delta(
    a: np.ndarray, b: np.ndarray, statistic: Callable[[np.ndarray], float], seed: int
) -> tuple[float, float]:
    """Resample both groups with replacement and return the 2.5th and 97.5th percentiles."""
    rng = np.random.default_rng(seed)
    deltas = np.empty(BOOTSTRAP_SAMPLES)
    for i in range(BOOTSTRAP_SAMPLES):
        deltas[i] = statistic(rng.choice(b, size=b.size)) - statistic(rng.choice(a, size=a.size))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


def compare_versions(
    spans: pd.DataFrame,
    annotations: pd.DataFrame,
    version_a: str,
    version_b: str,
    *,
    seed: int = 0,
) -> list[Delta]:
    """Compare two prompt versions metric by metric, B minus A, with bootstrap intervals."""
    samples: list[tuple[str, np.ndarray, np.ndarray, Callable[[np.ndarray], float]]] = []
    for_a = spans[spans["prompt_version"] == version_a]
    for_b = spans[spans["prompt_version"] == version_b]
    samples.append(
        (
            "p50 latency (ms)",
            for_a["latency_ms"].to_numpy(float),
            for_b["latency_ms"].to_numpy(float),
            lambda x: float(np.percentile(x, 50)),
        )
    )
    samples.append(
        (
            "p95 latency (ms)",
            for_a["latency_ms"].to_numpy(float),
            for_b["latency_ms"].to_numpy(float),
            lambda x: float(np.percentile(x, 95)),
        )
    )
    samples.append(
        (
            "error rate",
            (for_a["status"] == "ERROR").to_numpy(float),
            (for_b["status"] == "ERROR").to_numpy(float),
            lambda x: float(x.mean()),
        )
    )
    samples.append(
        (
            "tokens per call",
            for_a["total_tokens"].to_numpy(float),
            for_b["total_tokens"].to_numpy(float),
            lambda x: float(x.mean()),
        )
    )
    scored = annotations.dropna(subset=["score"])
    for name in sorted(scored["name"].unique()):
        of = scored[scored["name"] == name]
        samples.append(
            (
                f"mean {name}",
                of[of["prompt_version"] == version_a]["score"].to_numpy(float),
                of[of["prompt_version"] == version_b]["score"].to_numpy(float),
                lambda x: float(x.mean()),
            )
        )
    deltas = []
    for index, (metric, a, b, statistic) in enumerate(samples):
        if a.size == 0 or b.size == 0:
            value_a = statistic(a) if a.size else None
            value_b = statistic(b) if b.size else None
            deltas.append(Delta(metric, value_a, value_b, None, None, None))
            continue
        low, high = _bootstrap_delta(a, b, statistic, seed + index)
        value_a, value_b = statistic(a), statistic(b)
        deltas.append(Delta(metric, value_a, value_b, value_b - value_a, low, high))
    return deltas


def unknown_filter_message(db: Session, filters: Filters) -> str | None:
    """Name the filter value that matches nothing, so the page can say so instead of failing."""
    checks: list[tuple[str, Sequence[str], Any]] = [
        ("project", [filters.project] if filters.project else [], SpanFact.project),
        ("prompt", [filters.prompt] if filters.prompt else [], Prompt.name),
        ("prompt version", list(filters.versions), SpanFact.prompt_version),
        ("model", [filters.model] if filters.model else [], SpanFact.model),
    ]
    for label, wanted, column in checks:
        for value in wanted:
            if db.scalar(select(column).where(column == value).limit(1)) is None:
                return f"No {label} named {value!r} has synced data yet."
    return None


def watermark(db: Session) -> int:
    """Return the sync's watermark: it moves whenever new data arrived."""
    status = db.get(SyncStatus, 1)
    return int(status.watermark) if status else 0


def cached(kind: str, filters: Filters, mark: int, compute: Callable[[], T]) -> T:
    """Return a cached result for these filters at this watermark, computing it once."""
    key = f"analytics:{kind}:{mark}:{filters.key()}"
    hit = cache.get(key)
    if hit is not None:
        result: T = hit
        return result
    value = compute()
    cache.set(key, value, timeout=3600)
    return value


def filter_options(db: Session, prompt: str | None = None) -> dict[str, list[str]]:
    """List the values the filter bar offers, from the synced data (versions of one prompt)."""

    def distinct(column: Any, *where: Any) -> list[str]:
        statement = select(column).where(column.is_not(None), *where).distinct()
        return sorted(str(v) for v in db.scalars(statement))

    version_filter = [Prompt.name == prompt] if prompt else []
    return {
        "project": distinct(SpanFact.project),
        "prompt": distinct(Prompt.name),
        "versions": distinct(Prompt.version, *version_filter),
        "model": distinct(SpanFact.model),
    }


TRACE_COLUMNS = [
    "trace_id",
    "project",
    "prompt",
    "prompt_version",
    "model",
    "start_time",
    "llm_calls",
    "latency_ms",
    "total_tokens",
    "status",
]


def traces(spans: pd.DataFrame) -> pd.DataFrame:
    """One row per trace: its LLM calls, summed latency and tokens, and ERROR if any call failed."""
    if spans.empty:
        return pd.DataFrame(columns=TRACE_COLUMNS)
    frame = spans.assign(is_error=spans["status"] == "ERROR")
    grouped = frame.sort_values("start_time").groupby("trace_id", sort=False)
    result = grouped.agg(
        project=("project", "first"),
        prompt=("prompt", "first"),
        prompt_version=("prompt_version", "first"),
        model=("model", "first"),
        start_time=("start_time", "min"),
        llm_calls=("span_id", "count"),
        latency_ms=("latency_ms", "sum"),
        total_tokens=("total_tokens", "sum"),
        is_error=("is_error", "any"),
    ).reset_index()
    result["status"] = result["is_error"].map({True: "ERROR", False: "OK"})
    return result.sort_values("start_time", ascending=False)[TRACE_COLUMNS]


EVALUATION_COLUMNS = [
    "span_id",
    "prompt",
    "prompt_version",
    "name",
    "annotator_kind",
    "label",
    "score",
    "explanation",
    "start_time",
]


def evaluation_trend(
    annotations: pd.DataFrame, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Mean score per evaluator and time bucket."""
    scored = annotations.dropna(subset=["score"])
    if scored.empty:
        return pd.DataFrame(columns=["bucket", "series", "mean_score"])
    first = start or scored["start_time"].min().to_pydatetime()
    last = end or scored["start_time"].max().to_pydatetime()
    size = pd.Timedelta(bucket_size(first, last))
    frame = scored.assign(bucket=scored["start_time"].dt.floor(size), series=scored["name"])
    return frame.groupby(["bucket", "series"])["score"].mean().rename("mean_score").reset_index()


def label_fractions(annotations: pd.DataFrame) -> pd.DataFrame:
    """Share of each label per evaluator and prompt version."""
    labelled = annotations.dropna(subset=["label"])
    if labelled.empty:
        return pd.DataFrame(columns=["name", "prompt_version", "label", "fraction"])
    frame = labelled.assign(prompt_version=labelled["prompt_version"].fillna("(none)"))
    counts = frame.groupby(["name", "prompt_version", "label"]).size()
    fractions = counts / counts.groupby(level=["name", "prompt_version"]).transform("sum")
    return fractions.rename("fraction").reset_index()


@dataclass(frozen=True)
class PeriodStats:
    """A window's KPIs, the previous window's, and the window's series for sparklines."""

    current: Kpis
    previous: Kpis
    series: pd.DataFrame


def period_stats(db: Session, window: timedelta, now: datetime) -> PeriodStats:
    """Compare the last `window` with the one before it."""
    current = Filters(start=now - window)
    previous = Filters(start=now - 2 * window, end=now - window)
    spans = load_spans(db, current)
    return PeriodStats(
        current=kpis(spans, load_annotations(db, current)),
        previous=kpis(load_spans(db, previous), load_annotations(db, previous)),
        series=time_series(spans, start=current.start, end=now),
    )


def top_prompts(
    spans: pd.DataFrame, annotations: pd.DataFrame, limit: int | None = 10
) -> pd.DataFrame:
    """Rank prompts by calls, with their error rate, p95 latency and mean score."""
    columns = ["prompt", "calls", "error_rate", "p95_ms", "mean_score"]
    named = spans.dropna(subset=["prompt"])
    if named.empty:
        return pd.DataFrame(columns=columns)
    grouped = named.assign(is_error=named["status"] == "ERROR").groupby("prompt")
    result = pd.DataFrame(
        {
            "calls": grouped.size(),
            "error_rate": grouped["is_error"].mean(),
            "p95_ms": grouped["latency_ms"].quantile(0.95),
        }
    )
    scores = annotations.dropna(subset=["score", "prompt"]).groupby("prompt")["score"].mean()
    result["mean_score"] = scores.reindex(result.index)
    ranked = result.sort_values("calls", ascending=False)
    ranked = ranked if limit is None else ranked.head(limit)
    return ranked.rename_axis("prompt").reset_index()[columns]
