"""Evaluations: scores and labels per evaluator and prompt version, their trend, each in Phoenix."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from components.charts import (
    Box,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    create_bucket_figure,
    create_chart_slot,
    create_label_bars,
    create_score_box,
)
from components.colors import group_color_key, group_order, prompt_catalogue, series_color
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
from services.user_settings import display_zone
from store import analytics as store_analytics
from store import views
from store.analytics import Filters, GroupKey, TrendPoint
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
# Each evaluator's trend lines share its versions' colours; the dash tells evaluators apart.
DASHES = ("solid", "dot", "dash", "longdash", "dashdot")
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


def _charts(
    store: FactStore, filters: Filters, names: PromptNames, mark: int, zone: str
) -> tuple[Any, ...]:
    """Draw the score boxes, label shares and trend, and count the evaluations."""
    spreads = views.score_spreads(store, filters)
    summaries = store_analytics.score_summary(store, filters)
    window = store_analytics.chart_window(store, filters)
    # The same buckets as the analytics page's for the same filters: sized by the calls.
    size = (
        store_analytics.chart_bucket_size(*window, store_analytics.span_count(store, filters))
        if window
        else None
    )
    size, trend = store_analytics.evaluation_trend(store, filters, timezone=zone, size=size)
    keys = [GroupKey(s.prompt_id, None, s.prompt_version) for s in spreads]
    keys += [s.key for s in summaries] + [t.key for t in trend]
    plain = sorted({_plain(k) for k in keys}, key=lambda k: group_order(k, names))
    labels = version_labels(plain, names)
    catalogue = prompt_catalogue(names)
    colors = {labels[k]: series_color(group_color_key(k, names), catalogue) for k in plain}
    order = {key: rank for rank, key in enumerate(plain)}
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
        for s in sorted(
            spreads, key=lambda s: order[_plain(GroupKey(s.prompt_id, None, s.prompt_version))]
        )
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
    edges = store_analytics.bucket_edges(*window, size, zone) if window else []
    buckets = chart_buckets(edges, {t.bucket for t in trend}, size, zone)
    total = tables.table_total("evaluations", tables.Context(store, filters, names, mark=mark))
    return (
        create_score_box(boxes, "Score distribution", colors),
        create_label_bars(shares, "Label shares"),
        create_bucket_figure(
            buckets,
            _trend_series(trend, plain, labels, names, catalogue),
            "Mean score over time",
            "mean score",
            Hover("score", "scores"),
        ),
        total,
    )


def _trend_series(
    trend: list[TrendPoint],
    plain: list[GroupKey],
    labels: dict[GroupKey, str],
    names: PromptNames,
    catalogue: dict[str, str],
) -> list[ChartSeries]:
    """Make a line per evaluator and version: the version's colour, the evaluator's dash."""
    evaluators = sorted({t.name for t in trend})
    cells: dict[tuple[str, GroupKey], dict[Any, Cell]] = {}
    for t in trend:
        cells.setdefault((t.name, _plain(t.key)), {})[t.bucket] = Cell(t.mean, t.scored)
    made = []
    for name in evaluators:
        for key in plain:
            if (name, key) not in cells:
                continue
            color_key = group_color_key(key, names)
            made.append(
                ChartSeries(
                    f"{name} · {labels[key]}",
                    series_color(color_key, catalogue),
                    cells[(name, key)],
                    dash=DASHES[evaluators.index(name) % len(DASHES)],
                    key=color_key,
                )
            )
    return made


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
    zone = display_zone(state)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        message = prompt_filters.unknown_filter_message(db, store, state)
        sync_mark = analytics.watermark(db)
    scores, labels, trend, total = analytics.cached(
        f"{PAGE}-page:{zone}",
        filters,
        sync_mark,
        lambda: _charts(store, filters, names, sync_mark, zone),
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
