"""Home: the Phoenix connection, the last 24 hours and 7 days at a glance, the top prompts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import Input, Output, callback, dcc, html

from components.filter_bar import (
    FilterBarAIO,
    create_evaluator_picker,
    create_page_header,
    evaluator_picker_outputs,
    register_callbacks,
)
from components.kpis import create_period_cards
from components.phoenix_pane import create_phoenix_pane
from components.phoenix_status import create_phoenix_status
from components.table import create_export_link
from components.top_prompts import create_top_prompts
from components.views import create_saved_views
from services import analytics, evaluators, prompt_filters, prompt_identity
from services.analytics import fact_store
from services.container import get_services
from services.filters import parse_query
from services.live import live_state
from services.status import phoenix_status
from store import analytics as store_analytics
from store.analytics import Filters, PeriodStats
from store.facts import FactStore

dash.register_page(
    __name__, path="/", name="Home", title="Home · Prompt Analytics", order=0, icon="bi-house"
)
PAGE = "home"
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
# The live switch and poll are the filter bar's, shared with every page.
register_callbacks()


def layout(**query: str) -> html.Div:
    """Render the home page."""
    settings = get_services().settings
    # Home has no filters: of the URL's query only the evaluator the score cards show counts.
    evaluator = parse_query(query)[0].evaluator
    children: list[Any] = [
        dcc.Location(id=f"{PAGE}-url", refresh=False),
        create_page_header(PAGE, "Home", settings.poll_interval_s, live_state()),
        html.Div(create_phoenix_status(phoenix_status()), id=f"{PAGE}-status"),
        create_evaluator_picker(PAGE, evaluator),
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
        create_saved_views(PAGE),
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
        # A rename or merge changes the top prompts' names: part of the cache key.
        revision = prompt_identity.revision(db)

    def compute() -> dict[str, Any]:
        week = Filters(start=now - WINDOWS["7d"], end=now)
        stats = {k: store_analytics.period_stats(store, w, now) for k, w in WINDOWS.items()}
        return {
            "stats": stats,
            "labels": {k: _label_counts(store, stats[k], w, now) for k, w in WINDOWS.items()},
            "top": store_analytics.top_prompts(store, week, dict(names.by_id)),
        }

    return analytics.cached(f"home:{revision}", Filters(end=now), mark, compute)


Labels = dict[str, evaluators.LabelCounts]


def _label_counts(
    store: FactStore, stats: PeriodStats, window: timedelta, now: datetime
) -> tuple[Labels, Labels]:
    """Count the labels of label-only evaluators in a window and the one before it.

    Read only when such an evaluator has annotations in either: its card shows label shares.
    """
    periods = ((stats.current, now - window, now), (stats.previous, now - 2 * window, now - window))
    counts: list[Labels] = []
    for kpis, start, end in periods:
        if any(evaluators.is_label_only(s) for s in kpis.scores):
            summaries = store_analytics.score_summary(store, Filters(start=start, end=end))
            counts.append(evaluators.label_counts(summaries))
        else:
            counts.append({})
    return counts[0], counts[1]


@callback(
    Output(f"{PAGE}-status", "children"),
    Input(FilterBarAIO.ids.poll(PAGE), "n_intervals"),
    prevent_initial_call=True,
)
def refresh_status(_n: int | None) -> Any:
    """Redraw the Phoenix banner on each poll, from our records; never ask Phoenix from here."""
    return create_phoenix_status(phoenix_status())


@callback(
    Output(f"{PAGE}-url", "search"),
    Input(f"{PAGE}-filter-evaluator", "value"),
    prevent_initial_call=True,
)
def evaluator_to_url(evaluator: str | None) -> str:
    """Keep the chosen evaluator in the URL, so a copied link shows the same cards."""
    # Through the parser, like every filter page, so the URL holds what a link may hold.
    return parse_query({"evaluator": evaluator})[0].query_string() or "?"


@callback(
    Output(f"{PAGE}-stats", "children"),
    Output(f"{PAGE}-top-prompts", "children"),
    Output(f"{PAGE}-filter-evaluator", "options"),
    Output(f"{PAGE}-filter-evaluator", "placeholder"),
    Output(f"{PAGE}-evaluator-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-filter-evaluator", "value"),
)
def redraw(_watermark: int | None, evaluator: str | None = None) -> tuple[Any, ...]:
    """Redraw the quick stats when the watermark moved or another evaluator was picked."""
    data = home_data()
    wanted = parse_query({"evaluator": evaluator})[0].evaluator
    # One evaluator for both windows, chosen over the week (which holds the last day).
    week = data["stats"]["7d"].current.scores
    choice = evaluators.choose(week, wanted)
    stats = []
    for key, title in (("24h", "Last 24 hours"), ("7d", "Last 7 days")):
        stats.append(html.H3(title, className="h6 text-body-secondary"))
        stats.append(
            create_period_cards(PAGE, key, data["stats"][key], choice.name, data["labels"][key])
        )
    return (
        stats,
        create_top_prompts(PAGE, data["top"]),
        *evaluator_picker_outputs(PAGE, week, wanted),
    )
