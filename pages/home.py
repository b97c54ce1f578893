"""Home: the Phoenix connection, the last 24 hours and 7 days at a glance, the top prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from components.filter_bar import create_page_header
from components.kpis import create_period_cards
from components.live import create_live_status
from components.phoenix_pane import create_phoenix_pane
from components.phoenix_status import create_phoenix_status
from components.table import create_export_link
from components.top_prompts import create_top_prompts
from services import analytics, prompt_filters
from services.analytics import fact_store
from services.container import get_services
from services.live import live_state, poll_watermark
from services.status import phoenix_status
from store import analytics as store_analytics
from store.analytics import Filters

dash.register_page(
    __name__, path="/", name="Home", title="Home · Prompt Analytics", order=0, icon="bi-house"
)
PAGE = "home"
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}


def layout(**query: str) -> html.Div:
    """Render the home page."""
    settings = get_services().settings
    children: list[Any] = [
        create_page_header(PAGE, "Home", settings.poll_interval_s, live_state()),
        html.Div(create_phoenix_status(phoenix_status()), id=f"{PAGE}-status"),
        dcc.Loading(html.Div(id=f"{PAGE}-stats")),
        html.Div(
            [
                html.H3("Top prompts, last 7 days", className="h6 text-body-secondary mb-0"),
                # Every prompt of the 7-day window (the default range), not only the top ten.
                create_export_link(
                    f"{PAGE}-top-prompts-export", f"/api/export/{PAGE}/top-prompts.csv"
                ),
            ],
            className="d-flex justify-content-between align-items-center mb-2",
        ),
        dcc.Loading(html.Div(id=f"{PAGE}-top-prompts"), className="mb-3"),
    ]
    if settings.phoenix_enabled:
        children.append(create_phoenix_pane(f"{PAGE}-phoenix", "/projects", "Phoenix projects"))
    return html.Div(children)


def home_data() -> dict[str, Any]:
    """Compute both windows and the top prompts in the store, cached per watermark and minute."""
    services = get_services()
    store = fact_store()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with services.sessions() as db:
        mark = analytics.watermark(db)
        names = prompt_filters.prompt_names(db)

    def compute() -> dict[str, Any]:
        week = Filters(start=now - WINDOWS["7d"], end=now)
        return {
            "stats": {k: store_analytics.period_stats(store, w, now) for k, w in WINDOWS.items()},
            "top": store_analytics.top_prompts(store, week, dict(names.by_id)),
        }

    return analytics.cached("home", Filters(end=now), mark, compute)


@callback(
    Output(f"{PAGE}-watermark", "data"),
    Output(f"{PAGE}-live-status", "children"),
    Output(f"{PAGE}-status", "children"),
    Input(f"{PAGE}-poll", "n_intervals"),
    Input(f"{PAGE}-live", "value"),
    State(f"{PAGE}-watermark", "data"),
    prevent_initial_call=True,
)
def poll(_n: int | None, live: bool, seen: int | None) -> tuple[Any, Any, Any]:
    """Check our own database for new data; never ask Phoenix for data from here."""
    mark, state = poll_watermark(live, seen)
    banner = create_phoenix_status(phoenix_status())
    return (no_update if mark is None else mark), create_live_status(state, paused=not live), banner


@callback(
    Output(f"{PAGE}-stats", "children"),
    Output(f"{PAGE}-top-prompts", "children"),
    Input(f"{PAGE}-watermark", "data"),
)
def redraw(_watermark: int | None) -> tuple[Any, Any]:
    """Redraw the quick stats, only when the watermark moved."""
    data = home_data()
    stats = []
    for key, title in (("24h", "Last 24 hours"), ("7d", "Last 7 days")):
        stats.append(html.H3(title, className="h6 text-body-secondary"))
        stats.append(create_period_cards(PAGE, key, data["stats"][key]))
    return stats, create_top_prompts(PAGE, data["top"])
