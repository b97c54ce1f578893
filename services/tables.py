"""Every data table, defined once: its columns and formats, its page query and its full export.

A page's grid and the table's CSV export both read the entry, so they cannot disagree: the same
columns in the same order, each value made by the same row function. On screen the grid
formats by the column's format (assets/dashAgGridFunctions.js); the CSV keeps full precision,
ISO 8601 times with their offset, empty cells for unknown values, and "yes"/"no" booleans.

Large tables (LLM calls, traces, evaluations) page in the engine, never more than a page per
request; small ones (one row per version, per prompt or per metric) come whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from services.analytics import cached
from services.prompt_filters import PromptNames
from store import analytics as store_analytics
from store import views
from store.analytics import BreakdownRow, EvaluatorScore, Filters, Page, VersionKey
from store.facts import FactStore

Format = Literal["count", "percent", "ms", "usd", "text", "time", "yes-no", "number"]
Record = dict[str, Any]
PAGE_ROWS = 100  # the grid's block: rows per request


class TableError(ValueError):
    """A table request names no table, or lacks what the table needs; the message says what."""


@dataclass(frozen=True)
class Column:
    """One column: its id (the CSV header), what the grid's header says, and how to show it."""

    id: str
    header: str
    format: Format
    # The store's sort key for this column, where the engine can sort a paged table by it.
    sort: str | None = None


@dataclass(frozen=True)
class Context:
    """What a table's query needs: the store, the filters, prompt names, and extra arguments."""

    store: FactStore
    filters: Filters
    names: PromptNames
    args: Mapping[str, str] = field(default_factory=dict)
    # The sync's watermark when known: a paged table's total is then counted once per
    # (filters, watermark) and shared with the page's title (table_total).
    mark: int | None = None


@dataclass(frozen=True)
class PageRequest:
    """Which rows of a paged table a grid asks for, and in which order."""

    offset: int = 0
    limit: int = PAGE_ROWS
    sort: str | None = None  # a column id
    descending: bool = True


@dataclass(frozen=True)
class TablePage:
    """Rows of a table, each a tuple in column order, and how many rows there are in all."""

    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    total: int


Export = tuple[tuple[Column, ...], Iterable[Sequence[Any]]]


@dataclass(frozen=True)
class Table:
    """A table of the registry: name, title, columns, page query and full-export iterator."""

    name: str
    title: str
    columns: tuple[Column, ...]
    export: Callable[[Context], Export]
    page: Callable[[Context, PageRequest], TablePage] | None = None  # None: shown whole
    row_id: str | None = None  # a JS expression of `params.data` naming a row

    @property
    def paged(self) -> bool:
        """Tell whether the grid pages this table on the server."""
        return self.page is not None

    def view(self, context: Context, request: PageRequest | None = None) -> TablePage:
        """Return what the grid shows: one page of a paged table, or a small table whole."""
        if self.page is not None:
            return self.page(context, request or PageRequest())
        columns, rows = self.export(context)
        materialised = [tuple(row) for row in rows]
        return TablePage(columns, materialised, len(materialised))


def _col(column_id: str, fmt: Format, sort: str | None = None, header: str | None = None) -> Column:
    """Build a column whose header is its id in words unless given."""
    return Column(column_id, header or column_id.replace("_", " "), fmt, sort)


def phoenix_columns(ids: Iterable[str]) -> tuple[Column, ...]:
    """Describe the columns of a small table read from Phoenix (experiments), shown as is."""
    return tuple(_col(str(i), "text") for i in ids)


# Row shaping: the same function shapes a page's rows and an export's --------------------------


def _prompt(names: PromptNames, prompt_id: str | None, template_hash: str | None = None) -> Any:
    """Name a row's prompt, None when it has none or is unknown to our database."""
    return names.name(prompt_id, template_hash)


def _shaper(
    columns: tuple[Column, ...], names: PromptNames
) -> Callable[[Sequence[str], Sequence[Any]], tuple[Any, ...]]:
    """Return a function from a store row (with its column names) to a row in column order."""

    def shape(store_columns: Sequence[str], row: Sequence[Any]) -> tuple[Any, ...]:
        values = dict(zip(store_columns, row, strict=True))
        values["prompt"] = _prompt(names, values.get("prompt_id"), values.get("template_hash"))
        if "span_start_time" in values:
            values["start_time"] = values["span_start_time"]
        return tuple(values.get(c.id) for c in columns)

    return shape


def _paged(
    name: str,
    columns: tuple[Column, ...],
    query: Callable[..., Page],
    default_sort: str,
) -> Callable[[Context, PageRequest], TablePage]:
    """Build a page function over one of the store's paged queries."""
    sorts = {c.id: c.sort for c in columns if c.sort}

    def page(context: Context, request: PageRequest) -> TablePage:
        sort = sorts.get(request.sort or "", default_sort)
        total = table_total(name, context) if context.mark is not None else None
        result = query(
            context.store,
            context.filters,
            sort=sort,
            descending=request.descending,
            offset=request.offset,
            limit=request.limit,
            total=total,
        )
        shape = _shaper(columns, context.names)
        return TablePage(columns, [shape(result.columns, r) for r in result.rows], result.total)

    return page


def _streamed(
    columns: tuple[Column, ...],
    iterate: Callable[[FactStore, Filters], Iterator[tuple[tuple[str, ...], list[Any]]]],
) -> Callable[[Context], Export]:
    """Build an export over one of the store's streaming iterators."""

    def export(context: Context) -> Export:
        shape = _shaper(columns, context.names)

        def rows() -> Iterator[tuple[Any, ...]]:
            for store_columns, batch in iterate(context.store, context.filters):
                for row in batch:
                    yield shape(store_columns, row)

        return columns, rows()

    return export


# LLM calls, traces, evaluations: paged --------------------------------------------------------

LLM_CALL_COLUMNS = (
    _col("span_id", "text"),
    _col("trace_id", "text"),
    _col("project", "text"),
    _col("prompt", "text"),
    _col("prompt_version", "text"),
    _col("model", "text", "model"),
    _col("start_time", "time", "start_time"),
    _col("latency_ms", "ms", "latency_ms", "latency"),
    _col("prompt_tokens", "count"),
    _col("completion_tokens", "count"),
    _col("total_tokens", "count", "total_tokens"),
    _col("status", "text", "status"),
    _col("cost", "usd", "cost"),
)
TRACE_COLUMNS = (
    _col("trace_id", "text"),
    _col("project", "text"),
    _col("prompt", "text"),
    _col("prompt_version", "text"),
    _col("model", "text"),
    _col("start_time", "time", "start_time"),
    _col("llm_calls", "count", "llm_calls", "LLM calls"),
    _col("latency_ms", "ms", "latency_ms", "latency"),
    _col("total_tokens", "count", "total_tokens"),
    _col("tokens_unknown", "count", None, "calls without tokens"),
    _col("status", "text"),
)
EVALUATION_COLUMNS = (
    _col("span_id", "text"),
    _col("prompt", "text"),
    _col("prompt_version", "text", "prompt_version"),
    _col("name", "text", "name", "evaluator"),
    _col("annotator_kind", "text"),
    _col("label", "text", "label"),
    _col("score", "number", "score"),
    _col("start_time", "time", "span_start_time"),
    _col("annotation_id", "text"),
)


# Versions, top prompts, comparison: small, shown whole ----------------------------------------


def _aggregate(values: Iterable[Any]) -> tuple[Any, ...]:
    """Round an aggregate row's floats to 15 significant digits (what a double guarantees).

    The engine adds floats in whatever order its threads finish, so the 16th and 17th digits
    of a sum or mean differ from run to run and replica to replica; 15 are the same every time.
    """
    return tuple(float(f"{v:.15g}") if isinstance(v, float) else v for v in values)


def _score_columns(scores: Iterable[Iterable[EvaluatorScore]]) -> tuple[Column, ...]:
    """One column per evaluator, in name order: a mean is never taken across scales."""
    found = sorted({s.name for group in scores for s in group})
    return tuple(Column(f"mean_{name}", f"mean {name}", "number") for name in found)


def _score_values(columns: tuple[Column, ...], scores: Iterable[EvaluatorScore]) -> list[Any]:
    """Return a row's means in the order of its evaluator columns."""
    by_name = {f"mean_{s.name}": s.mean for s in scores}
    return [by_name.get(c.id) for c in columns]


VERSION_COLUMNS = (
    _col("prompt", "text"),
    _col("prompt_version", "text"),
    _col("count", "count", None, "calls"),
    _col("error_rate", "percent"),
    _col("p50_ms", "ms", None, "p50 latency"),
    _col("p95_ms", "ms", None, "p95 latency"),
    _col("p99_ms", "ms", None, "p99 latency"),
    _col("tokens", "count"),
    _col("tokens_unknown", "count", None, "calls without tokens"),
    _col("cost", "usd"),
    _col("cost_unknown", "count", None, "calls without cost"),
)


def version_rows(context: Context) -> Export:
    """Every (prompt, version) of the filtered calls with its metrics and evaluator means."""
    rows = store_analytics.breakdown(context.store, context.filters, "version")
    return version_table(rows, context.names)


def version_table(rows: Sequence[BreakdownRow], names: PromptNames) -> Export:
    """Shape a breakdown by version as the versions table (for a page that already has it)."""
    scores = _score_columns(r.scores for r in rows)
    out = []
    for row in rows:
        m = row.metrics
        out.append(
            _aggregate(
                (
                    names.name(row.key.prompt_id, row.key.template_hash),
                    row.key.prompt_version,
                    m.count,
                    m.error_rate,
                    m.p50_ms,
                    m.p95_ms,
                    m.p99_ms,
                    m.tokens,
                    m.tokens_unknown,
                    m.cost,
                    m.cost_unknown,
                    *_score_values(scores, row.scores),
                )
            )
        )
    return VERSION_COLUMNS + scores, out


TOP_PROMPT_COLUMNS = (
    _col("prompt", "text"),
    _col("calls", "count"),
    _col("error_rate", "percent"),
    _col("p95_ms", "ms", None, "p95 latency"),
    _col("cost", "usd"),
)


def top_prompt_rows(context: Context) -> Export:
    """Every prompt with traffic under the filters, busiest first, versions merged."""
    ranks = store_analytics.top_prompts(
        context.store, context.filters, dict(context.names.by_id), limit=None
    )
    scores = _score_columns(r.scores for r in ranks)
    rows = [
        _aggregate(
            (
                r.prompt,
                r.metrics.count,
                r.metrics.error_rate,
                r.metrics.p95_ms,
                r.metrics.cost,
                *_score_values(scores, r.scores),
            )
        )
        for r in ranks
    ]
    return TOP_PROMPT_COLUMNS + scores, rows


COMPARISON_COLUMNS = (
    _col("metric", "text"),
    _col("a", "number"),
    _col("b", "number"),
    _col("delta", "number"),
    _col("ci_low", "number", None, "95% low"),
    _col("ci_high", "number", None, "95% high"),
    _col("significant", "yes-no"),
    _col("method", "text"),
    _col("n_a", "count", None, "calls A"),
    _col("n_b", "count", None, "calls B"),
)


def version_key(value: str) -> VersionKey:
    """Read a compared side: "<prompt id>:<version>", or a bare version of any prompt."""
    prompt_id, colon, version = value.partition(":")
    if not colon:
        return VersionKey(prompt_version=value)
    return VersionKey(prompt_version=version, prompt_id=prompt_id or None)


def version_value(prompt_id: str | None, version: str | None) -> str:
    """Write a compared side as version_key reads it."""
    return f"{prompt_id or ''}:{version or ''}"


def comparison_rows(context: Context) -> Export:
    """Version B minus version A per metric, with each interval's method and sample bound."""
    side_a, side_b = context.args.get("a", ""), context.args.get("b", "")
    if not side_a or not side_b:
        raise TableError("A comparison export needs the versions a=… and b=….")
    deltas = store_analytics.compare_versions(
        context.store, context.filters, version_key(side_a), version_key(side_b), seed=0
    )
    rows = [
        (d.metric, d.a, d.b, d.delta, d.ci_low, d.ci_high, d.significant, d.method, d.n_a, d.n_b)
        for d in deltas
    ]
    return COMPARISON_COLUMNS, rows


TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        Table(
            "llm-calls",
            "LLM calls",
            LLM_CALL_COLUMNS,
            _streamed(LLM_CALL_COLUMNS, store_analytics.iter_spans),
            _paged("llm-calls", LLM_CALL_COLUMNS, store_analytics.spans_page, "start_time"),
            "params.data.span_id",
        ),
        Table(
            "traces",
            "traces",
            TRACE_COLUMNS,
            _streamed(TRACE_COLUMNS, views.iter_traces),
            _paged("traces", TRACE_COLUMNS, store_analytics.traces_page, "start_time"),
            "params.data.trace_id",
        ),
        Table(
            "evaluations",
            "evaluations",
            EVALUATION_COLUMNS,
            _streamed(EVALUATION_COLUMNS, views.iter_evaluations),
            _paged("evaluations", EVALUATION_COLUMNS, views.evaluations_page, "span_start_time"),
            "params.data.span_id + ':' + params.data.annotation_id",
        ),
        Table("versions", "Prompt versions", VERSION_COLUMNS, version_rows),
        Table("top-prompts", "Top prompts", TOP_PROMPT_COLUMNS, top_prompt_rows),
        Table("comparison", "Comparison", COMPARISON_COLUMNS, comparison_rows),
    )
}


# How each paged table counts its rows, without reading any.
COUNTS: dict[str, Callable[[FactStore, Filters], int]] = {
    "llm-calls": store_analytics.span_count,
    "traces": store_analytics.trace_count,
    "evaluations": views.evaluation_count,
}


def table_total(name: str, context: Context) -> int:
    """Count a paged table's rows, once per (filters, watermark) when the watermark is known.

    The page's title and the grid's row count share this: at 10M spans a trace count takes
    0.3-0.4 s, which a page load paid twice.
    """
    count = COUNTS[name]
    if context.mark is None:
        return count(context.store, context.filters)
    return cached(
        f"total:{name}",
        context.filters,
        context.mark,
        lambda: count(context.store, context.filters),
    )


def table(name: str) -> Table:
    """Return the registry's table of that name."""
    try:
        return TABLES[name]
    except KeyError:
        raise TableError(f"No table {name!r}; use one of: {', '.join(TABLES)}.") from None


# Values: for the grid (JSON) and for the CSV ---------------------------------------------------


def _missing(value: Any) -> bool:
    """Tell whether a value is unknown: None, or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _iso(value: datetime) -> str:
    """Render a time as ISO 8601 with its offset; a naive time is UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def json_value(value: Any) -> Any:
    """Return a cell as the grid receives it: times as ISO text, unknown as null."""
    if _missing(value):
        return None
    if isinstance(value, datetime):
        return _iso(value)
    return value


def csv_value(value: Any, column: Column) -> Any:
    """Return a cell as the CSV holds it: full precision, ISO times, "yes"/"no", "" if unknown."""
    if _missing(value):
        return ""
    if column.format == "yes-no":
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return _iso(value)
    return value


def records(page: TablePage) -> list[Record]:
    """Turn a page's rows into the grid's row objects."""
    ids = [c.id for c in page.columns]
    return [{i: json_value(v) for i, v in zip(ids, row, strict=True)} for row in page.rows]
