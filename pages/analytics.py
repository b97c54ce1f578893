"""Analytics: KPIs, latency, tokens, cost and errors over time, and version against version."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    dcc,
    html,
    no_update,
)

from components.charts import (
    MIN_CALLS,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    clicked_href,
    create_bucket_figure,
    create_chart_slot,
    drill_href,
    min_calls_for_quantile,
)
from components.colors import group_color_key, group_order, prompt_catalogue, series_color
from components.filter_bar import (
    create_empty_notice,
    create_evaluator_picker,
    create_filtered_page_top,
    evaluator_picker_outputs,
)
from components.kpis import create_kpi_cards
from components.phoenix_pane import create_phoenix_pane
from components.table import create_data_table
from pages._shared import register_filter_callbacks, state_from_search
from services import analytics, evaluators, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from services.prompt_filters import PromptNames, prompt_label, version_labels
from services.status import phoenix_project_path
from services.user_settings import display_zone
from store import analytics as store_analytics
from store.analytics import (
    BOOTSTRAP_SAMPLES,
    COMPARE_SAMPLE_ROWS,
    Filters,
    GroupKey,
    Metrics,
    Split,
    VersionKey,
)
from store.facts import FactStore

dash.register_page(
    __name__,
    path="/analytics",
    name="Analytics",
    title="Analytics · Prompt Analytics",
    order=40,
    icon="bi-graph-up",
)
PAGE = "analytics"
SPLITS: dict[str, Split] = {"prompt_version": "version", "model": "model"}
VERSIONS = tables.table("versions")
COMPARISON = tables.table("comparison")
NO_MODEL = "(no model)"
# The latency chart shows one percentile at a time, kept in the URL as pct=.
PERCENTILES = ("p50", "p95", "p99")


def _percentile(value: object) -> str:
    """Read the latency percentile to show; anything else is the median."""
    return value if isinstance(value, str) and value in PERCENTILES else PERCENTILES[0]


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = prompt_filters.filter_options(db, fact_store(), state.prompt)
    graphs = [
        dbc.Col(create_chart_slot(f"{PAGE}-{name}"), lg=6)
        for name in ("latency", "tokens", "cost", "errors")
    ]
    return html.Div(
        [
            *create_filtered_page_top(
                PAGE,
                "Analytics",
                state,
                options,
                problems,
                services.settings.poll_interval_s,
                live_state(),
            ),
            create_evaluator_picker(PAGE, state.evaluator),
            dcc.Loading(html.Div(id=f"{PAGE}-kpis")),
            html.Div(
                [
                    dbc.RadioItems(
                        id=f"{PAGE}-split",
                        options=[
                            {"label": "by prompt version", "value": "prompt_version"},
                            {"label": "by model", "value": "model"},
                        ],
                        value="prompt_version",
                        inline=True,
                    ),
                    dbc.RadioItems(
                        id=f"{PAGE}-pct",
                        options=[{"label": f"latency {p}", "value": p} for p in PERCENTILES],
                        value=_percentile(query.get("pct")),
                        inline=True,
                    ),
                ],
                className="d-flex flex-wrap gap-4 mb-2",
            ),
            # A click on a bar or point opens the traces behind it (drill_to_traces).
            dcc.Location(id=f"{PAGE}-drill", refresh="callback-nav"),
            # assets/analytics.js keeps pct= in the URL beside the filter bar's parameters.
            dcc.Store(id=f"{PAGE}-pct-written"),
            dbc.Row(graphs, className="g-3 mb-3"),
            # Sized for the table it receives, so the pane below stays below the fold meanwhile.
            html.Div(id=f"{PAGE}-versions", style={"minHeight": "480px"}),
            dbc.Row(
                [
                    dbc.Col(_side_picker("a", query.get("a")), md=3),
                    dbc.Col(_side_picker("b", query.get("b")), md=3),
                ],
                className="g-2 mb-2",
            ),
            html.Div(id=f"{PAGE}-compare", className="mb-3"),
            # Filled by follow_project, so a slow Phoenix never holds up the page itself.
            html.Div(id=f"{PAGE}-pane"),
            dcc.Store(id=f"{PAGE}-pane-path"),
        ]
    )


def _side_picker(side: str, chosen: object) -> dcc.Dropdown:
    """Build a comparison side's picker, preset from the URL (a monitor's link sets a= and b=)."""
    value = chosen if isinstance(chosen, str) and _sane_side(chosen) else None
    # Until the redraw lists every version, the preset is its own option so it stays chosen.
    options = [{"label": value.partition(":")[2] or value, "value": value}] if value else []
    return dcc.Dropdown(
        id=f"{PAGE}-version-{side}",
        placeholder=f"Version {side.upper()}",
        value=value,
        options=options,
    )


def _sane_side(value: str) -> bool:
    """Accept a side as version_value writes it: short printable text."""
    return 0 < len(value) <= 400 and value.isprintable()


def _project_pane(project: str | None, path: str) -> Any:
    """Embed the filtered project's Phoenix page, below the fold until scrolled to."""
    title = f"Phoenix: {project}" if project and path != "/projects" else "Phoenix projects"
    return create_phoenix_pane(f"{PAGE}-phoenix", path, title)


register_filter_callbacks(PAGE, evaluator_picker=True)


@callback(
    Output(f"{PAGE}-kpis", "children"),
    Output(f"{PAGE}-latency", "figure"),
    Output(f"{PAGE}-tokens", "figure"),
    Output(f"{PAGE}-cost", "figure"),
    Output(f"{PAGE}-errors", "figure"),
    Output(f"{PAGE}-versions", "children"),
    Output(f"{PAGE}-version-a", "options"),
    Output(f"{PAGE}-version-b", "options"),
    Output(f"{PAGE}-filter-evaluator", "options"),
    Output(f"{PAGE}-filter-evaluator", "placeholder"),
    Output(f"{PAGE}-evaluator-message", "children"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-split", "value"),
    Input(f"{PAGE}-state", "data"),
    Input(f"{PAGE}-pct", "value"),
)
def redraw(
    _mark: int | None, split: str, search: str | None, pct: str | None = "p50"
) -> tuple[Any, ...]:
    """Compute and draw everything for the current filters, once per watermark and minute."""
    state = state_from_search(search)
    zone = display_zone(state)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        message = prompt_filters.unknown_filter_message(db, store, state)
        mark = analytics.watermark(db)
    # Every tab with the same filters shares one computation until new data arrives.
    drawn = analytics.cached(
        f"analytics-page:{split}:{zone}",
        filters,
        mark,
        lambda: _draw(store, state, filters, names, SPLITS.get(split, "version"), zone),
    )
    kpis, labels, latency, *outputs, empty = drawn
    # The evaluator is picked after the cache: switching it recomputes nothing.
    choice = evaluators.choose(kpis.scores, state.evaluator)
    cards = create_kpi_cards(PAGE, kpis, evaluators.view(kpis.scores, choice.name, labels))
    return (
        cards,
        latency[_percentile(pct)],
        *outputs,
        *evaluator_picker_outputs(PAGE, kpis.scores, state.evaluator),
        create_empty_notice(PAGE, message, empty, "LLM calls"),
    )


def _rows_query(state: FilterState) -> str:
    """Render the filters that pick rows as a URL query: all but the evaluator."""
    return dataclasses.replace(state, evaluator=None).query_string()


def _series_labels(keys: list[GroupKey], split: Split, names: PromptNames) -> dict[GroupKey, str]:
    """Name each series: "prompt · version" where prompts mix, or the model."""
    if split == "model":
        return {key: key.model or NO_MODEL for key in keys}
    return version_labels(keys, names)


def _window_buckets(
    store: FactStore, filters: Filters, zone: str
) -> tuple[timedelta | None, list[datetime]]:
    """Choose the bucket size from the window and the calls in it; list the window's edges."""
    window = store_analytics.chart_window(store, filters)
    if window is None:
        return None, []
    calls = store_analytics.span_count(store, filters)
    size = store_analytics.chart_bucket_size(*window, calls)
    return size, store_analytics.bucket_edges(*window, size, zone)


def _narrow(key: GroupKey, split: Split, names: PromptNames) -> dict[str, Any] | None:
    """Return the filters that pick exactly one series, or None if no URL can say so."""
    if split == "model":
        return {"model": key.model} if key.model else None
    prompt = names.name(key.prompt_id, key.template_hash)
    if prompt is None or key.prompt_version is None:
        return None  # "(no prompt)" or "(none)": the filter bar has no value for them
    return {"prompt": prompt, "versions": (key.prompt_version,)}


def _charts(
    store: FactStore,
    state: FilterState,
    filters: Filters,
    names: PromptNames,
    split: Split,
    zone: str,
) -> tuple[Any, ...]:
    """Query and draw the four bucketed charts; latency once per percentile."""
    size, edges = _window_buckets(store, filters, zone)
    result = store_analytics.redraw(store, filters, split, timezone=zone, size=size)
    points = result.series.points
    by_model = split == "model"
    keys = sorted({p.key for p in points}, key=lambda k: group_order(k, names, by_model))
    buckets = chart_buckets(edges, {p.bucket for p in points}, result.series.bucket_size, zone)
    # Trace counts only for windows small enough to count them quickly (TRACE_COUNT_MAX_CALLS);
    # above it tooltips give the calls alone.
    counted = bool(points) and result.kpis.metrics.count <= store_analytics.TRACE_COUNT_MAX_CALLS
    traces = (
        store_analytics.trace_counts(
            store, filters, split, result.series.bucket_size, timezone=zone
        )
        if counted
        else {}
    )
    labels = _series_labels(keys, split, names)
    catalogue = prompt_catalogue(names)
    hrefs: dict[tuple[GroupKey, datetime], str | None] = {}
    for p in points:
        narrow = _narrow(p.key, split, names)
        hrefs[(p.key, p.bucket)] = (
            drill_href(state, buckets, p.bucket, **narrow) if narrow is not None else None
        )

    def series(value: Callable[[Metrics], float | None], unknown: str = "") -> list[ChartSeries]:
        """Build a chart series per key, a cell per bucket that had calls."""
        cells: dict[GroupKey, dict[datetime, Cell]] = {k: {} for k in keys}
        for p in points:
            cells[p.key][p.bucket] = Cell(
                value(p.metrics),
                p.metrics.count,
                traces.get((p.bucket, _ident(p.key)), 0) if counted else None,
                getattr(p.metrics, unknown) if unknown else 0,
                hrefs[(p.key, p.bucket)],
            )
        made = []
        for key in keys:
            color_key = group_color_key(key, names, by_model)
            made.append(
                ChartSeries(
                    labels[key], series_color(color_key, catalogue), cells[key], key=color_key
                )
            )
        return made

    # A percentile from too few calls is grey too: a p95 of 12 calls is only their slowest.
    latency = {
        pct: create_bucket_figure(
            buckets,
            series(functools.partial(_latency, pct=pct)),
            f"Latency {pct}",
            "latency (ms)",
            Hover("ms"),
            min_calls=min_calls_for_quantile(int(pct[1:]) / 100),
        )
        for pct in PERCENTILES
    }
    tokens = create_bucket_figure(
        buckets,
        series(lambda m: m.tokens, "tokens_unknown"),
        "Tokens",
        "tokens",
        Hover("count", unknown_label="without tokens"),
        kind="bars",
    )
    cost = create_bucket_figure(
        buckets,
        series(lambda m: m.cost, "cost_unknown"),
        "Cost",
        "cost (USD)",
        Hover("usd", unknown_label="without cost"),
        kind="bars",
    )
    errors = create_bucket_figure(
        buckets,
        series(lambda m: m.error_rate),
        "Error rate",
        "error rate (% of calls)",
        Hover("percent"),
        min_calls=MIN_CALLS,
    )
    return result, latency, tokens, cost, errors


def _latency(metrics: Metrics, pct: str) -> float | None:
    """Read one latency percentile of a bucket's calls."""
    value: float | None = getattr(metrics, f"{pct}_ms")
    return value


def _ident(key: GroupKey) -> tuple[str | None, str | None, str | None]:
    """Identify a series as store_analytics.trace_counts keys it."""
    return key.prompt_id, key.prompt_version, key.model


def _draw(
    store: FactStore,
    state: FilterState,
    filters: Filters,
    names: PromptNames,
    split: Split,
    zone: str,
) -> tuple[Any, ...]:
    """Compute (one store redraw) and draw everything for these filters."""
    result, latency, tokens, cost, errors = _charts(store, state, filters, names, split, zone)
    by_version = (
        result.breakdown
        if split == "version"
        else tuple(store_analytics.breakdown(store, filters, "version"))
    )
    # Label shares only where an evaluator gave labels and no scores: one more read then.
    label_only = any(evaluators.is_label_only(s) for s in result.kpis.scores)
    summaries = store_analytics.score_summary(store, filters) if label_only else []
    columns, rows = tables.version_table(by_version, names, summaries)
    shaped = [tuple(r) for r in rows]
    table = create_data_table(
        f"{PAGE}-versions-table",
        columns,
        rows=tables.records(tables.TablePage(columns, shaped, len(shaped))),
        # Without the evaluator: it picks no rows, and this is cached for every evaluator.
        export_href=f"/api/export/{PAGE}/{VERSIONS.name}.csv{_rows_query(state)}",
        title=VERSIONS.title,
    )
    version_keys = [row.key for row in by_version]
    choices = version_labels(version_keys, names)
    options = [
        {"label": choices[k], "value": tables.version_value(k.prompt_id, k.prompt_version)}
        for k in version_keys
    ]
    return (
        result.kpis,
        evaluators.label_counts(summaries),
        latency,
        tokens,
        cost,
        errors,
        table,
        options,
        options,
        result.kpis.metrics.count == 0,
    )


@callback(
    Output(f"{PAGE}-pane", "children"),
    Output(f"{PAGE}-pane-path", "data"),
    Input(f"{PAGE}-state", "data"),
    State(f"{PAGE}-pane-path", "data"),
)
def follow_project(search: str | None, shown: str | None) -> tuple[Any, Any]:
    """Point the Phoenix pane at the filtered project; keep it when the project is unchanged."""
    if not get_services().settings.phoenix_enabled:
        return no_update, no_update
    project = state_from_search(search).project
    path = phoenix_project_path(project)
    if shown == path:
        return no_update, no_update
    return _project_pane(project, path), path


@callback(
    Output(f"{PAGE}-compare", "children"),
    Input(f"{PAGE}-version-a", "value"),
    Input(f"{PAGE}-version-b", "value"),
    Input(f"{PAGE}-state", "data"),
)
def compare(version_a: str | None, version_b: str | None, search: str | None) -> Any:
    """Show B minus A for each metric, with 95 % intervals and how each was made."""
    if not version_a or not version_b:
        return html.P("Pick two versions to compare them.", className="text-body-secondary")
    state = state_from_search(search)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        mark = analytics.watermark(db)
    context = tables.Context(store, filters, names, {"a": version_a, "b": version_b})
    page = analytics.cached(
        f"analytics-compare:{version_a}:{version_b}",
        filters,
        mark,
        lambda: COMPARISON.view(context),
    )
    side_a, side_b = tables.version_key(version_a), tables.version_key(version_b)
    label_a, label_b = (_side_label(side, names) for side in (side_a, side_b))
    methods = sorted({str(row[7]) for row in page.rows if row[7]})
    return html.Div(
        [
            create_data_table(
                f"{PAGE}-compare-table",
                page.columns,
                rows=tables.records(page),
                export_href=_comparison_href(state, version_a, version_b),
                title=f"{label_b} minus {label_a} (95 % interval)",
            ),
            html.Div(
                [
                    html.Span("How the intervals are made: ", className="fw-semibold"),
                    html.Span(
                        f"a, b and the delta are exact over every matching call; bootstrap "
                        f"intervals resample a sample of at most {COMPARE_SAMPLE_ROWS:,} rows "
                        f"per side ({BOOTSTRAP_SAMPLES:,} resamples). "
                    ),
                    html.Ul([html.Li(m) for m in methods], className="mb-0"),
                ],
                id=f"{PAGE}-compare-method",
                className="small text-body-secondary",
            ),
        ]
    )


def _side_label(side: VersionKey, names: PromptNames) -> str:
    """Name one compared side: "prompt · version", or the version of any prompt."""
    if side.prompt_id is None:
        return side.prompt_version
    return f"{prompt_label(GroupKey(prompt_id=side.prompt_id), names)} · {side.prompt_version}"


def _comparison_href(state: FilterState, version_a: str, version_b: str) -> str:
    query = state.query_string()
    extra = urlencode({"a": version_a, "b": version_b})
    return f"/api/export/{PAGE}/{COMPARISON.name}.csv{query}{'&' if query else '?'}{extra}"


clientside_callback(
    ClientsideFunction(namespace="analytics", function_name="percentileToUrl"),
    Output(f"{PAGE}-pct-written", "data"),
    Input(f"{PAGE}-pct", "value"),
    # After the filter bar rewrote the query (without pct=), put the percentile back.
    Input(f"{PAGE}-state", "data"),
    prevent_initial_call=True,
)


@callback(
    Output(f"{PAGE}-drill", "href"),
    *[Input(f"{PAGE}-{name}", "clickData") for name in ("latency", "tokens", "cost", "errors")],
    prevent_initial_call=True,
)
def drill_to_traces(*clicks: dict[str, Any] | None) -> Any:
    """Open the traces page for exactly the clicked bucket and series."""
    clicked = dash.ctx.triggered_id
    names = ("latency", "tokens", "cost", "errors")
    index = names.index(clicked.removeprefix(f"{PAGE}-")) if isinstance(clicked, str) else -1
    href = clicked_href(clicks[index]) if index >= 0 else None
    return href or no_update
