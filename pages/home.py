"""Home: the Phoenix connection and, later, quick stats."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from components.phoenix_pane import create_phoenix_pane
from components.phoenix_status import create_phoenix_status
from services.container import get_services
from services.status import phoenix_status

dash.register_page(
    __name__, path="/", name="Home", title="Home · Prompt Analytics", order=0, icon="bi-house"
)


def layout(**query: str) -> html.Div:
    """Render the home page."""
    settings = get_services().settings
    children = [
        html.H2("Home", className="h4"),
        html.Div(create_phoenix_status(phoenix_status()), id="home-status"),
        dcc.Interval(id="home-poll", interval=settings.poll_interval_s * 1000),
    ]
    if settings.phoenix_enabled:
        children.append(create_phoenix_pane("home-phoenix", "/projects", "Phoenix projects"))
    return html.Div(children)


@callback(
    Output("home-status", "children"), Input("home-poll", "n_intervals"), prevent_initial_call=True
)
def refresh_status(_n_intervals: int | None) -> Any:
    """Redraw the Phoenix status on each poll."""
    return create_phoenix_status(phoenix_status())
