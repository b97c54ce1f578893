"""Evaluations: scores and labels per evaluator and prompt version, their trend, each in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from components.charts import (
    create_chart_slot,
    create_label_bars,
    create_score_box,
    create_series_figure,
)
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
    path="/evaluations",
    name="Evaluations",
    title="Evaluations · Prompt Analytics",
    order=20,
    icon="bi-clipboard-check",
)
PAGE = "evaluations"
ROW_LIMIT = 2000  # on screen; the CSV export always holds every matching evaluation


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = analytics.filter_options(db, state.prompt)
    charts = [
        dbc.Col(create_chart_slot(f"{PAGE}-{name}"), lg=4) for name in ("scores", "labels", "trend")
    ]
    return html.Div(
        [
            *create_filtered_page_top(
                PAGE,
                "Evaluations",
                state,
                options,
                problems,
                services.settings.poll_interval_s,
                live_state(),
            ),
            dbc.Row(charts, className="g-3 mb-3"),
            dbc.Row(
                [
                    dbc.Col(dcc.Loading(html.Div(id=f"{PAGE}-table"))),
                    dbc.Col(html.Div(id=f"{PAGE}-pane"), lg=6),
                ],
                className="g-3",
            ),
        ]
    )


register_filter_callbacks(PAGE)


@callback(
    Output(f"{PAGE}-scores", "figure"),
    Output(f"{PAGE}-labels", "figure"),
    Output(f"{PAGE}-trend", "figure"),
    Output(f"{PAGE}-table", "children"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(_mark: int | None, search: str | None) -> tuple[Any, ...]:
    """Draw the distributions, label shares, trend and table for the current filters."""
    state = state_from_search(search)
    filters = state.to_filters()
    with get_services().sessions() as db:
        message = analytics.unknown_filter_message(db, filters)
        annotations = analytics.load_annotations(db, filters)
    notice = create_empty_notice(PAGE, message, annotations.empty, "evaluations")
    rows = annotations.sort_values("start_time", ascending=False)[analytics.EVALUATION_COLUMNS]
    shown = rows.head(ROW_LIMIT).assign(
        start_time=rows["start_time"].astype(str),
        row_key=rows["span_id"] + ":" + rows["name"],
    )
    table = create_data_table(
        f"{PAGE}-grid",
        shown.to_dict("records"),
        analytics.EVALUATION_COLUMNS,
        export_href=f"/api/export/{PAGE}/evaluations.csv{state.query_string()}",
        title=f"{len(rows):,} evaluations",
        row_id="row_key",
    )
    return (
        create_score_box(annotations, "Score distribution"),
        create_label_bars(analytics.label_fractions(annotations), "Label shares"),
        create_series_figure(
            analytics.evaluation_trend(annotations, filters.start, filters.end),
            "mean_score",
            "Mean score over time",
            "score",
        ),
        table,
        notice,
    )


@callback(
    Output(f"{PAGE}-pane", "children"),
    Input(f"{PAGE}-grid", "cellClicked"),
    prevent_initial_call=True,
)
def open_span(clicked: dict[str, Any] | None) -> Any:
    """Open the evaluated span in an embedded Phoenix pane beside the table."""
    row_key = str((clicked or {}).get("rowId") or "")
    span_id = row_key.split(":", 1)[0]
    if not span_id or not get_services().settings.phoenix_enabled:
        return None
    return create_phoenix_pane(f"{PAGE}-phoenix", f"/redirects/spans/{span_id}", f"Span {span_id}")
