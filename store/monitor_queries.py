"""The store reads a regression monitor needs: one side of a comparison, summarised exactly.

A monitor compares two sides (two versions, two windows, or one window against a threshold)
and needs, per side, only what its interval is built from (services/monitor_stats.py): a count
and a mean and sample variance for a mean, a count of hits for a rate, and a handful of order
statistics for a quantile. Each is computed in the engine over every matching row, so a side
costs one scan of one column of its rows however many there are, and the answers are exact
(tests/test_monitor_stats.py compares them with numpy).

Rows are read with FINAL (a fact written twice counts once) and deleted annotations count not
at all, as in store/analytics.py. The pre-aggregated slices are not used: they hold no sum of
squares for a variance, and an exact quantile state whose levels are fixed in its type.

Quantiles take two reads: the count, from which the ranks the interval needs follow (they
depend on n), then exactly those order statistics. `quantilesExact(level)` returns the value at
0-based index floor(level * n) of the sorted values, so rank r (1-based) is read at level
(r - 0.5) / n, half a rank from either neighbour. The second read counts the rows again; if a
write landed in between, the ranks are recomputed for the new count and read again.

Cost (bench/monitor_bench.py, 10M spans): a whole relative monitor, both sides and the
decision, takes at worst 0.3 s cold, for p95 latency over 7 days (778k calls a side).
"""

from __future__ import annotations

import math
from typing import Any

from services.monitor_stats import (
    METRIC_KINDS,
    QUANTILE_LEVELS,
    T_STAR,
    SideEstimate,
    interpolated,
    mean_side,
    needed_ranks,
    proportion_side,
    quantile_side,
)
from store.facts import FactStore
from store.filters import ANNOTATIONS, SPANS, Filters, where
from store.transport import StoreError

METRICS = frozenset(METRIC_KINDS)
# The column each per-call mean is over; NULL (unknown) values are skipped, never read as 0.
MEAN_COLUMNS = {"tokens_per_call": "total_tokens", "cost_per_call": "cost"}
# How many times a quantile's ranks are re-read when writes keep moving the count.
RANK_READS = 3

# The SQL below is assembled from fixed fragments, whitelisted column names, levels computed
# here (floats, written with repr so that they read back exactly) and the WHERE clause
# store.filters.where builds; every value from a user is a server-side {name:Type} parameter.
# Hence the `noqa: S608` on each statement.


def _finite(value: Any) -> float | None:
    """Return a float, or None for NULL, NaN and infinities (an aggregate of nothing)."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _spans(filters: Filters) -> tuple[str, dict[str, Any]]:
    """Return the WHERE clause and parameters of the side's LLM spans."""
    return where(filters, SPANS)


def _annotations(filters: Filters, evaluator: str) -> tuple[str, dict[str, Any]]:
    """Return the WHERE clause and parameters of the side's live annotations by one evaluator."""
    clause, params = where(filters, ANNOTATIONS)
    params["monitor_evaluator"] = evaluator
    return f"{clause} AND is_deleted = 0 AND name = {{monitor_evaluator:String}}", params


def _mean(
    store: FactStore, table: str, column: str, clause: str, params: dict[str, Any]
) -> tuple[int, float | None, float | None, float | None, float | None]:
    """Return (n, mean, sample variance, smallest, largest) of a column's known values."""
    # varSampStable: Welford's update, not the sum of squares, which loses digits on large
    # token counts; it divides by n - 1, as the interval wants.
    row = store.transport.query(
        f"""
        SELECT count({column}) AS n, avg({column}) AS mean, varSampStable({column}) AS variance,
            minOrNull({column}) AS smallest, maxOrNull({column}) AS largest
        FROM {table} FINAL WHERE {clause}
        """,  # noqa: S608
        params,
    ).rows[0]
    return int(row[0]), _finite(row[1]), _finite(row[2]), _finite(row[3]), _finite(row[4])


def _hits(
    store: FactStore, table: str, hit: str, clause: str, params: dict[str, Any]
) -> tuple[int, int]:
    """Return (n, hits): the selected rows and how many of them satisfy `hit`."""
    row = store.transport.query(
        f"SELECT count() AS n, countIf({hit}) AS hits FROM {table} FINAL WHERE {clause}",  # noqa: S608
        params,
    ).rows[0]
    return int(row[0]), int(row[1])


def span_count(store: FactStore, filters: Filters) -> int:
    """Count the side's LLM calls."""
    clause, params = _spans(filters)
    rows = store.transport.query(
        f"SELECT count() AS n FROM llm_spans FINAL WHERE {clause}",  # noqa: S608
        params,
    ).rows
    return int(rows[0][0])


def _order_statistics(
    store: FactStore, filters: Filters, n: int, ranks: tuple[int, ...]
) -> tuple[int, dict[int, float]]:
    """Read the latencies at 1-based `ranks` among n; return the count seen and the values."""
    if not ranks or min(ranks) < 1 or max(ranks) > n:
        raise StoreError(f"ranks must lie in 1..{n}, got {ranks!r}")
    clause, params = _spans(filters)
    levels = ", ".join(repr((rank - 0.5) / n) for rank in ranks)
    row = store.transport.query(
        f"""
        SELECT count() AS n, quantilesExact({levels})(latency_ms) AS values
        FROM llm_spans FINAL WHERE {clause}
        """,  # noqa: S608
        params,
    ).rows[0]
    return int(row[0]), {rank: float(v) for rank, v in zip(ranks, row[1], strict=True)}


def order_statistics(
    store: FactStore, filters: Filters, ranks: tuple[int, ...]
) -> tuple[int, dict[int, float]]:
    """Return (n, {rank: latency}) for 1-based ranks of the side's sorted latencies.

    Counts first, then reads; a rank beyond the count is left out of the answer.
    """
    n = span_count(store, filters)
    inside = tuple(sorted({r for r in ranks if 1 <= r <= n}))
    if not inside:
        return n, {}
    seen, values = _order_statistics(store, filters, n, inside)
    if seen != n:
        raise StoreError("the facts changed between the count and the read; read again")
    return n, values


def _quantile(
    store: FactStore, filters: Filters, q: float, alpha: float, t_star: int
) -> SideEstimate:
    """Return a latency quantile's estimate: count, then the order statistics it needs."""
    n = span_count(store, filters)
    for _ in range(RANK_READS):
        if n == 0:
            return quantile_side(0, None, {}, q, alpha, t_star)
        ranks = needed_ranks(n, q, alpha, t_star)
        seen, values = _order_statistics(store, filters, n, ranks)
        if seen == n:
            return quantile_side(n, interpolated(n, q, values), values, q, alpha, t_star)
        n = seen  # a write landed between the reads: the ranks are for another count
    raise StoreError("the facts kept changing while a quantile was read; try again")


def side_estimate(
    store: FactStore,
    filters: Filters,
    metric: str,
    *,
    alpha: float,
    evaluator: str | None = None,
    label: str | None = None,
    t_star: int = T_STAR,
) -> SideEstimate:
    """Summarise one side of a monitor: its point value and always-valid interval at `alpha`.

    `metric` is one of METRICS; score_mean needs `evaluator`, label_share both `evaluator`
    and `label`. Pass alpha = monitor_stats.SIDE_ALPHA for a side of a comparison (the union
    bound), monitor_stats.ALPHA for a threshold.
    """
    if metric not in METRICS:
        raise StoreError(f"unknown metric {metric!r}; use one of {', '.join(sorted(METRICS))}")
    with store.releasing():
        if metric in QUANTILE_LEVELS:
            return _quantile(store, filters, QUANTILE_LEVELS[metric], alpha, t_star)
        if metric == "error_rate":
            clause, params = _spans(filters)
            n, errors = _hits(store, "llm_spans", "status = 'ERROR'", clause, params)
            return proportion_side(errors, n, alpha, t_star)
        if metric in MEAN_COLUMNS:
            clause, params = _spans(filters)
            n, mean, variance, smallest, largest = _mean(
                store, "llm_spans", MEAN_COLUMNS[metric], clause, params
            )
            return mean_side(n, mean, variance, alpha, t_star, smallest=smallest, largest=largest)
        if evaluator is None:
            raise StoreError(f"{metric} needs an evaluator")
        clause, params = _annotations(filters, evaluator)
        if metric == "score_mean":
            n, mean, variance, smallest, largest = _mean(
                store, "span_annotations", "score", clause, params
            )
            return mean_side(n, mean, variance, alpha, t_star, smallest=smallest, largest=largest)
        if label is None:
            raise StoreError("label_share needs a label")
        # The share among the evaluator's labelled annotations, as the evaluations page shows.
        params["monitor_label"] = label
        clause += " AND label IS NOT NULL"
        n, hits = _hits(store, "span_annotations", "label = {monitor_label:String}", clause, params)
        return proportion_side(hits, n, alpha, t_star)
