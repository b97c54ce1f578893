"""Home: the Phoenix connection and the last 24 hours at a glance, kept live by polling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, callback, html, no_update

from components.filter_bar import create_page_header
from components.kpis import create_kpi_cards
from components.live import create_live_status
from components.phoenix_pane import create_phoenix_pane
from components.phoenix_status import create_phoenix_status
from services import analytics
from services.container import get_services
from services.live import live_state
from services.status import phoenix_status

dash.register_page(
    __name__, path="/", name="Home", title="Home · Prompt Analytics", order=0, icon="bi-house"
)


def layout(**query: str) -> html.Div:
    """Render the home page."""
    settings = get_services().settings
    children: list[Any] = [
        create_page_header("home", "Home", settings.poll_interval_s),
        html.Div(create_phoenix_status(phoenix_status()), id="home-status"),
        html.H3("Last 24 hours", className="h6 text-body-secondary"),
        dash.dcc.Loading(html.Div(id="home-kpis"), type="dot"),
    ]
    if settings.phoenix_enabled:
        children.append(create_phoenix_pane("home-phoenix", "/projects", "Phoenix projects"))
    return html.Div(children)


def quick_stats() -> analytics.Kpis:
    """Compute the last 24 hours' KPIs, cached per watermark."""
    services = get_services()
    start = datetime.now(UTC) - timedelta(hours=24)
    # The window is rounded to the minute so every tab shares one cache entry.
    start = start.replace(second=0, microsecond=0)
    filters = analytics.Filters(start=start)
    with services.sessions() as db:
        mark = analytics.watermark(db)

        def compute() -> analytics.Kpis:
            return analytics.kpis(
                analytics.load_spans(db, filters), analytics.load_annotations(db, filters)
            )

        return analytics.cached("home-kpis", filters, mark, compute)


@callback(
    Output("home-watermark", "data"),
    Output("home-live-status", "children"),
    Output("home-status", "children"),
    Input("home-poll", "n_intervals"),
    Input("home-live", "value"),
    State("home-watermark", "data"),
)
def poll(_n: int | None, live: bool, seen: int | None) -> tuple[Any, Any, Any]:
    """Check our own database for new data; never ask Phoenix from here."""
    state = live_state()
    status = create_live_status(state, paused=not live)
    banner = create_phoenix_status(phoenix_status())
    if not live or state.watermark == seen:
        return no_update, status, banner
    return state.watermark, status, banner


@callback(Output("home-kpis", "children"), Input("home-watermark", "data"))
def redraw(_watermark: int | None) -> Any:
    """Redraw the numbers, only when the watermark moved."""
    return create_kpi_cards("home", quick_stats())
