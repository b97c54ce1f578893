"""Every query of the facts store: aggregates computed inside ClickHouse, small typed results.

This mirrors services/analytics.py so that pages can swap to it, with three faults fixed:

* Means are over known values only: a NULL token count or cost is unknown, not 0, and every
  result says how many were unknown (`tokens_unknown`, `cost_unknown`).
* Scores are per evaluator (`EvaluatorScore`), never one mean across different scales.
* Versions are grouped by (prompt, version): `v2` of two prompts are two rows.

Rows are read with FINAL, so a fact written twice (a page re-read, two replicas syncing at
once) counts once, and deleted annotations count not at all. Quantiles are exact and linearly
interpolated (`quantilesExactInclusive`, numpy's default method). The prompt filter is a set of
our Prompt ids and/or template hashes that the caller resolves from our database; `None` means
any prompt and an empty set means none.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from store import slices
from store.facts import FactStore
from store.filters import ANNOTATIONS, SPANS, Filters, PromptSet
from store.filters import where as _where
from store.transport import Result, StoreError

Split = Literal["version", "model"]
# Bucket sizes a reader can take in at a glance; the smallest that gives <= MAX_BUCKETS wins.
NICE_BUCKETS = (
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
)
MAX_BUCKETS = 120
MAX_PAGE_ROWS = 1000
EXPORT_BATCH_ROWS = 10_000
BOOTSTRAP_SAMPLES = 1000
COMPARE_SAMPLE_ROWS = 5000
Z95 = 1.959963984540054
QUANTILES = (0.5, 0.95, 0.99)
NO_INTERVAL = "no interval: a side has no values"
EXPORT_COLUMNS = (
    "span_id",
    "trace_id",
    "project",
    "prompt_id",
    "template_hash",
    "prompt_version",
    "model",
    "start_time",
    "latency_ms",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "status",
    "cost",
)
SPAN_SORTS = frozenset({"start_time", "latency_ms", "total_tokens", "cost", "model", "status"})
TRACE_SORTS = frozenset({"start_time", "latency_ms", "total_tokens", "llm_calls"})


P = ParamSpec("P")
R = TypeVar("R")


def _releasing(
    function: Callable[Concatenate[FactStore, P], R],
) -> Callable[Concatenate[FactStore, P], R]:
    """Run an aggregate in store.releasing(): the engine's freed memory goes back after it."""

    @functools.wraps(function)
    def run(store: FactStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store.releasing():
            return function(store, *args, **kwargs)

    return run


# The SQL below is assembled from fixed fragments, whitelisted sort columns, integers and the
# WHERE clause store.filters.where builds; every value from a user is a server-side {name:Type}
# parameter. Hence the `noqa: S608` on each statement.


# Results ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metrics:
    """What the charts show for a set of LLM calls; means and totals are over known values."""

    count: int
    errors: int
    error_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    tokens: int | None
    tokens_mean: float | None
    tokens_unknown: int
    cost: float | None
    cost_mean: float | None
    cost_unknown: int


@dataclass(frozen=True)
class EvaluatorScore:
    """One evaluator's mean score over its scored annotations, and how many there were."""

    name: str
    mean: float | None
    scored: int
    annotations: int


@dataclass(frozen=True)
class GroupKey:
    """A (prompt, version) or a model; fields that do not apply are None."""

    prompt_id: str | None = None
    template_hash: str | None = None
    prompt_version: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Kpis:
    """Headline numbers for the filtered LLM calls, with a score per evaluator."""

    metrics: Metrics
    scores: tuple[EvaluatorScore, ...]


@dataclass(frozen=True)
class SeriesPoint:
    """One time bucket (its start, an instant) of one series (a version, a model, or all)."""

    bucket: datetime
    key: GroupKey
    metrics: Metrics


@dataclass(frozen=True)
class Series:
    """A time series, with the bucket size and time zone its boundaries were computed in."""

    bucket_size: timedelta
    timezone: str
    points: tuple[SeriesPoint, ...]


@dataclass(frozen=True)
class BreakdownRow:
    """The metrics and per-evaluator scores of one (prompt, version) or one model."""

    key: GroupKey
    metrics: Metrics
    scores: tuple[EvaluatorScore, ...]


@dataclass(frozen=True)
class Redraw:
    """Everything an analytics redraw shows, from one scan of spans and one of annotations."""

    kpis: Kpis
    series: Series
    breakdown: tuple[BreakdownRow, ...]


def _finite(value: Any) -> float | None:
    """Return a float, or None for NULL and NaN (ClickHouse's quantile of nothing)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _metrics(row: Mapping[str, Any]) -> Metrics:
    """Build Metrics from a row of the metric columns."""
    count = int(row["n"])
    quantiles = row["latency"] or [None] * len(QUANTILES)
    tokens_known = int(row["tokens_known"])
    cost_known = int(row["cost_known"])
    tokens = int(row["tokens"]) if tokens_known else None
    cost = _finite(row["cost_total"]) if cost_known else None
    return Metrics(
        count=count,
        errors=int(row["errors"]),
        error_rate=int(row["errors"]) / count if count else None,
        p50_ms=_finite(quantiles[0]),
        p95_ms=_finite(quantiles[1]),
        p99_ms=_finite(quantiles[2]),
        tokens=tokens,
        tokens_mean=tokens / tokens_known if tokens is not None else None,
        tokens_unknown=count - tokens_known,
        cost=cost,
        cost_mean=cost / cost_known if cost is not None else None,
        cost_unknown=count - cost_known,
    )


# Buckets ----------------------------------------------------------------------------------------


def bucket_size(start: datetime, end: datetime) -> timedelta:
    """Choose the smallest nice bucket that keeps the series to MAX_BUCKETS points."""
    span = max(end - start, timedelta(minutes=1))
    for size in NICE_BUCKETS:
        if span / size <= MAX_BUCKETS:
            return size
    return NICE_BUCKETS[-1]


def check_timezone(name: str) -> str:
    """Return an IANA time zone name, or raise StoreError if there is no such zone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise StoreError(f"{name!r} is not a known time zone") from None
    return name


def _bucket_sql(size: timedelta, column: str) -> str:
    """Return SQL for a row's bucket start (Unix seconds), on the {tz} wall clock."""
    seconds = int(size.total_seconds())
    if seconds % 86400 == 0:
        amount, unit = seconds // 86400, "DAY"
    elif seconds % 3600 == 0:
        amount, unit = seconds // 3600, "HOUR"
    else:
        amount, unit = seconds // 60, "MINUTE"
    # Day and hour buckets start on the time zone's wall clock (local midnight), as a reader
    # in that zone expects; the result is the bucket's first instant.
    return f"toUnixTimestamp(toStartOfInterval({column}, INTERVAL {amount} {unit}, {{tz:String}}))"


def _bounds(store: FactStore, filters: Filters) -> tuple[datetime, datetime] | None:
    """Return the filters' window, reading the data's first and last call where it is open."""
    if filters.start is not None and filters.end is not None:
        return filters.start, filters.end
    where, params = _where(filters)
    # Without FINAL: a duplicate cannot move a minimum or a maximum.
    row = store.transport.query(
        f"SELECT count() AS n, min(start_time), max(start_time) FROM llm_spans WHERE {where}",  # noqa: S608
        params,
    ).rows[0]
    if not row[0]:
        return None
    return filters.start or row[1], filters.end or row[2]


# Span metrics -----------------------------------------------------------------------------------

_KEY_COLUMNS = {"version": ("prompt_id", "prompt_version"), "model": ("model",)}


_METRICS = """
    count() AS n,
    countIf(status = 'ERROR') AS errors,
    quantilesExactInclusive({quantiles})(latency_ms) AS latency,
    sum(total_tokens) AS tokens,
    count(total_tokens) AS tokens_known,
    sum(cost) AS cost_total,
    count(cost) AS cost_known
""".format(quantiles=", ".join(str(q) for q in QUANTILES))


def _fact_slice(kind: slices.Kind, bucket: timedelta | None, days: Sequence[date]) -> str | None:
    """Return the facts' slice expression: 15 minutes beside slices, else the bucket itself."""
    if bucket is None:
        return None
    if days:
        return slices.slice_sql(kind, slices.SLICE)
    return f"toDateTime({_bucket_sql(bucket, kind.start)}, 'UTC')"


def _source(
    store: FactStore,
    kind: slices.Kind,
    filters: Filters,
    keys: Sequence[str],
    bucket: timedelta | None = None,
    timezone: str = "UTC",
    *,
    days: Sequence[date] | None = None,
    extra: str = "1",
) -> tuple[str, dict[str, Any]]:
    """Return the partial aggregates of the filtered facts per key (and slice when bucketed).

    Slices serve the closed days the window covers whole (store/slices.py); pass `days` to
    reuse one plan across the queries of a redraw.
    """
    if days is None:
        days = slices.covered_days(store, kind, filters, bucket)
    elif not slices.usable(bucket):
        days = []
    sql, params = slices.source(
        kind, filters, keys, days, fact_slice=_fact_slice(kind, bucket, days), extra=extra
    )
    if bucket is not None:
        params["tz"] = check_timezone(timezone)
    return sql, params


def _outer_keys(keys: Sequence[str], bucket: timedelta | None) -> list[str]:
    """Return the SELECT expressions of grouping keys over a source: `bucket` and columns."""
    select = [f"{_bucket_sql(bucket, 'slice')} AS bucket"] if bucket is not None else []
    select += list(keys)
    if "prompt_id" in keys:
        select.append("any(prompt_hash) AS prompt_hash")
    return select


def _span_groups(
    store: FactStore,
    filters: Filters,
    keys: tuple[str, ...],
    bucket: timedelta | None = None,
    timezone: str = "UTC",
    *,
    days: Sequence[date] | None = None,
) -> list[dict[str, Any]]:
    """Aggregate the filtered spans per key (columns or "bucket"), or over all if none."""
    plain = [key for key in keys if key != "bucket"]
    if "bucket" in keys and bucket is None:
        raise StoreError("a bucketed grouping needs a bucket size")
    size = bucket if "bucket" in keys else None
    source, params = _source(store, slices.SPAN_KIND, filters, plain, size, timezone, days=days)
    group = (["bucket"] if size is not None else []) + plain
    sql = f"""
        SELECT {", ".join([*_outer_keys(plain, size), slices.SPAN_MERGE])}
        FROM ({source})
        {"GROUP BY " + ", ".join(group) if group else ""}
    """  # noqa: S608
    return store.transport.query(sql, params).dicts()


def _span_overview(
    store: FactStore,
    filters: Filters,
    keys: tuple[str, ...],
    bucket: timedelta,
    timezone: str,
    days: Sequence[date] | None = None,
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Per-key rows, each with its buckets: two reads of the filtered spans (or slices).

    One read finalises each (bucket, key)'s exact quantiles, the other each key's. Doing both
    in one query (bucket states merged into key states) held two copies of every latency value
    at once: 280 MB above the engine's base at 10M spans, where each read alone holds about
    150 MB (measured; bench/README.md). The engine's freed memory goes back between the two.
    Returns [(key row, [bucket rows])], keys in no particular order.
    """
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in _span_groups(store, filters, ("bucket", *keys), bucket, timezone, days=days):
        by_key.setdefault(tuple(row[k] for k in keys), []).append(row)
    store.transport.release_memory()
    rows = []
    for row in _span_groups(store, filters, keys, days=days):
        rows.append((row, by_key.get(tuple(row[k] for k in keys), [])))
    store.transport.release_memory()
    return rows


def _key(row: Mapping[str, Any], group: tuple[str, ...]) -> GroupKey:
    """Build the GroupKey of a row for the keys its grouping set has."""
    return GroupKey(
        prompt_id=row.get("prompt_id") if "prompt_id" in group else None,
        template_hash=row.get("prompt_hash") if "prompt_id" in group else None,
        prompt_version=row.get("prompt_version") if "prompt_version" in group else None,
        model=row.get("model") if "model" in group else None,
    )


def _bucket_time(seconds: int) -> datetime:
    """Convert a bucket's Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(int(seconds), UTC)


def _empty_metrics() -> Metrics:
    """Return the metrics of no calls at all."""
    return Metrics(0, 0, None, None, None, None, None, None, 0, None, None, 0)


def _latency_quantiles(
    store: FactStore,
    filters: Filters,
    keyed: Sequence[Mapping[str, Any]] = (),
    days: Sequence[date] | None = None,
) -> list[float]:
    """Return the exact latency quantiles of all filtered spans.

    Given the per-key rows of the same filters (each with its exact quantiles), the answer is
    selected rather than sorted (_selected_quantiles). Otherwise every value is merged into one
    state on one thread: two threads would each fill a state, then merge both into a third.
    """
    if len(keyed) == 1 and keyed[0]["n"]:
        return list(keyed[0]["latency"])
    if keyed and (found := _selected_quantiles(store, filters, keyed)) is not None:
        return found
    source, params = _source(store, slices.SPAN_KIND, filters, (), days=days)
    quantiles = ", ".join(str(q) for q in QUANTILES)
    latency: list[float] = store.transport.query(
        f"""
        SELECT quantilesExactInclusiveMerge({quantiles})(latency_part) AS latency
        FROM ({source})
        SETTINGS max_threads = 1
        """,  # noqa: S608
        params,
    ).rows[0][0]
    return latency


def _selected_quantiles(
    store: FactStore, filters: Filters, keyed: Sequence[Mapping[str, Any]]
) -> list[float] | None:
    """Select the overall quantiles from the values between the keys' own; None if they miss.

    An overall quantile lies between the smallest and the largest of the keys' same quantile
    (if every key has a share q of its calls at or under x, so does their union). One read of
    the latency column keeps, per quantile, the values inside that bracket, the nearest value
    on either side of it, and how many lie below: enough to read the two order statistics that
    linear interpolation needs. Merging every value into one state instead held two copies of
    all of them while it grew: 210 MB above the engine's base at 10M spans (bench/README.md).
    A write landing between the reads can move the answer out of a bracket; the check below
    then returns None and the caller merges every value.
    """
    known = [row["latency"] for row in keyed if row["n"]]
    if not known:
        return None
    where, params = _where(filters)
    parts = ["count() AS n"]
    for i in range(len(QUANTILES)):
        params[f"low{i}"] = float(min(values[i] for values in known))
        params[f"high{i}"] = float(max(values[i] for values in known))
        low, high = f"{{low{i}:Float64}}", f"{{high{i}:Float64}}"
        parts += [
            f"countIf(latency_ms < {low}) AS below{i}",
            f"maxIfOrNull(latency_ms, latency_ms < {low}) AS under{i}",
            f"arraySort(groupArrayIf(latency_ms, latency_ms BETWEEN {low} AND {high})) AS in{i}",
            f"minIfOrNull(latency_ms, latency_ms > {high}) AS over{i}",
        ]
    row = store.transport.query(
        f"SELECT {', '.join(parts)} FROM llm_spans FINAL WHERE {where}",  # noqa: S608
        params,
    ).dicts()[0]
    n = int(row["n"])
    selected = []
    for i, level in enumerate(QUANTILES):
        below, inside = int(row[f"below{i}"]), list(row[f"in{i}"])
        # Consecutive order statistics from rank `first` on.
        ranked = ([row[f"under{i}"]] if below else []) + inside
        if below + len(inside) < n:
            ranked.append(row[f"over{i}"])
        first = below - 1 if below else 0
        h = (n - 1) * level
        lower = math.floor(h)
        upper = min(lower + 1, n - 1)
        if not n or lower < first or upper - first >= len(ranked):
            return None
        x_lower, x_upper = ranked[lower - first], ranked[upper - first]
        selected.append(x_lower + (h - lower) * (x_upper - x_lower))
    return selected


def _totals(latency: list[float], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Add up the per-key rows into totals, with the exact quantiles read on their own."""
    if not rows:
        return None
    totals: dict[str, Any] = {"latency": latency}
    for name in ("n", "errors", "tokens_known", "cost_known", "tokens", "cost_total"):
        values = [row[name] for row in rows if row[name] is not None]
        totals[name] = sum(values) if values else None
    return totals


# Scores -----------------------------------------------------------------------------------------


def _score_sets(
    store: FactStore,
    filters: Filters,
    sets: Sequence[tuple[str, ...]],
    days: Sequence[date] | None = None,
) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """Per evaluator: mean score and counts for each grouping set, from one read of annotations.

    The engine groups by the finest set only (every key plus the evaluator's name) and returns
    sums and counts; coarser sets add those up here. That is one hash table per row instead of
    one per set, and the means stay exact (a mean is a sum over a count).
    """
    keys = sorted({key for group in sets for key in group} | {"name"})
    source, params = _source(store, slices.ANNOTATION_KIND, filters, keys, days=days)
    sql = f"""
        SELECT {", ".join(keys)}, {slices.SCORE_MERGE}
        FROM ({source})
        GROUP BY {", ".join(keys)}
    """  # noqa: S608
    finest = store.transport.query(sql, params).dicts()
    out = []
    for group in sets:
        names = ("name", *group)
        totals: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in finest:
            ident = tuple(row[k] for k in names)
            into = totals.setdefault(
                ident,
                {
                    **dict(zip(names, ident, strict=True)),
                    "score_sum": 0.0,
                    "scored": 0,
                    "annotations": 0,
                },
            )
            into["score_sum"] += row["score_sum"] or 0.0
            into["scored"] += int(row["scored"])
            into["annotations"] += int(row["annotations"])
        for row in totals.values():
            row["mean"] = row["score_sum"] / row["scored"] if row["scored"] else None
            out.append((tuple(group), row))
    return out


def _score(row: Mapping[str, Any]) -> EvaluatorScore:
    """Build an EvaluatorScore from a row."""
    return EvaluatorScore(
        name=str(row["name"]),
        mean=_finite(row["mean"]) if int(row["scored"]) else None,
        scored=int(row["scored"]),
        annotations=int(row["annotations"]),
    )


Ident = tuple[str | None, str | None, str | None]


def _ident(key: GroupKey) -> Ident:
    """Identify a group without its template hash, which follows from the prompt id."""
    return key.prompt_id, key.prompt_version, key.model


def _scores_by_key(
    rows: Sequence[tuple[tuple[str, ...], dict[str, Any]]], group: tuple[str, ...]
) -> dict[Ident, tuple[EvaluatorScore, ...]]:
    """Collect the scores of one grouping set by key, evaluators in name order."""
    found: dict[Ident, list[EvaluatorScore]] = {}
    for row_group, row in rows:
        if row_group == group:
            found.setdefault(_ident(_key(row, group)), []).append(_score(row))
    return {k: tuple(sorted(v, key=lambda s: s.name)) for k, v in found.items()}


# Public aggregates ------------------------------------------------------------------------------


@_releasing
def kpis(store: FactStore, filters: Filters) -> Kpis:
    """Count, error rate, exact p50/p95/p99 latency, tokens and cost, and scores per evaluator."""
    rows = _span_groups(store, filters, ())
    metrics = _metrics(rows[0]) if rows and rows[0]["n"] else _empty_metrics()
    scores = _scores_by_key(_score_sets(store, filters, [()]), ()).get(_ident(GroupKey()), ())
    return Kpis(metrics, scores)


def _split_keys(split: Split | None) -> tuple[str, ...]:
    """Return the key columns of a split."""
    if split is None:
        return ()
    if split not in _KEY_COLUMNS:
        raise StoreError(f"cannot split by {split!r}; use 'version' or 'model'")
    return _KEY_COLUMNS[split]


def _series(points: list[SeriesPoint], size: timedelta, timezone: str) -> Series:
    """Build a Series, its points ordered by bucket then key."""
    points.sort(key=lambda p: (p.bucket, _sort_key(p.key)))
    return Series(size, timezone, tuple(points))


def _sort_key(key: GroupKey) -> tuple[str, ...]:
    """Order keys with NULLs first and otherwise by text."""
    return tuple(
        "" if v is None else "\x01" + v
        for v in (key.prompt_id, key.prompt_version, key.model, key.template_hash)
    )


@_releasing
def time_series(
    store: FactStore,
    filters: Filters,
    split: Split | None = None,
    *,
    timezone: str = "UTC",
    size: timedelta | None = None,
) -> Series:
    """Per bucket (and per (prompt, version) or model): volume, errors, latency, tokens, cost.

    The bucket size is chosen like services/analytics.bucket_size from the filters' window (or
    the data's first and last call); day and hour buckets start on `timezone`'s wall clock.
    """
    bounds = _bounds(store, filters)
    if bounds is None:
        return Series(size or NICE_BUCKETS[0], timezone, ())
    size = size or bucket_size(*bounds)
    group = ("bucket", *_split_keys(split))
    rows = _span_groups(store, filters, group, size, timezone)
    points = [SeriesPoint(_bucket_time(r["bucket"]), _key(r, group), _metrics(r)) for r in rows]
    return _series(points, size, timezone)


@_releasing
def breakdown(store: FactStore, filters: Filters, by: Split = "version") -> list[BreakdownRow]:
    """Summarise per (prompt, version) or per model, with every evaluator's mean score."""
    group = _split_keys(by)
    rows = _span_groups(store, filters, group)
    scores = _scores_by_key(_score_sets(store, filters, [group]), group)
    result = [
        BreakdownRow(_key(row, group), _metrics(row), scores.get(_ident(_key(row, group)), ()))
        for row in rows
    ]
    return sorted(result, key=lambda r: _sort_key(r.key))


@_releasing
def redraw(
    store: FactStore,
    filters: Filters,
    split: Split = "version",
    *,
    timezone: str = "UTC",
    size: timedelta | None = None,
) -> Redraw:
    """Compute KPIs, the series split by version (or model) and the table by the same key."""
    bounds = _bounds(store, filters)
    size = size or (bucket_size(*bounds) if bounds else NICE_BUCKETS[0])
    key = _split_keys(split)
    # One plan for the three reads, so that all see the same days in slices.
    span_days = slices.covered_days(store, slices.SPAN_KIND, filters, None)
    annotation_days = slices.covered_days(store, slices.ANNOTATION_KIND, filters, None)
    rows = _span_overview(store, filters, key, size, timezone, span_days)
    latency = _latency_quantiles(store, filters, [row for row, _buckets in rows], span_days)
    store.transport.release_memory()
    totals = _totals(latency, [row for row, _buckets in rows])
    score_rows = _score_sets(store, filters, [(), key], annotation_days)
    scores = _scores_by_key(score_rows, key)
    table = []
    points = []
    for row, buckets in rows:
        group_key = _key(row, key)
        table.append(BreakdownRow(group_key, _metrics(row), scores.get(_ident(group_key), ())))
        points += [SeriesPoint(_bucket_time(b["bucket"]), group_key, _metrics(b)) for b in buckets]
    return Redraw(
        kpis=Kpis(
            _metrics(totals) if totals and totals["n"] else _empty_metrics(),
            _scores_by_key(score_rows, ()).get(_ident(GroupKey()), ()),
        ),
        series=_series(points, size, timezone),
        breakdown=tuple(sorted(table, key=lambda r: _sort_key(r.key))),
    )


# Evaluations ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSummary:
    """One evaluator on one (prompt, version): annotations, mean score, and label shares."""

    name: str
    key: GroupKey
    annotations: int
    scored: int
    mean: float | None
    labels: tuple[LabelShare, ...]


@dataclass(frozen=True)
class LabelShare:
    """How often an evaluator gave one label, with a 95 % Wilson score interval."""

    label: str
    count: int
    share: float
    ci_low: float
    ci_high: float


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (95 % by default)."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@_releasing
def score_summary(store: FactStore, filters: Filters) -> list[ScoreSummary]:
    """Per evaluator and (prompt, version): annotations, mean score and label shares."""
    group = ("prompt_id", "prompt_version")
    days = slices.covered_days(store, slices.ANNOTATION_KIND, filters, None)
    keys = ("name", "prompt_id", "prompt_version", "label")
    source, params = _source(
        store, slices.ANNOTATION_KIND, filters, keys, days=days, extra="label IS NOT NULL"
    )
    labels = store.transport.query(
        f"""
        SELECT name, prompt_id, prompt_version, label, sum(annotations_part) AS n
        FROM ({source})
        GROUP BY name, prompt_id, prompt_version, label
        """,  # noqa: S608
        params,
    ).dicts()
    by_key: dict[tuple[str, str | None, str | None], list[tuple[str, int]]] = {}
    for row in labels:
        ident = (row["name"], row["prompt_id"], row["prompt_version"])
        by_key.setdefault(ident, []).append((row["label"], row["n"]))
    out = []
    for _group, row in _score_sets(store, filters, [group], days):
        key = _key(row, group)
        counted = by_key.get((row["name"], key.prompt_id, key.prompt_version), [])
        total = sum(n for _label, n in counted)
        shares = tuple(
            LabelShare(label, n, n / total, *wilson(n, total))
            for label, n in sorted(counted, key=lambda item: (-item[1], item[0]))
        )
        score = _score(row)
        out.append(
            ScoreSummary(score.name, key, score.annotations, score.scored, score.mean, shares)
        )
    return sorted(out, key=lambda s: (s.name, _sort_key(s.key)))


@dataclass(frozen=True)
class TrendPoint:
    """One evaluator's mean score on one (prompt, version) in one bucket."""

    bucket: datetime
    name: str
    key: GroupKey
    mean: float | None
    scored: int


@_releasing
def evaluation_trend(
    store: FactStore,
    filters: Filters,
    *,
    timezone: str = "UTC",
    size: timedelta | None = None,
) -> tuple[timedelta, list[TrendPoint]]:
    """Mean score per bucket, evaluator and (prompt, version); returns the bucket size too."""
    bounds = _bounds(store, filters)
    if bounds is None:
        return size or NICE_BUCKETS[0], []
    size = size or bucket_size(*bounds)
    keys = ("name", "prompt_id", "prompt_version")
    source, params = _source(store, slices.ANNOTATION_KIND, filters, keys, size, timezone)
    rows = store.transport.query(
        f"""
        SELECT {", ".join(_outer_keys(keys, size))},
            sum(score_sum_part) / sum(scored_part) AS mean, sum(scored_part) AS scored
        FROM ({source})
        GROUP BY bucket, {", ".join(keys)}
        HAVING scored > 0
        ORDER BY bucket, name, prompt_id, prompt_version
        """,  # noqa: S608
        params,
    ).dicts()
    group = ("prompt_id", "prompt_version")
    return size, [
        TrendPoint(
            _bucket_time(r["bucket"]), r["name"], _key(r, group), _finite(r["mean"]), r["scored"]
        )
        for r in rows
    ]


def trace_score_summary(store: FactStore, project: str | None = None) -> list[EvaluatorScore]:
    """Per evaluator of whole traces: mean score and counts."""
    where = "project = {project:String}" if project is not None else "1"
    rows = store.transport.query(
        f"""
        SELECT name, avg(score) AS mean, count(score) AS scored, count() AS annotations
        FROM trace_annotations FINAL
        WHERE {where} AND is_deleted = 0
        GROUP BY name ORDER BY name
        """,  # noqa: S608
        {"project": project} if project is not None else {},
    ).dicts()
    return [_score(row) for row in rows]


# Tables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of rows, the total the filters match, and the page's place."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    total: int
    offset: int
    limit: int


def _page_bounds(offset: int, limit: int) -> tuple[int, int]:
    """Clamp a page request to 0 <= offset and 1 <= limit <= MAX_PAGE_ROWS."""
    return max(0, int(offset)), min(max(1, int(limit)), MAX_PAGE_ROWS)


def _order(sort: str, descending: bool, allowed: frozenset[str], tie: str) -> str:
    """Return an ORDER BY from a whitelisted column, so a sort request is never SQL."""
    if sort not in allowed:
        raise StoreError(f"cannot sort by {sort!r}; choose one of {', '.join(sorted(allowed))}")
    direction = "DESC" if descending else "ASC"
    return f"{sort} {direction}, {tie} {direction}"


@_releasing
def spans_page(
    store: FactStore,
    filters: Filters,
    *,
    sort: str = "start_time",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
    total: int | None = None,
) -> Page:
    """Return one page of LLM calls, sorted in the engine; never more than MAX_PAGE_ROWS rows.

    `total`, when the caller knows it (a cached count), saves counting again.
    """
    offset, limit = _page_bounds(offset, limit)
    where, params = _where(filters)
    order = _order(sort, descending, SPAN_SORTS, "span_id")
    select = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM llm_spans FINAL WHERE {where}"  # noqa: S608
    result = sorted_page(
        store,
        "llm_spans",
        "start_time",
        select,
        params,
        filters,
        sort,
        descending,
        order,
        (offset, limit),
    )
    if total is None:
        total = span_count(store, filters)
    return Page(result.columns, result.rows, total, offset, limit)


@_releasing
def span_count(store: FactStore, filters: Filters) -> int:
    """Count the filtered LLM calls (slices stand for the closed days they cover)."""
    return count_parts(store, slices.SPAN_KIND, filters, "n_part")


def count_parts(store: FactStore, kind: slices.Kind, filters: Filters, part: str) -> int:
    """Add up one count column of a kind's slices and facts under the filters."""
    source, params = _source(store, kind, filters, ())
    found = store.transport.query(f"SELECT sum({part}) FROM ({source})", params)  # noqa: S608
    return int(found.rows[0][0] or 0)


def _days_with_rows(store: FactStore, table: str, filters: Filters) -> list[date]:
    """Return the UTC days (partitions) of a table that hold rows in the filters' window."""
    days = []
    for day in slices.partition_days(store, table):
        start = datetime.combine(day, datetime.min.time(), UTC)
        if filters.start is not None and start + timedelta(days=1) <= filters.start:
            continue
        if filters.end is not None and start >= filters.end:
            continue
        days.append(day)
    return days


def sorted_page(
    store: FactStore,
    table: str,
    column: str,
    select: str,
    params: dict[str, Any],
    filters: Filters,
    sort: str,
    descending: bool,
    order: str,
    page: tuple[int, int],
) -> Result:
    """Return one page of `select` (a SELECT with its WHERE) in `order`, at (offset, limit).

    Sorted by `column`, a start time that partitions `table` by its UTC day, every row of a
    later day sorts before every row of an earlier one (descending): if the last k days fill
    the page, the page is exact. Sorting 10M rows to show the newest 100 read every row (0.3 s
    at 10M); one day holds a thirtieth. k grows fourfold until the page fills or every day is in.
    """
    offset, limit = page
    paged = f"ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    if sort != column:
        return store.transport.query(f"{select} {paged}", params)
    days = _days_with_rows(store, table, filters)
    k = 1
    while k < len(days):
        edge = days[-k] if descending else days[k]
        cut = datetime.combine(edge, datetime.min.time(), UTC)
        condition = f"{column} >= {{edge_cut:DateTime64(6, 'UTC')}}"
        if not descending:
            condition = f"{column} < {{edge_cut:DateTime64(6, 'UTC')}}"
        result = store.transport.query(
            f"{select} AND {condition} {paged}", {**params, "edge_cut": cut}
        )
        if len(result.rows) == limit:
            return result
        k *= 4
    return store.transport.query(f"{select} {paged}", params)


TRACE_COLUMNS = (
    "trace_id",
    "project",
    "prompt_id",
    "prompt_version",
    "model",
    "start_time",
    "llm_calls",
    "latency_ms",
    "total_tokens",
    "tokens_unknown",
    "status",
)


def traces_sql(where: str) -> str:
    """Return the SELECT of one row per trace, in TRACE_COLUMNS, of the spans `where` keeps."""
    # Aggregates get new names: an alias equal to a column would change what WHERE reads.
    return f"""
        SELECT trace_id, trace_project AS project, first_prompt_id AS prompt_id,
            first_prompt_version AS prompt_version, first_model AS model,
            first_start AS start_time, calls AS llm_calls, latency_sum AS latency_ms,
            tokens_sum AS total_tokens, tokens_unknown_sum AS tokens_unknown,
            trace_status AS status
        FROM (
            SELECT trace_id,
                any(project) AS trace_project,
                argMin(prompt_id, start_time) AS first_prompt_id,
                argMin(prompt_version, start_time) AS first_prompt_version,
                argMin(model, start_time) AS first_model,
                min(start_time) AS first_start,
                count() AS calls,
                sum(latency_ms) AS latency_sum,
                sum(total_tokens) AS tokens_sum,
                countIf(total_tokens IS NULL) AS tokens_unknown_sum,
                if(countIf(status = 'ERROR') > 0, 'ERROR', 'OK') AS trace_status
            FROM llm_spans FINAL WHERE {where}
            GROUP BY trace_id
        )
    """  # noqa: S608


@_releasing
def traces_page(
    store: FactStore,
    filters: Filters,
    *,
    sort: str = "start_time",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
    total: int | None = None,
) -> Page:
    """One row per trace (its first call's prompt and model, summed latency and tokens, ERROR
    if any call failed), one page of them, sorted in the engine; `total` as in spans_page."""
    offset, limit = _page_bounds(offset, limit)
    where, params = _where(filters)
    order = _order(sort, descending, TRACE_SORTS, "trace_id")
    result = None
    if sort == "start_time" and descending and offset + limit <= NEWEST_TRACES_MAX:
        result = _newest_traces(store, where, params, offset, limit)
    if result is None:
        result = _grouped_traces(store, where, params, order, offset, limit)
    if total is None:
        total = _trace_count(store, where, params)
    return Page(result.columns, result.rows, total, offset, limit)


# A very large window spills the per-trace table to disk rather than growing the process.
SPILL_SETTINGS = "SETTINGS max_bytes_before_external_group_by = 200000000"
# The newest traces (the grid's default order) are found among the newest spans: this many
# spans a row asked for are read; only if that cannot decide is every trace grouped.
NEWEST_SPANS_PER_ROW = 20
NEWEST_TRACES_MAX = 1000


def _grouped_traces(
    store: FactStore, where: str, params: dict[str, Any], order: str, offset: int, limit: int
) -> Result:
    """Group every filtered trace, then return one sorted page of them."""
    paged = f"{traces_sql(where)} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    return store.transport.query(f"{paged} {SPILL_SETTINGS}", params)


def _newest_traces(
    store: FactStore, where: str, params: dict[str, Any], offset: int, limit: int
) -> Result | None:
    """Return a page of the newest traces from the newest spans, or None when unsure.

    Every span newer than the oldest of the K newest spans read is among them, so a trace that
    began after that cutoff has all its spans there. If the page's last trace began after the
    cutoff, no trace left out can outrank it: the page is exact. Grouping 3.3M traces to show
    100 took 12 s at 10M spans; this reads K spans and groups only their traces.
    """
    wanted = NEWEST_SPANS_PER_ROW * (offset + limit)
    # No FINAL: a duplicate row only repeats a span; the cutoff argument holds for every copy.
    newest = f"SELECT trace_id, start_time FROM llm_spans WHERE {where} ORDER BY start_time DESC LIMIT {wanted}"  # noqa: E501, S608
    cutoff, read = store.transport.query(
        f"SELECT min(start_time), count() FROM ({newest})",  # noqa: S608
        params,
    ).rows[0]
    if not read:
        return None
    # Spans written between these two queries can push a trace that began just after the cutoff
    # out of the candidates: that page may miss it until the next redraw, which the sync's
    # watermark moving triggers.
    among = f"({where}) AND trace_id IN (SELECT trace_id FROM ({newest}))"  # noqa: S608
    page = store.transport.query(
        f"{traces_sql(among)} ORDER BY start_time DESC, trace_id DESC"
        f" LIMIT {limit} OFFSET {offset}",
        params,
    )
    if read < wanted:
        return page  # every filtered span was read: every trace is here
    start = page.columns.index("start_time")
    if len(page.rows) == limit and page.rows[-1][start] > cutoff:
        return page
    return None


# Past this many bytes of hash table per thread, counting traces goes on on disk.
TRACE_COUNT_SPILL_BYTES = 40_000_000


def _trace_count(store: FactStore, where: str, params: dict[str, Any]) -> int:
    """Count the traces of the spans `where` keeps; grouping needs no FINAL to dedupe.

    Grouped by the 64-bit CityHash of each trace id, a grouping that spills to disk past
    TRACE_COUNT_SPILL_BYTES, so memory stays flat however many traces there are: at 10M spans
    (3.3M traces) 100 MB above the engine's base, against 400 MB for uniqExact of the ids
    and 190 MB for uniqExact of their hashes, for 0.4 s against 0.45 s and 0.29 s (measured).
    The chance that two of 10M traces share a 64-bit hash, and the count comes out one short,
    is about 3e-6.
    """
    sql = f"""
        SELECT count() FROM (
            SELECT cityHash64(trace_id) AS trace FROM llm_spans WHERE {where} GROUP BY trace
        )
        SETTINGS max_bytes_before_external_group_by = {TRACE_COUNT_SPILL_BYTES}
    """  # noqa: S608
    return int(store.transport.query(sql, params).rows[0][0])


@_releasing
def trace_count(store: FactStore, filters: Filters) -> int:
    """Count the filtered traces without grouping them: a page's title needs no rows."""
    where, params = _where(filters)
    return _trace_count(store, where, params)


def iter_spans(
    store: FactStore, filters: Filters, batch_rows: int = EXPORT_BATCH_ROWS
) -> Generator[tuple[tuple[str, ...], list[tuple[Any, ...]]], None, None]:
    """Yield (columns, rows) batches of every filtered LLM call, streamed from the engine.

    In storage order (by day, then time within a day's part), not sorted: an ORDER BY over the
    whole selection would make the engine hold it all (about 100 MB per million rows, measured),
    and one reading thread keeps the rest flat (78 MB extra at 1M rows, whatever the size). Close
    the iterator (or exhaust it) to end the query.
    """
    where, params = _where(filters)
    stream = store.transport.stream(
        f"""
        SELECT {", ".join(EXPORT_COLUMNS)} FROM llm_spans FINAL WHERE {where}
        SETTINGS max_threads = 1
        """,  # noqa: S608
        params,
        batch_rows,
    )
    with store.releasing():
        try:
            for batch in stream:
                yield batch.columns, batch.rows
        finally:
            stream.close()


# Overviews --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptRank:
    """One prompt (all its versions) ranked by calls, with its scores per evaluator."""

    prompt: str
    metrics: Metrics
    scores: tuple[EvaluatorScore, ...]


@_releasing
def top_prompts(
    store: FactStore,
    filters: Filters,
    names: Mapping[str, str],
    limit: int | None = 10,
) -> list[PromptRank]:
    """Rank prompts by calls; `names` maps our Prompt ids to prompt names (versions merge)."""
    ids = sorted(names)
    params = {"rank_ids": ids, "rank_names": [names[i] for i in ids]}
    prompt = "transform(prompt_id, {rank_ids:Array(String)}, {rank_names:Array(String)}, '')"
    extra = "prompt_id IN {rank_ids:Array(String)}"
    source, source_params = _source(store, slices.SPAN_KIND, filters, ("prompt_id",), extra=extra)
    rows = store.transport.query(
        f"""
        SELECT {prompt} AS prompt, {slices.SPAN_MERGE}
        FROM ({source})
        GROUP BY prompt ORDER BY n DESC, prompt
        {"" if limit is None else f"LIMIT {int(limit)}"}
        """,  # noqa: S608
        {**source_params, **params},
    ).dicts()
    source, source_params = _source(
        store, slices.ANNOTATION_KIND, filters, ("prompt_id", "name"), extra=extra
    )
    scores = store.transport.query(
        f"""
        SELECT {prompt} AS prompt, name, {slices.SCORE_MERGE},
            sum(score_sum_part) / sum(scored_part) AS mean
        FROM ({source})
        GROUP BY prompt, name ORDER BY name
        """,  # noqa: S608
        {**source_params, **params},
    ).dicts()
    by_prompt: dict[str, list[EvaluatorScore]] = {}
    for row in scores:
        by_prompt.setdefault(row["prompt"], []).append(_score(row))
    return [
        PromptRank(row["prompt"], _metrics(row), tuple(by_prompt.get(row["prompt"], ())))
        for row in rows
    ]


@dataclass(frozen=True)
class PeriodStats:
    """A window's KPIs, the previous window's, and the window's series for sparklines."""

    current: Kpis
    previous: Kpis
    series: Series


@_releasing
def period_stats(
    store: FactStore,
    window: timedelta,
    now: datetime,
    filters: Filters | None = None,
    *,
    timezone: str = "UTC",
) -> PeriodStats:
    """Compare the last `window` before `now` with the window before it."""
    base = filters or Filters()
    current = Filters(**{**asdict_shallow(base), "start": now - window, "end": now})
    previous = Filters(**{**asdict_shallow(base), "start": now - 2 * window, "end": now - window})
    return PeriodStats(
        current=kpis(store, current),
        previous=kpis(store, previous),
        series=time_series(store, current, timezone=timezone),
    )


def asdict_shallow(filters: Filters) -> dict[str, Any]:
    """Return the filters' fields without converting nested values."""
    return {name: getattr(filters, name) for name in Filters.__dataclass_fields__}


@dataclass(frozen=True)
class FilterOptions:
    """The values the filter bar offers, from the stored facts."""

    projects: tuple[str, ...]
    models: tuple[str, ...]
    versions: tuple[str, ...]
    prompt_ids: tuple[str, ...]
    template_hashes: tuple[str, ...] = field(default=())


def filter_options(store: FactStore, prompts: PromptSet | None = None) -> FilterOptions:
    """List distinct projects, models, versions and prompts (versions of some prompts only)."""
    where, params = _where(Filters(prompts=prompts))
    lists = f"""
        groupUniqArray(project) AS projects,
        groupUniqArray(model) AS models,
        groupUniqArrayIf(prompt_version, {where}) AS versions,
        groupUniqArray(prompt_id) AS prompt_ids,
        groupUniqArray(template_hash) AS hashes
    """
    # Without FINAL: a duplicate row cannot add a distinct value, and spans are never deleted.
    # One read for all five lists (five scalar subqueries read the table five times: 0.5 s of
    # a cold analytics page at 10M spans); slices stand for the days they cover.
    days = [day.isoformat() for day in slices.fresh_days(store, slices.SPAN_KIND)]
    skip = " WHERE toDate(start_time) NOT IN {slice_days:Array(Date)}" if days else ""
    sql = f"SELECT {lists} FROM llm_spans{skip}"  # noqa: S608
    if days:
        sql += f"""
            UNION ALL SELECT {lists} FROM span_slices
            WHERE toDate(slice) IN {{slice_days:Array(Date)}}
        """  # noqa: S608
        params["slice_days"] = days
    found: list[set[str]] = [set(), set(), set(), set(), set()]
    for row in store.transport.query(sql, params).rows:
        for into, values in zip(found, row, strict=True):
            into.update(str(v) for v in values)
    return FilterOptions(*(tuple(sorted(values)) for values in found))


# Comparison -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionKey:
    """One side of a comparison: a version, of one prompt (our Prompt id) or of any."""

    prompt_version: str
    prompt_id: str | None = None


@dataclass(frozen=True)
class Delta:
    """B minus A for one metric, with its 95 % interval and how that interval was made."""

    metric: str
    a: float | None
    b: float | None
    delta: float | None
    ci_low: float | None
    ci_high: float | None
    method: str
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool | None:
        """Tell whether the interval excludes zero; None when there is no interval to say so."""
        if self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0


def _side(filters: Filters, side: VersionKey) -> Filters:
    """Narrow the filters to one side of a comparison."""
    if filters.versions and side.prompt_version not in filters.versions:
        # The filters exclude this version: the side is empty.
        return Filters(**{**asdict_shallow(filters), "prompts": PromptSet()})
    if filters.prompt_map is not None:
        # Under a map a side is the groups that belong to its prompt and show its label.
        groups = set(filters.prompt_map.groups_of(side.prompt_id, (side.prompt_version,)))
        if filters.prompts is not None:
            groups &= set(filters.prompts.ids)
        prompts = PromptSet(ids=tuple(sorted(groups)))
        return Filters(**{**asdict_shallow(filters), "prompts": prompts, "versions": ()})
    chosen = PromptSet(ids=(side.prompt_id,)) if side.prompt_id is not None else filters.prompts
    values = {**asdict_shallow(filters), "prompts": chosen, "versions": (side.prompt_version,)}
    return Filters(**values)


def _sample(
    store: FactStore, filters: Filters, table: str, columns: str, seed: int, size: int
) -> list[tuple[Any, ...]]:
    """Draw at most `size` rows in the engine, the same rows for the same seed and data."""
    where, params = _where(filters, ANNOTATIONS if table == "span_annotations" else SPANS)
    deleted = " AND is_deleted = 0" if table == "span_annotations" else ""
    ident = "annotation_id" if table == "span_annotations" else "span_id"
    return store.transport.query(
        f"""
        SELECT {columns} FROM {table} FINAL WHERE {where}{deleted}
        ORDER BY cityHash64({ident}, {int(seed)}) LIMIT {int(size)}
        """,  # noqa: S608
        params,
    ).rows


def _bootstrap(
    a: np.ndarray, b: np.ndarray, statistic: str, rng: np.random.Generator
) -> tuple[float, float]:
    """Return the 2.5th and 97.5th percentiles of stat(B*) - stat(A*) over resamples."""

    def stats(values: np.ndarray) -> np.ndarray:
        draws = values[rng.integers(0, values.size, size=(BOOTSTRAP_SAMPLES, values.size))]
        if statistic == "mean":
            return np.asarray(draws.mean(axis=1))
        return np.asarray(np.percentile(draws, float(statistic), axis=1))

    low, high = np.percentile(stats(b) - stats(a), [2.5, 97.5])
    return float(low), float(high)


def _newcombe(errors_a: int, n_a: int, errors_b: int, n_b: int) -> tuple[float, float]:
    """Return Newcombe's hybrid score interval (from two Wilson intervals) for p_b - p_a."""
    p_a, p_b = errors_a / n_a, errors_b / n_b
    low_a, high_a = wilson(errors_a, n_a)
    low_b, high_b = wilson(errors_b, n_b)
    delta = p_b - p_a
    low = delta - math.sqrt((p_b - low_b) ** 2 + (high_a - p_a) ** 2)
    high = delta + math.sqrt((high_b - p_b) ** 2 + (p_a - low_a) ** 2)
    return low, high


@_releasing
def compare_versions(
    store: FactStore,
    filters: Filters,
    a: VersionKey,
    b: VersionKey,
    *,
    seed: int = 0,
    sample_rows: int = COMPARE_SAMPLE_ROWS,
) -> list[Delta]:
    """Compare version B with version A metric by metric, B minus A, with 95 % intervals.

    Method (each Delta names its own): a, b and the delta are exact, over every matching row.
    Latency p50/p95, tokens per call and per-evaluator mean scores get a percentile bootstrap
    (1,000 resamples, numpy seeded with `seed`) of a sample of at most 5,000 rows per side
    (`sample_rows`) drawn in the engine in a fixed pseudo-random order (cityHash64 of the row id
    and `seed`), so the same data and seed give the same interval; a side with more rows gets a
    slightly wider interval than a full-data bootstrap would. The error rate gets Newcombe's
    hybrid score interval, built from the two sides' Wilson intervals on the exact counts.
    """
    side_a, side_b = _side(filters, a), _side(filters, b)
    exact_a, exact_b = kpis(store, side_a), kpis(store, side_b)
    ma, mb = exact_a.metrics, exact_b.metrics
    rng = np.random.default_rng(seed)
    bootstrap = f"percentile bootstrap, {BOOTSTRAP_SAMPLES} resamples of <= {sample_rows} rows"
    deltas: list[Delta] = []
    columns = "latency_ms, total_tokens"
    rows_a = _sample(store, side_a, "llm_spans", columns, seed, sample_rows)
    rows_b = _sample(store, side_b, "llm_spans", columns, seed, sample_rows)
    latency_a = np.array([r[0] for r in rows_a], dtype=float)
    latency_b = np.array([r[0] for r in rows_b], dtype=float)
    for label, stat, exact in (
        ("p50 latency (ms)", "50", (ma.p50_ms, mb.p50_ms)),
        ("p95 latency (ms)", "95", (ma.p95_ms, mb.p95_ms)),
    ):
        counts = (ma.count, mb.count)
        deltas.append(_delta(label, exact, latency_a, latency_b, stat, rng, bootstrap, counts))
    tokens_a = np.array([r[1] for r in rows_a if r[1] is not None], dtype=float)
    tokens_b = np.array([r[1] for r in rows_b if r[1] is not None], dtype=float)
    tokens = (ma.tokens_mean, mb.tokens_mean)
    # Each n is what its mean is over: calls with known tokens, scored annotations.
    known = (ma.count - ma.tokens_unknown, mb.count - mb.tokens_unknown)
    deltas.append(
        _delta("tokens per call", tokens, tokens_a, tokens_b, "mean", rng, bootstrap, known)
    )
    if ma.count and mb.count:
        low, high = _newcombe(ma.errors, ma.count, mb.errors, mb.count)
        rate_a, rate_b = ma.error_rate or 0.0, mb.error_rate or 0.0
        deltas.append(
            Delta(
                "error rate",
                rate_a,
                rate_b,
                rate_b - rate_a,
                low,
                high,
                "Newcombe hybrid score (Wilson) interval on exact counts",
                ma.count,
                mb.count,
            )
        )
    else:
        deltas.append(
            Delta(
                "error rate",
                ma.error_rate,
                mb.error_rate,
                None,
                None,
                None,
                NO_INTERVAL,
                ma.count,
                mb.count,
            )
        )
    means_a = {s.name: s for s in exact_a.scores}
    means_b = {s.name: s for s in exact_b.scores}
    for name in sorted(set(means_a) | set(means_b)):
        score_a = _scores_sample(store, side_a, name, seed, sample_rows)
        score_b = _scores_sample(store, side_b, name, seed, sample_rows)
        sa, sb = means_a.get(name), means_b.get(name)
        exact = (sa.mean if sa else None, sb.mean if sb else None)
        scored = (sa.scored if sa else 0, sb.scored if sb else 0)
        deltas.append(
            _delta(f"mean {name}", exact, score_a, score_b, "mean", rng, bootstrap, scored)
        )
    return deltas


def _scores_sample(
    store: FactStore, filters: Filters, name: str, seed: int, size: int
) -> np.ndarray:
    """Sample one evaluator's scores for one side."""
    where, params = _where(filters, ANNOTATIONS)
    rows = store.transport.query(
        f"""
        SELECT score FROM span_annotations FINAL
        WHERE {where} AND is_deleted = 0 AND name = {{evaluator:String}} AND score IS NOT NULL
        ORDER BY cityHash64(annotation_id, {int(seed)}) LIMIT {int(size)}
        """,  # noqa: S608
        {**params, "evaluator": name},
    ).rows
    return np.array([r[0] for r in rows], dtype=float)


def _delta(
    metric: str,
    exact: tuple[float | None, float | None],
    a: np.ndarray,
    b: np.ndarray,
    statistic: str,
    rng: np.random.Generator,
    method: str,
    counts: tuple[int, int],
) -> Delta:
    """Build one Delta: exact values, and a bootstrap interval where both sides have data.

    `counts` are the values each side's statistic is over. Without data on both sides there is
    no interval, and the Delta says so instead of naming a method that did not run.
    """
    value_a, value_b = exact
    n_a, n_b = counts
    if value_a is None or value_b is None or a.size == 0 or b.size == 0:
        return Delta(metric, value_a, value_b, None, None, None, NO_INTERVAL, n_a, n_b)
    low, high = _bootstrap(a, b, statistic, rng)
    return Delta(metric, value_a, value_b, value_b - value_a, low, high, method, n_a, n_b)


# Charts (helper G) ------------------------------------------------------------------------------

# A chart's buckets hold at least this many calls on average, else a coarser size is taken...
MIN_CALLS_PER_BUCKET = 3
# ...as long as the window keeps at least this many buckets.
MIN_CHART_BUCKETS = 6


def chart_bucket_size(start: datetime, end: datetime, calls: int) -> timedelta:
    """Choose a chart's bucket from its window, coarser while buckets average under 3 calls.

    Starts from bucket_size (at most MAX_BUCKETS buckets) and takes the next nice size while
    the window's calls spread thinner than MIN_CALLS_PER_BUCKET per bucket, never going below
    MIN_CHART_BUCKETS buckets: sparse data then reads as a few honest bars, not a zig-zag.
    """
    span = max(end - start, timedelta(minutes=1))
    chosen = bucket_size(start, end)
    for candidate in NICE_BUCKETS[NICE_BUCKETS.index(chosen) :]:
        if span / candidate < MIN_CHART_BUCKETS:
            break
        chosen = candidate
        if calls >= MIN_CALLS_PER_BUCKET * (span / candidate):
            break
    return chosen


def bucket_start(moment: datetime, size: timedelta, timezone: str = "UTC") -> datetime:
    """Return the first instant (UTC) of the bucket holding `moment`, as _bucket_sql puts it.

    ClickHouse's toStartOfInterval floors days (since 1970-01-01) and hours (within the day) on
    the zone's wall clock, and minutes on the Unix clock, whatever the zone (checked against the
    engine in tests/test_charts_truth.py).
    """
    zone = ZoneInfo(check_timezone(timezone))
    seconds = int(size.total_seconds())
    if seconds % 3600:
        step = max(seconds // 60, 1) * 60
        unix = math.floor(moment.timestamp())
        return datetime.fromtimestamp(unix - unix % step, UTC)
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if seconds % 86400 == 0:
        days = (wall.date() - date(1970, 1, 1)).days
        first = date(1970, 1, 1) + timedelta(days=days - days % (seconds // 86400))
        floored = datetime(first.year, first.month, first.day)
    else:
        hours = seconds // 3600
        floored = wall.replace(
            hour=wall.hour - wall.hour % hours, minute=0, second=0, microsecond=0
        )
    return floored.replace(tzinfo=zone, fold=local.fold).astimezone(UTC)


def bucket_edges(
    start: datetime, end: datetime, size: timedelta, timezone: str = "UTC"
) -> list[datetime]:
    """Return the edges of every bucket the window [start, end) touches: bucket i is [e[i], e[i+1]).

    A local day across a clock change lasts 23 or 25 hours: stepping by `size` then flooring
    can land on the same bucket, so such a step goes half a bucket further.
    """
    edges = [bucket_start(start, size, timezone)]
    # Bounded, whatever a caller passes: the charts ask for about MAX_BUCKETS.
    while edges[-1] < end and len(edges) <= 4 * MAX_BUCKETS:
        following = bucket_start(edges[-1] + size, size, timezone)
        if following <= edges[-1]:
            following = bucket_start(edges[-1] + size * 1.5, size, timezone)
        edges.append(following)
    return edges


def chart_window(
    store: FactStore, filters: Filters, now: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """Return the window a chart spans: the filters', with open ends at the data or now."""
    bounds = _bounds(store, filters)
    moment = now or datetime.now(UTC)
    if bounds is None:
        if filters.start is None:
            return None
        return filters.start, filters.end or max(moment, filters.start)
    start, last = bounds
    if filters.end is not None:
        return start, filters.end
    # Open-ended: up to now, and past it should a clock have written calls from the future.
    return start, max(moment, last + timedelta(microseconds=1))


# Counting traces per bucket groups every span of the window by (bucket, series, trace): 0.3 to
# 0.5 s at 1M calls, 4 to 6 s at 10M (measured on the bench stores). Above this many calls the
# charts leave the trace counts out rather than hold the page up.
TRACE_COUNT_MAX_CALLS = 500_000


@_releasing
def trace_counts(
    store: FactStore,
    filters: Filters,
    split: Split | None,
    size: timedelta,
    *,
    timezone: str = "UTC",
) -> dict[tuple[datetime, Ident], int]:
    """Count the traces per bucket and series, as trace_count counts those of one bucket's filters.

    A trace counts in every (bucket, series) where it has a filtered call; the keys are each
    bucket's start and the series' _ident. The same hashed grouping as _trace_count, so a
    point's count equals what the traces page lists for that bucket and series.
    """
    # Imported here so this section only appends to the module.
    from store.filters import prompt_sql, version_sql

    where, params = _where(filters)
    params["tz"] = check_timezone(timezone)
    prompt, version = "prompt_id", "prompt_version"
    if split == "version" and filters.prompt_map is not None:
        prompt, version = prompt_sql(), version_sql()
        params.update(filters.prompt_map.params())
    # Aliases unlike any column: ClickHouse would otherwise read them in WHERE.
    keys = {
        "version": [f"{prompt} AS key_prompt", f"{version} AS key_version"],
        "model": ["model AS key_model"],
    }.get(split or "", [])
    names = [key.rsplit(" AS ", 1)[1] for key in keys]
    group = ", ".join(["bucket", *names])
    sql = f"""
        SELECT {group}, count() AS traces FROM (
            SELECT {", ".join([f"{_bucket_sql(size, 'start_time')} AS bucket", *keys])},
                cityHash64(trace_id) AS trace
            FROM llm_spans WHERE {where}
            GROUP BY {group}, trace
        )
        GROUP BY {group}
        SETTINGS max_bytes_before_external_group_by = {TRACE_COUNT_SPILL_BYTES}
    """  # noqa: S608
    counts = {}
    for row in store.transport.query(sql, params).dicts():
        ident: Ident = (
            row.get("key_prompt"),
            row.get("key_version"),
            row.get("key_model"),
        )
        counts[(_bucket_time(row["bucket"]), ident)] = int(row["traces"])
    return counts
