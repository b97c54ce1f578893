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
from operator import methodcaller
from typing import Any, Literal

from services.analytics import cached
from services.evaluators import ranked
from services.prompt_filters import PromptNames
from store import analytics as store_analytics
from store import views
from store.analytics import (
    BreakdownRow,
    EvaluatorScore,
    Filters,
    Page,
    ScoreSummary,
    VersionKey,
)
from store.facts import FactStore

# "unit" shows a value in its row's `unit` column, "unit-delta" a difference in it (the
# comparison table has a metric a row); assets/dashAgGridFunctions.js reads them.
Format = Literal[
    "count",
    "percent",
    "ms",
    "usd",
    "score",
    "text",
    "time",
    "yes-no",
    "number",
    "unit",
    "unit-delta",
]
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
        if "prompt_version" in values:
            # Rows name their template group: show the label it goes by (an admin may relabel).
            values["prompt_version"] = names.label(
                values.get("prompt_id"), values["prompt_version"]
            )
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


MAX_LABELS = 5  # share columns per label-only evaluator: its most frequent labels


@dataclass(frozen=True)
class _Evaluations:
    """One row's evaluations: scores by evaluator, and label counts by evaluator and label."""

    scores: Mapping[str, EvaluatorScore]
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def mean(self, name: str) -> float | None:
        """Return the evaluator's mean score here, None where it scored nothing."""
        score = self.scores.get(name)
        return score.mean if score else None

    def scored(self, name: str) -> int:
        """Count the evaluator's scored annotations here."""
        score = self.scores.get(name)
        return score.scored if score else 0

    def labelled(self, name: str) -> int:
        """Count the evaluator's labelled annotations here."""
        return sum(self.labels.get(name, {}).values())

    def share(self, name: str, label: str) -> float | None:
        """Return a label's share of the evaluator's labels here; None where it gave none."""
        total = self.labelled(name)
        return self.labels[name].get(label, 0) / total if total else None


EvaluatorColumn = tuple[Column, Callable[[_Evaluations], Any]]


def _evaluator_columns(rows: Sequence[_Evaluations]) -> list[EvaluatorColumn]:
    """Per evaluator, in name order: its mean and n; a label-only one its label shares too.

    A mean is never taken across evaluators: each has its own scale. n counts the scored
    annotations behind the mean. An evaluator that gave labels and no scores (a human review,
    say) gets its labelled count and the share of each of its MAX_LABELS most frequent labels.
    """
    scored: dict[str, int] = {}
    labels: dict[str, dict[str, int]] = {}
    for row in rows:
        for score in row.scores.values():
            scored[score.name] = scored.get(score.name, 0) + score.scored
        for name, counts in row.labels.items():
            into = labels.setdefault(name, {})
            for label, n in counts.items():
                into[label] = into.get(label, 0) + n
    found: list[EvaluatorColumn] = []
    for name in sorted(scored):
        found += [
            (Column(f"mean_{name}", f"mean {name}", "score"), methodcaller("mean", name)),
            (Column(f"n_{name}", f"n {name}", "count"), methodcaller("scored", name)),
        ]
        if scored[name] or not labels.get(name):
            continue
        found.append(
            (
                Column(f"labelled_{name}", f"{name}: labelled", "count"),
                methodcaller("labelled", name),
            )
        )
        for label, _count in ranked(labels[name])[:MAX_LABELS]:
            found.append(
                (
                    Column(f"share_{name}_{label}", f"{name}: {label}", "percent"),
                    methodcaller("share", name, label),
                )
            )
    # Ids are the grid's fields and the CSV's header: two alike (evaluator "a_b" with label
    # "c" beside "a" with "b_c") would overwrite each other, so the later one goes.
    seen: set[str] = set()
    unique = []
    for column, value in found:
        if column.id not in seen:
            seen.add(column.id)
            unique.append((column, value))
    return unique


def _label_only_names(groups: Iterable[Iterable[EvaluatorScore]]) -> set[str]:
    """Name the evaluators with annotations and no score in any group."""
    scored: dict[str, int] = {}
    annotations: dict[str, int] = {}
    for group in groups:
        for s in group:
            scored[s.name] = scored.get(s.name, 0) + s.scored
            annotations[s.name] = annotations.get(s.name, 0) + s.annotations
    return {name for name, n in scored.items() if not n and annotations[name]}


def _labels_by_version(
    summaries: Iterable[ScoreSummary],
) -> dict[tuple[str | None, str | None], dict[str, dict[str, int]]]:
    """Index the label counts of score summaries by (prompt id, version), then evaluator."""
    found: dict[tuple[str | None, str | None], dict[str, dict[str, int]]] = {}
    for summary in summaries:
        key = (summary.key.prompt_id, summary.key.prompt_version)
        found.setdefault(key, {})[summary.name] = {s.label: s.count for s in summary.labels}
    return found


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
    summaries = (
        store_analytics.score_summary(context.store, context.filters)
        if _label_only_names(r.scores for r in rows)
        else []
    )
    return version_table(rows, context.names, summaries)


def version_table(
    rows: Sequence[BreakdownRow],
    names: PromptNames,
    summaries: Sequence[ScoreSummary] = (),
) -> Export:
    """Shape a breakdown by version as the versions table (for a page that already has it).

    `summaries` (store_analytics.score_summary of the same filters) give label-only
    evaluators their label share columns; without them those evaluators show their n only.
    """
    labels = _labels_by_version(summaries)
    only = _label_only_names(r.scores for r in rows)
    evaluations = [
        _Evaluations(
            {s.name: s for s in row.scores},
            {
                name: counts
                for name, counts in labels.get(
                    (row.key.prompt_id, row.key.prompt_version), {}
                ).items()
                if name in only
            },
        )
        for row in rows
    ]
    extra = _evaluator_columns(evaluations)
    out = []
    for row, evaluated in zip(rows, evaluations, strict=True):
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
                    *(value(evaluated) for _column, value in extra),
                )
            )
        )
    return VERSION_COLUMNS + tuple(c for c, _value in extra), out


TOP_PROMPT_COLUMNS = (
    _col("prompt", "text"),
    _col("calls", "count"),
    _col("error_rate", "percent"),
    _col("p95_ms", "ms", None, "p95 latency"),
    _col("cost", "usd"),
    _col("cost_unknown", "count", None, "calls without cost"),
)


def top_prompt_rows(context: Context) -> Export:
    """Every prompt with traffic under the filters, busiest first, versions merged."""
    ranks = store_analytics.top_prompts(
        context.store, context.filters, dict(context.names.by_id), limit=None
    )
    evaluations = [_Evaluations({s.name: s for s in r.scores}) for r in ranks]
    extra = _evaluator_columns(evaluations)
    rows = [
        _aggregate(
            (
                r.prompt,
                r.metrics.count,
                r.metrics.error_rate,
                r.metrics.p95_ms,
                r.metrics.cost,
                r.metrics.cost_unknown,
                *(value(evaluated) for _column, value in extra),
            )
        )
        for r, evaluated in zip(ranks, evaluations, strict=True)
    ]
    return TOP_PROMPT_COLUMNS + tuple(c for c, _value in extra), rows


COMPARISON_COLUMNS = (
    _col("metric", "text"),
    _col("a", "unit"),
    _col("b", "unit"),
    _col("delta", "unit-delta"),
    _col("ci_low", "unit-delta", None, "95% low"),
    _col("ci_high", "unit-delta", None, "95% high"),
    _col("significant", "yes-no"),
    _col("method", "text"),
    _col("n_a", "count", None, "calls A"),
    _col("n_b", "count", None, "calls B"),
    # What a, b and the intervals are in (a Format): the grid shows them in it
    # (a rate's delta in percentage points); the CSV keeps the raw numbers beside it.
    _col("unit", "text"),
)


def metric_unit(metric: str) -> Format:
    """Name the unit of a compared metric from its name, as store.compare_versions names it."""
    name = metric.lower()
    if name.startswith("mean "):
        return "score"
    if "rate" in name:
        return "percent"
    if "latency" in name or name.endswith("(ms)"):
        return "ms"
    if "cost" in name:
        return "usd"
    return "number"  # tokens per call, and anything new: a plain number


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
        (
            d.metric,
            d.a,
            d.b,
            d.delta,
            d.ci_low,
            d.ci_high,
            d.significant,
            d.method,
            d.n_a,
            d.n_b,
            metric_unit(d.metric),
        )
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
