"""Traces: the traces behind the filters, their latency and volume, and each one in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from components.charts import create_chart_slot, create_histogram, create_series_figure
from components.filter_bar import create_empty_notice, create_filtered_page_top
from components.phoenix_pane import create_phoenix_pane
from components.table import create_data_table
from pages._shared import register_filter_callbacks, state_from_search
from services import analytics
from services.container import get_services
from services.filters import parse_query
from services.live import live_state

dash.register_page(
    __name__,
    path="/traces",
    name="Traces",
    title="Traces · Prompt Analytics",
    order=10,
    icon="bi-list-nested",
)
PAGE = "traces"
ROW_LIMIT = 2000  # on screen; the CSV export always holds every matching trace


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = analytics.filter_options(db, state.prompt)
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
                    dbc.Col(dcc.Loading(html.Div(id=f"{PAGE}-table")), id=f"{PAGE}-table-col"),
                    dbc.Col(html.Div(id=f"{PAGE}-pane"), lg=6, id=f"{PAGE}-pane-col"),
                ],
                className="g-3",
            ),
        ]
    )


register_filter_callbacks(PAGE)


@callback(
    Output(f"{PAGE}-latency", "figure"),
    Output(f"{PAGE}-volume", "figure"),
    Output(f"{PAGE}-table", "children"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(_mark: int | None, search: str | None) -> tuple[Any, ...]:
    """Draw the histogram, the volume series and the table for the current filters."""
    state = state_from_search(search)
    filters = state.to_filters()
    with get_services().sessions() as db:
        message = analytics.unknown_filter_message(db, filters)
        spans = analytics.load_spans(db, filters)
    rows = analytics.traces(spans)
    volume = analytics.time_series(spans, start=filters.start, end=filters.end)
    notice = create_empty_notice(PAGE, message, spans.empty, "traces")
    shown = rows.head(ROW_LIMIT).assign(start_time=rows["start_time"].astype(str))
    table = create_data_table(
        f"{PAGE}-grid",
        shown.round(1).to_dict("records"),
        analytics.TRACE_COLUMNS,
        export_href=f"/api/export/{PAGE}/traces.csv{state.query_string()}",
        row_id="trace_id",
        title=f"{len(rows):,} traces"
        + (f" (newest {ROW_LIMIT:,} shown)" if len(rows) > ROW_LIMIT else ""),
    )
    return (
        create_histogram(spans["latency_ms"], "LLM call latency", "latency (ms)"),
        create_series_figure(volume, "count", "Volume", "LLM calls"),
        table,
        notice,
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
