"""Traces: the traces behind the filters, their latency and volume, and each one in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html, no_update

from components.charts import (
    Buckets,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    clicked_href,
    create_bucket_figure,
    create_chart_slot,
    create_histogram,
    drill_href,
)
from components.colors import PALETTE
from components.filter_bar import create_empty_notice, create_filtered_page_top
from components.phoenix_pane import create_phoenix_pane, pane_widths
from components.table import create_data_table
from pages._shared import register_filter_callbacks, register_paged_grid, state_from_search
from services import analytics, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from services.user_settings import display_zone
from store import analytics as store_analytics
from store import views
from store.analytics import Filters
from store.facts import FactStore

dash.register_page(
    __name__,
    path="/traces",
    name="Traces",
    title="Traces · Prompt Analytics",
    order=10,
    icon="bi-list-nested",
)
PAGE = "traces"
GRID = f"{PAGE}-grid"
TABLE = tables.table("traces")


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = prompt_filters.filter_options(db, fact_store(), state.prompt)
    return html.Div(
        [
            *create_filtered_page_top(
                PAGE,
                "Traces",
                state,
                options,
                problems,
                services.settings.poll_interval_s,
                live_state(),
            ),
            dbc.Row(
                [
                    dbc.Col(create_chart_slot(f"{PAGE}-latency"), lg=6),
                    dbc.Col(create_chart_slot(f"{PAGE}-volume"), lg=6),
                ],
                className="g-3 mb-3",
            ),
            # A click on a volume bar opens the traces of that bucket (drill_to_bucket).
            dcc.Location(id=f"{PAGE}-drill", refresh="callback-nav"),
            dbc.Row(
                [
                    dbc.Col(
                        html.Div(
                            create_data_table(
                                GRID,
                                TABLE.columns,
                                export_href=_export_href(state),
                                title="…",
                                query=state.query_string(),
                                row_id=TABLE.row_id,
                            ),
                            id=f"{PAGE}-table",
                        ),
                        # Full width until a row opens in the pane; then they share the row.
                        lg=12,
                        id=f"{PAGE}-table-col",
                    ),
                    dbc.Col(
                        html.Div(id=f"{PAGE}-pane"),
                        lg=6,
                        id=f"{PAGE}-pane-col",
                        className="d-none",
                    ),
                ],
                className="g-3",
            ),
        ]
    )


def _export_href(state: FilterState) -> str:
    return f"/api/export/{PAGE}/{TABLE.name}.csv{state.query_string()}"


register_filter_callbacks(PAGE)
register_paged_grid(GRID, TABLE.name)


@callback(
    Output(f"{PAGE}-latency", "figure"),
    Output(f"{PAGE}-volume", "figure"),
    Output(f"{GRID}-title", "children"),
    Output(f"{GRID}-query", "data"),
    Output(f"{GRID}-export", "href"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(mark: int | None, search: str | None) -> tuple[Any, ...]:
    """Draw the histogram, the volume series and the table's count; the grid pages itself."""
    state = state_from_search(search)
    zone = display_zone(state)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        message = prompt_filters.unknown_filter_message(db, store, state)
        sync_mark = analytics.watermark(db)

    def draw() -> tuple[Any, ...]:
        # A count, not a page of one: grouping every trace only to read the total cost 12 s at
        # 10M spans (bench/page_bench.py); the grid asks for its own rows.
        context = tables.Context(store, filters, prompt_filters.PromptNames({}, {}), mark=sync_mark)
        total = tables.table_total("traces", context)
        return (
            create_histogram(
                views.latency_histogram(store, filters), "LLM call latency", "latency (ms)"
            ),
            _volume(store, state, filters, zone),
            total,
        )

    latency, volume, total = analytics.cached(f"{PAGE}-page:{zone}", filters, sync_mark, draw)
    query = state.query_string()
    return (
        latency,
        volume,
        f"{total:,} traces",
        # The mark too: new data must refill the grid even when the filters stayed.
        {"query": query, "mark": mark},
        _export_href(state),
        create_empty_notice(PAGE, message, total == 0, "traces"),
    )


def _volume(store: FactStore, state: FilterState, filters: Filters, zone: str) -> Any:
    """Draw the calls per bucket as bars, every bucket of the window, each a link to its traces."""
    window = store_analytics.chart_window(store, filters)
    if window is None:
        return create_bucket_figure(Buckets([], zone), [], "Volume", "LLM calls", Hover("count"))
    calls = store_analytics.span_count(store, filters)
    size = store_analytics.chart_bucket_size(*window, calls)
    series = store_analytics.time_series(store, filters, timezone=zone, size=size)
    edges = store_analytics.bucket_edges(*window, size, zone)
    buckets = chart_buckets(edges, {p.bucket for p in series.points}, size, zone)
    # Trace counts only where they are quick to count (TRACE_COUNT_MAX_CALLS); else calls alone.
    counted = calls <= store_analytics.TRACE_COUNT_MAX_CALLS
    traces = (
        store_analytics.trace_counts(store, filters, None, size, timezone=zone) if counted else {}
    )
    cells = {
        p.bucket: Cell(
            float(p.metrics.count),
            p.metrics.count,
            traces.get((p.bucket, (None, None, None)), 0) if counted else None,
            href=drill_href(state, buckets, p.bucket),
        )
        for p in series.points
    }
    volume = ChartSeries("LLM calls", PALETTE[0], cells)
    return create_bucket_figure(
        buckets, [volume], "Volume", "LLM calls", Hover("count"), kind="bars"
    )


@callback(
    Output(f"{PAGE}-drill", "href"),
    Input(f"{PAGE}-volume", "clickData"),
    prevent_initial_call=True,
)
def drill_to_bucket(click: dict[str, Any] | None) -> Any:
    """Narrow the page to exactly the clicked bucket."""
    return clicked_href(click) or no_update


def pane_layout(open_: bool) -> tuple[int, str]:
    """Return the table column's lg width and the pane column's class: shared only when open."""
    table_lg, _pane_lg, pane_class = pane_widths(open_)
    return table_lg, pane_class


@callback(
    Output(f"{PAGE}-pane", "children"),
    Output(f"{PAGE}-table-col", "lg"),
    Output(f"{PAGE}-pane-col", "className"),
    Input(f"{PAGE}-grid", "cellClicked"),
    prevent_initial_call=True,
)
def open_trace(clicked: dict[str, Any] | None) -> tuple[Any, int, str]:
    """Open the clicked trace in an embedded Phoenix pane beside the table (half width each)."""
    trace_id = (clicked or {}).get("rowId")
    if not trace_id or not get_services().settings.phoenix_enabled:
        return (None, *pane_layout(False))
    pane = create_phoenix_pane(
        f"{PAGE}-phoenix", f"/redirects/traces/{trace_id}", f"Trace {trace_id[:12]}…"
    )
    return (pane, *pane_layout(True))
