"""Evaluations: scores and labels per evaluator and prompt version, their trend, each in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from components.charts import (
    Box,
    Hover,
    create_chart_slot,
    create_label_bars,
    create_score_box,
    create_series_figure,
)
from components.filter_bar import create_empty_notice, create_filtered_page_top
from components.phoenix_pane import create_phoenix_pane
from components.table import create_data_table
from pages._shared import register_filter_callbacks, register_paged_grid, state_from_search
from services import analytics, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from services.prompt_filters import PromptNames, version_labels
from store import analytics as store_analytics
from store import views
from store.analytics import Filters, GroupKey
from store.facts import FactStore

dash.register_page(
    __name__,
    path="/evaluations",
    name="Evaluations",
    title="Evaluations · Prompt Analytics",
    order=20,
    icon="bi-clipboard-check",
)
PAGE = "evaluations"
GRID = f"{PAGE}-grid"
TABLE = tables.table("evaluations")


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = prompt_filters.filter_options(db, fact_store(), state.prompt)
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
                        )
                    ),
                    dbc.Col(html.Div(id=f"{PAGE}-pane"), lg=6),
                ],
                className="g-3",
            ),
        ]
    )


def _export_href(state: FilterState) -> str:
    return f"/api/export/{PAGE}/{TABLE.name}.csv{state.query_string()}"


register_filter_callbacks(PAGE)
register_paged_grid(GRID, TABLE.name)


def _charts(store: FactStore, filters: Filters, names: PromptNames, mark: int) -> tuple[Any, ...]:
    """Draw the score boxes, label shares and trend, and count the evaluations."""
    spreads = views.score_spreads(store, filters)
    summaries = store_analytics.score_summary(store, filters)
    _size, trend = store_analytics.evaluation_trend(store, filters)
    keys = [GroupKey(s.prompt_id, None, s.prompt_version) for s in spreads]
    keys += [s.key for s in summaries] + [t.key for t in trend]
    labels = version_labels({_plain(k) for k in keys}, names)
    boxes = [
        Box(
            labels[_plain(GroupKey(s.prompt_id, None, s.prompt_version))],
            s.name,
            s.minimum,
            s.q1,
            s.median,
            s.q3,
            s.maximum,
        )
        for s in spreads
    ]
    # Each share with the labelled annotations it is a share of, each mean with its scores.
    shares = [
        (
            share.label,
            f"{s.name} · {labels[_plain(s.key)]}",
            share.share,
            sum(x.count for x in s.labels),
        )
        for s in summaries
        for share in s.labels
    ]
    points = [(f"{t.name} · {labels[_plain(t.key)]}", t.bucket, t.mean, t.scored) for t in trend]
    total = tables.table_total("evaluations", tables.Context(store, filters, names, mark=mark))
    return (
        create_score_box(boxes, "Score distribution"),
        create_label_bars(shares, "Label shares"),
        create_series_figure(points, "Mean score over time", "score", Hover("score", "scores")),
        total,
    )


def _plain(key: GroupKey) -> GroupKey:
    """Key a (prompt, version) by id and version alone, whichever query it came from."""
    return GroupKey(prompt_id=key.prompt_id, prompt_version=key.prompt_version)


@callback(
    Output(f"{PAGE}-scores", "figure"),
    Output(f"{PAGE}-labels", "figure"),
    Output(f"{PAGE}-trend", "figure"),
    Output(f"{GRID}-title", "children"),
    Output(f"{GRID}-query", "data"),
    Output(f"{GRID}-export", "href"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(mark: int | None, search: str | None) -> tuple[Any, ...]:
    """Draw the distributions, label shares, trend and the table's count; the grid pages itself."""
    state = state_from_search(search)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        message = prompt_filters.unknown_filter_message(db, store, state)
        sync_mark = analytics.watermark(db)
    scores, labels, trend, total = analytics.cached(
        f"{PAGE}-page", filters, sync_mark, lambda: _charts(store, filters, names, sync_mark)
    )
    return (
        scores,
        labels,
        trend,
        f"{total:,} evaluations",
        # The mark too: new data must refill the grid even when the filters stayed.
        {"query": state.query_string(), "mark": mark},
        _export_href(state),
        create_empty_notice(PAGE, message, total == 0, "evaluations"),
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
