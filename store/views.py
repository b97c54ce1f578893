"""The queries the pages need beside store/analytics.py: evaluation rows, trace export, shapes.

Same rules as store/analytics.py, whose filter and paging helpers these reuse: rows are read
with FINAL, deleted annotations never count, a page never holds more than MAX_PAGE_ROWS rows,
and an export streams from the engine in batches.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from store.analytics import (
    ANNOTATIONS,
    EXPORT_BATCH_ROWS,
    SPILL_SETTINGS,
    Filters,
    Page,
    _finite,
    _order,
    _page_bounds,
    _releasing,
    _where,
    traces_sql,
)
from store.facts import FactStore

EVALUATION_COLUMNS = (
    "annotation_id",
    "span_id",
    "trace_id",
    "prompt_id",
    "prompt_version",
    "name",
    "annotator_kind",
    "label",
    "score",
    "span_start_time",
)
EVALUATION_SORTS = frozenset({"span_start_time", "score", "name", "label", "prompt_version"})
TRACE_EXPORT_COLUMNS = (
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
HISTOGRAM_BINS = 40


@_releasing
def evaluations_page(
    store: FactStore,
    filters: Filters,
    *,
    sort: str = "span_start_time",
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
) -> Page:
    """Return one page of the filtered spans' evaluations, sorted in the engine."""
    offset, limit = _page_bounds(offset, limit)
    where, params = _where(filters, ANNOTATIONS)
    order = _order(sort, descending, EVALUATION_SORTS, "annotation_id")
    result = store.transport.query(
        f"""
        SELECT {", ".join(EVALUATION_COLUMNS)} FROM span_annotations FINAL
        WHERE {where} AND is_deleted = 0
        ORDER BY {order} LIMIT {limit} OFFSET {offset}
        """,  # noqa: S608
        params,
    )
    total = store.transport.query(
        f"SELECT count() FROM span_annotations FINAL WHERE {where} AND is_deleted = 0",  # noqa: S608
        params,
    )
    return Page(result.columns, result.rows, int(total.rows[0][0]), offset, limit)


def _stream(
    store: FactStore, sql: str, params: dict[str, Any], batch_rows: int
) -> Generator[tuple[tuple[str, ...], list[tuple[Any, ...]]], None, None]:
    """Yield (columns, rows) batches of a query, releasing the engine's memory at the end."""
    stream = store.transport.stream(sql, params, batch_rows)
    with store.releasing():
        try:
            for batch in stream:
                yield batch.columns, batch.rows
        finally:
            stream.close()


def iter_evaluations(
    store: FactStore, filters: Filters, batch_rows: int = EXPORT_BATCH_ROWS
) -> Generator[tuple[tuple[str, ...], list[tuple[Any, ...]]], None, None]:
    """Yield (columns, rows) batches of every filtered evaluation, in storage order."""
    where, params = _where(filters, ANNOTATIONS)
    sql = f"""
        SELECT {", ".join(EVALUATION_COLUMNS)} FROM span_annotations FINAL
        WHERE {where} AND is_deleted = 0
        SETTINGS max_threads = 1
    """  # noqa: S608
    return _stream(store, sql, params, batch_rows)


def iter_traces(
    store: FactStore, filters: Filters, batch_rows: int = EXPORT_BATCH_ROWS
) -> Generator[tuple[tuple[str, ...], list[tuple[Any, ...]]], None, None]:
    """Yield (columns, rows) batches of every filtered trace, as traces_page shapes them."""
    where, params = _where(filters)
    sql = f"{traces_sql(where)} {SPILL_SETTINGS}"
    return _stream(store, sql, params, batch_rows)


@dataclass(frozen=True)
class Histogram:
    """Equal-width bins of a measure: bin i covers [edges[i], edges[i + 1])."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@_releasing
def latency_histogram(store: FactStore, filters: Filters, bins: int = HISTOGRAM_BINS) -> Histogram:
    """Count the filtered LLM calls per latency bin, the bins spanning min to max."""
    where, params = _where(filters)
    low, high = store.transport.query(
        f"SELECT min(latency_ms), max(latency_ms) FROM llm_spans WHERE {where}",  # noqa: S608
        params,
    ).rows[0]
    low, high = _finite(low), _finite(high)
    if low is None or high is None:
        return Histogram((), ())
    width = (high - low) / bins or 1.0
    rows = store.transport.query(
        f"""
        SELECT least(toUInt32(floor((latency_ms - {{low:Float64}}) / {{width:Float64}})),
                     {int(bins) - 1}) AS bin, count() AS n
        FROM llm_spans FINAL WHERE {where}
        GROUP BY bin ORDER BY bin
        """,  # noqa: S608
        {**params, "low": low, "width": width},
    ).rows
    counts = [0] * bins
    for index, n in rows:
        counts[int(index)] = int(n)
    return Histogram(tuple(low + i * width for i in range(bins + 1)), tuple(counts))


@dataclass(frozen=True)
class ScoreSpread:
    """The five-number summary of one evaluator's scores on one (prompt, version)."""

    name: str
    prompt_id: str | None
    prompt_version: str | None
    scored: int
    minimum: float
    q1: float
    median: float
    q3: float
    maximum: float


@_releasing
def score_spreads(store: FactStore, filters: Filters) -> list[ScoreSpread]:
    """Per evaluator and (prompt, version): exact min, quartiles and max of the scores."""
    where, params = _where(filters, ANNOTATIONS)
    rows = store.transport.query(
        f"""
        SELECT name, prompt_id, prompt_version, count() AS scored,
            quantilesExactInclusive(0, 0.25, 0.5, 0.75, 1)(score) AS q
        FROM span_annotations FINAL
        WHERE {where} AND is_deleted = 0 AND score IS NOT NULL
        GROUP BY name, prompt_id, prompt_version
        ORDER BY name, prompt_id, prompt_version
        """,  # noqa: S608
        params,
    ).rows
    return [
        ScoreSpread(name, prompt_id, version, int(n), *(float(v) for v in q))
        for name, prompt_id, version, n, q in rows
    ]
