"""The queries the pages need beside store/analytics.py: evaluation rows, trace export, shapes.

Same rules as store/analytics.py, whose filter and paging helpers these reuse: rows are read
with FINAL, deleted annotations never count, a page never holds more than MAX_PAGE_ROWS rows,
and an export streams from the engine in batches.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from store import slices
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
    _source,
    _where,
    count_parts,
    sorted_page,
    traces_sql,
)
from store.facts import FactStore
from store.slices import quantile_list as _quantiles

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
    total: int | None = None,
) -> Page:
    """Return one page of the filtered spans' evaluations, sorted in the engine.

    `total`, when the caller knows it (a cached count), saves counting again.
    """
    offset, limit = _page_bounds(offset, limit)
    where, params = _where(filters, ANNOTATIONS)
    order = _order(sort, descending, EVALUATION_SORTS, "annotation_id")
    select = f"""
        SELECT {", ".join(EVALUATION_COLUMNS)} FROM span_annotations FINAL
        WHERE {where} AND is_deleted = 0
    """  # noqa: S608
    result = sorted_page(
        store,
        "span_annotations",
        "span_start_time",
        select,
        params,
        filters,
        sort,
        descending,
        order,
        (offset, limit),
    )
    if total is None:
        total = evaluation_count(store, filters)
    return Page(result.columns, result.rows, total, offset, limit)


@_releasing
def evaluation_count(store: FactStore, filters: Filters) -> int:
    """Count the filtered spans' evaluations (slices stand for the closed days they cover)."""
    return count_parts(store, slices.ANNOTATION_KIND, filters, "annotations_part")


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
    # A read of no rows still answers one row, its min 0: only parts with calls count.
    source, source_params = _source(store, slices.SPAN_KIND, filters, ())
    low, high, calls = store.transport.query(
        f"""
        SELECT minIf(latency_min_part, n_part > 0), maxIf(latency_max_part, n_part > 0),
            sum(n_part)
        FROM ({source})
        """,  # noqa: S608
        source_params,
    ).rows[0]
    if not calls:
        return Histogram((), ())
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
    """Per evaluator and (prompt, version): exact min, quartiles and max of the scores.

    One evaluator at a time: an exact quantile holds every score it ranks, so the engine then
    holds one evaluator's scores at once rather than all of them (at 10M spans with two
    evaluators, 200 MB above its base for both at once; half that one at a time), and gives
    the memory back between them.
    """
    keys = ("name", "prompt_id", "prompt_version")
    spreads = []
    for name in _evaluator_names(store, filters):
        source, params = _source(
            store, slices.ANNOTATION_KIND, filters, keys, extra="name = {spread_name:String}"
        )
        params["spread_name"] = name
        rows = store.transport.query(
            f"""
            SELECT name, prompt_id, prompt_version, sum(scored_part) AS scored,
                quantilesExactInclusiveMerge({_quantiles(slices.SCORE_QUANTILES)})(scores_part)
                    AS q
            FROM ({source})
            GROUP BY name, prompt_id, prompt_version
            HAVING scored > 0
            ORDER BY name, prompt_id, prompt_version
            """,  # noqa: S608
            params,
        ).rows
        spreads += [
            ScoreSpread(name, prompt_id, version, int(n), *(float(v) for v in q))
            for name, prompt_id, version, n, q in rows
        ]
        store.transport.release_memory()
    return spreads


def _evaluator_names(store: FactStore, filters: Filters) -> list[str]:
    """Return the names of the evaluators with scores under the filters, in order."""
    source, params = _source(store, slices.ANNOTATION_KIND, filters, ("name",))
    rows = store.transport.query(
        f"SELECT name FROM ({source}) GROUP BY name HAVING sum(scored_part) > 0 ORDER BY name",  # noqa: S608
        params,
    ).rows
    return [str(row[0]) for row in rows]
