"""Traces: the traces behind the filters, their latency and volume, and each one in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from components.charts import create_chart_slot, create_histogram, create_series_figure
from components.filter_bar import create_empty_notice, create_filtered_page_top
from components.phoenix_pane import create_phoenix_pane
from components.table import create_data_table
from pages._shared import register_filter_callbacks, register_paged_grid, state_from_search
from services import analytics, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from store import analytics as store_analytics
from store import views

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
                        id=f"{PAGE}-table-col",
                    ),
                    dbc.Col(html.Div(id=f"{PAGE}-pane"), lg=6, id=f"{PAGE}-pane-col"),
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
        volume = store_analytics.time_series(store, filters)
        points = [("LLM calls", p.bucket, float(p.metrics.count)) for p in volume.points]
        return (
            create_histogram(
                views.latency_histogram(store, filters), "LLM call latency", "latency (ms)"
            ),
            create_series_figure(points, "Volume", "LLM calls"),
            total,
        )

    latency, volume, total = analytics.cached(f"{PAGE}-page", filters, sync_mark, draw)
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


@callback(
    Output(f"{PAGE}-pane", "children"),
    Input(f"{PAGE}-grid", "cellClicked"),
    prevent_initial_call=True,
)
def open_trace(clicked: dict[str, Any] | None) -> Any:
    """Open the clicked trace in an embedded Phoenix pane beside the table."""
    trace_id = (clicked or {}).get("rowId")
    if not trace_id or not get_services().settings.phoenix_enabled:
        return None
    return create_phoenix_pane(
        f"{PAGE}-phoenix", f"/redirects/traces/{trace_id}", f"Trace {trace_id[:12]}…"
    )
