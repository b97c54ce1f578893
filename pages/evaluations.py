"""Evaluations: scores and labels per evaluator and prompt version, their trend, each in Phoenix.

Evaluators score on their own scales (0-1, 1-5) and give their own labels, so the charts show
one evaluator at a time: the URL's `evaluator=`, by default the one with the most annotations,
as on the analytics page. The table lists every evaluation.
"""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, html

from components.charts import (
    MIN_CALLS,
    Box,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    create_bucket_figure,
    create_chart_slot,
    create_empty_figure,
    create_label_bars,
    create_score_box,
)
from components.colors import group_color_key, group_order, prompt_catalogue, series_color
from components.filter_bar import (
    create_empty_notice,
    create_evaluator_picker,
    create_filtered_page_top,
    evaluator_picker_outputs,
)
from components.phoenix_pane import create_phoenix_pane, pane_widths
from components.table import create_data_table
from pages._shared import register_filter_callbacks, register_paged_grid, state_from_search
from services import analytics, evaluators, prompt_filters, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from services.prompt_filters import PromptNames, version_labels
from services.user_settings import display_zone
from store import analytics as store_analytics
from store import views
from store.analytics import EvaluatorScore, Filters, GroupKey, ScoreSummary, TrendPoint
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
# The charts' height: the row of three stays as tall as its slots, so the table's first rows
# show at 1440 x 900 without scrolling.
CHART_PX = 300
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
            create_evaluator_picker(PAGE, state.evaluator),
            dbc.Row(charts, className="g-3 mb-3"),
            dbc.Row(
                [
                    # Full width until a row is opened in the pane (open_span), then halves.
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
                        lg=12,
                    ),
                    dbc.Col(
                        html.Div(id=f"{PAGE}-pane"),
                        id=f"{PAGE}-pane-col",
                        lg=12,
                        className="d-none",
                    ),
                ],
                className="g-3",
            ),
        ]
    )


def _export_href(state: FilterState) -> str:
    return f"/api/export/{PAGE}/{TABLE.name}.csv{state.query_string()}"


register_filter_callbacks(PAGE, evaluator_picker=True)
register_paged_grid(GRID, TABLE.name)


def _charts(
    store: FactStore, filters: Filters, names: PromptNames, mark: int, zone: str
) -> tuple[Any, ...]:
    """Draw every evaluator's score boxes, label shares and trend; count the evaluations.

    The evaluators too, with their annotation counts, for the picker. Every evaluator's figures
    are drawn (there are a few), so switching the evaluator recomputes nothing.
    """
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
    scores = _evaluator_scores(summaries)
    edges = store_analytics.bucket_edges(*window, size, zone) if window else []
    buckets = chart_buckets(edges, {t.bucket for t in trend}, size, zone)
    boxes: dict[str, Any] = {}
    shares: dict[str, Any] = {}
    trends: dict[str, Any] = {}
    for score in scores:
        name = score.name
        ranked = sorted(
            (s for s in spreads if s.name == name),
            key=lambda s: order[_plain(GroupKey(s.prompt_id, None, s.prompt_version))],
        )
        version_boxes = []
        for s in ranked:
            label = labels[_plain(GroupKey(s.prompt_id, None, s.prompt_version))]
            version_boxes.append(
                Box(label, label, s.minimum, s.q1, s.median, s.q3, s.maximum, s.scored)
            )
        title = f"Score distribution: {name}"
        boxes[name] = (
            create_score_box(version_boxes, title, colors, f"{name} score")
            if version_boxes
            else create_empty_figure(_no_scores(name), title)
        )
        # Each share with the labelled annotations it is a share of, a bar per version.
        shares[name] = create_label_bars(
            [
                (share.label, labels[_plain(s.key)], share.share, sum(x.count for x in s.labels))
                for s in sorted(
                    (s for s in summaries if s.name == name), key=lambda s: order[_plain(s.key)]
                )
                for share in s.labels
            ],
            f"Label shares: {name}",
        )
        mine = [t for t in trend if t.name == name]
        trend_title = f"Mean {name} score over time"
        trends[name] = (
            create_bucket_figure(
                buckets,
                _trend_series(mine, plain, labels, names, catalogue),
                trend_title,
                f"mean {name} score",
                Hover("score", "scores"),
                height=CHART_PX,
                # A mean of a few scores is drawn faded, off its line: one 0 is not a trend.
                min_calls=MIN_CALLS,
            )
            if mine
            else create_empty_figure(_no_scores(name), trend_title)
        )
    total = tables.table_total("evaluations", tables.Context(store, filters, names, mark=mark))
    return tuple(scores), boxes, shares, trends, total


def _no_scores(name: str) -> str:
    """Say why an evaluator's score chart is blank."""
    return f"{name} gave labels, no scores: see its label shares"


def _evaluator_scores(summaries: list[ScoreSummary]) -> list[EvaluatorScore]:
    """Add up each evaluator's annotations and scores over its versions, for the picker."""
    totals: dict[str, tuple[float, int, int]] = {}
    for s in summaries:
        weighted, scored, annotations = totals.get(s.name, (0.0, 0, 0))
        weighted += (s.mean or 0.0) * s.scored
        totals[s.name] = (weighted, scored + s.scored, annotations + s.annotations)
    return [
        EvaluatorScore(name, weighted / scored if scored else None, scored, annotations)
        for name, (weighted, scored, annotations) in sorted(totals.items())
    ]


def _trend_series(
    trend: list[TrendPoint],
    plain: list[GroupKey],
    labels: dict[GroupKey, str],
    names: PromptNames,
    catalogue: dict[str, str],
) -> list[ChartSeries]:
    """Make a line per version of one evaluator's trend, in the version's colour."""
    cells: dict[GroupKey, dict[Any, Cell]] = {}
    for t in trend:
        cells.setdefault(_plain(t.key), {})[t.bucket] = Cell(t.mean, t.scored)
    made = []
    for key in plain:
        if key not in cells:
            continue
        color_key = group_color_key(key, names)
        made.append(
            ChartSeries(labels[key], series_color(color_key, catalogue), cells[key], key=color_key)
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
    Output(f"{PAGE}-filter-evaluator", "options"),
    Output(f"{PAGE}-filter-evaluator", "placeholder"),
    Output(f"{PAGE}-evaluator-message", "children"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(mark: int | None, search: str | None) -> tuple[Any, ...]:
    """Draw the chosen evaluator's scores and trend, every label share, and the table's count."""
    state = state_from_search(search)
    zone = display_zone(state)
    store = fact_store()
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        message = prompt_filters.unknown_filter_message(db, store, state)
        sync_mark = analytics.watermark(db)
    # Every evaluator's figures, cached once for these filters (the evaluator picks no rows).
    scores, boxes, shares, trends, total = analytics.cached(
        f"{PAGE}-charts:{zone}",
        filters,
        sync_mark,
        lambda: _charts(store, filters, names, sync_mark, zone),
    )
    name = evaluators.choose(scores, state.evaluator).name or ""
    none = "No evaluations for these filters"
    return (
        boxes.get(name) or create_empty_figure(none, "Score distribution"),
        shares.get(name) or create_empty_figure(none, "Label shares"),
        trends.get(name) or create_empty_figure(none, "Mean score over time"),
        f"{total:,} evaluations",
        # The mark too: new data must refill the grid even when the filters stayed.
        {"query": state.query_string(), "mark": mark},
        _export_href(state),
        *evaluator_picker_outputs(PAGE, scores, state.evaluator),
        create_empty_notice(PAGE, message, total == 0, "evaluations"),
    )


CLOSED, OPEN = pane_widths(False), pane_widths(True)


@callback(
    Output(f"{PAGE}-pane", "children"),
    Output(f"{PAGE}-table-col", "lg"),
    Output(f"{PAGE}-pane-col", "lg"),
    Output(f"{PAGE}-pane-col", "className"),
    Input(f"{PAGE}-grid", "cellClicked"),
    prevent_initial_call=True,
)
def open_span(clicked: dict[str, Any] | None) -> tuple[Any, ...]:
    """Open the evaluated span in an embedded Phoenix pane beside the table, which then halves."""
    row_key = str((clicked or {}).get("rowId") or "")
    span_id = row_key.split(":", 1)[0]
    if not span_id or not get_services().settings.phoenix_enabled:
        return (None, *CLOSED)
    pane = create_phoenix_pane(f"{PAGE}-phoenix", f"/redirects/spans/{span_id}", f"Span {span_id}")
    return (pane, *OPEN)
