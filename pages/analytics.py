"""Analytics: KPIs, latency, tokens, cost and errors over time, and version against version."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from sqlalchemy.orm import Session

from components.charts import create_chart_slot, create_series_figure
from components.filter_bar import create_empty_notice, create_filtered_page_top
from components.kpis import create_kpi_cards
from components.phoenix_pane import create_phoenix_pane
from components.table import create_data_table
from pages._shared import register_filter_callbacks, state_from_search
from services import analytics
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import live_state
from services.status import phoenix_project_path

dash.register_page(
    __name__,
    path="/analytics",
    name="Analytics",
    title="Analytics · Prompt Analytics",
    order=40,
    icon="bi-graph-up",
)
PAGE = "analytics"
VERSION_COLUMNS = [
    "prompt_version",
    "count",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "tokens",
    "mean_score",
]
DELTA_COLUMNS = ["metric", "a", "b", "delta", "ci_low", "ci_high", "significant"]


def layout(**query: str) -> html.Div:
    """Render the page for the filters in the URL."""
    state, problems = parse_query(query)
    services = get_services()
    with services.sessions() as db:
        options = analytics.filter_options(db, state.prompt)
    graphs = [
        dbc.Col(create_chart_slot(f"{PAGE}-{name}"), lg=6)
        for name in ("latency", "tokens", "cost", "errors")
    ]
    return html.Div(
        [
            *create_filtered_page_top(
                PAGE,
                "Analytics",
                state,
                options,
                problems,
                services.settings.poll_interval_s,
                live_state(),
            ),
            dcc.Loading(html.Div(id=f"{PAGE}-kpis")),
            dbc.RadioItems(
                id=f"{PAGE}-split",
                options=[
                    {"label": "by prompt version", "value": "prompt_version"},
                    {"label": "by model", "value": "model"},
                ],
                value="prompt_version",
                inline=True,
                className="mb-2",
            ),
            dbc.Row(graphs, className="g-3 mb-3"),
            # Sized for the table it receives, so the pane below stays below the fold meanwhile.
            html.Div(id=f"{PAGE}-versions", style={"minHeight": "480px"}),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-version-a",
                            options=options["versions"],
                            placeholder="Version A",
                        ),
                        md=3,
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-version-b",
                            options=options["versions"],
                            placeholder="Version B",
                        ),
                        md=3,
                    ),
                ],
                className="g-2 mb-2",
            ),
            html.Div(id=f"{PAGE}-compare", className="mb-3"),
            # Filled by follow_project, so a slow Phoenix never holds up the page itself.
            html.Div(id=f"{PAGE}-pane"),
            dcc.Store(id=f"{PAGE}-pane-path"),
        ]
    )


def _project_pane(project: str | None, path: str) -> Any:
    """Embed the filtered project's Phoenix page, below the fold until scrolled to."""
    title = f"Phoenix: {project}" if project and path != "/projects" else "Phoenix projects"
    return create_phoenix_pane(f"{PAGE}-phoenix", path, title)


register_filter_callbacks(PAGE)


@callback(
    Output(f"{PAGE}-kpis", "children"),
    Output(f"{PAGE}-latency", "figure"),
    Output(f"{PAGE}-tokens", "figure"),
    Output(f"{PAGE}-cost", "figure"),
    Output(f"{PAGE}-errors", "figure"),
    Output(f"{PAGE}-versions", "children"),
    Output(f"{PAGE}-message", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-split", "value"),
    Input(f"{PAGE}-state", "data"),
)
def redraw(_mark: int | None, split: str, search: str | None) -> tuple[Any, ...]:
    """Compute and draw everything for the current filters, once per watermark and minute."""
    state = state_from_search(search)
    filters = state.to_filters()
    with get_services().sessions() as db:
        # Every tab with the same filters shares one computation until new data arrives.
        return analytics.cached(
            f"analytics-page:{split}",
            filters,
            analytics.watermark(db),
            lambda: _draw(db, state, filters, split),
        )


def _draw(
    db: Session, state: FilterState, filters: analytics.Filters, split: str
) -> tuple[Any, ...]:
    """Compute and draw everything for these filters."""
    message = analytics.unknown_filter_message(db, filters)
    spans = analytics.load_spans(db, filters)
    annotations = analytics.load_annotations(db, filters)
    series = analytics.time_series(
        spans,
        split="model" if split == "model" else "prompt_version",
        start=filters.start,
        end=filters.end,
    )
    latency = series.melt(id_vars=["bucket", "series"], value_vars=["p50_ms", "p95_ms", "p99_ms"])
    latency = latency.assign(series=latency["series"] + " " + latency["variable"].str[:3])
    versions = analytics.breakdown(spans, annotations, "prompt_version")
    notice = create_empty_notice(PAGE, message, spans.empty, "LLM calls")
    table = create_data_table(
        f"{PAGE}-versions-table",
        versions.round(4).to_dict("records"),
        VERSION_COLUMNS,
        export_href=f"/api/export/{PAGE}/versions.csv{state.query_string()}",
        title="Prompt versions",
    )
    return (
        create_kpi_cards(PAGE, analytics.kpis(spans, annotations)),
        create_series_figure(latency, "value", "Latency percentiles", "ms"),
        create_series_figure(series, "tokens", "Tokens", "tokens"),
        create_series_figure(series, "cost", "Cost", "USD"),
        create_series_figure(series, "error_rate", "Error rate", "share of calls"),
        table,
        notice,
    )


@callback(
    Output(f"{PAGE}-pane", "children"),
    Output(f"{PAGE}-pane-path", "data"),
    Input(f"{PAGE}-state", "data"),
    State(f"{PAGE}-pane-path", "data"),
)
def follow_project(search: str | None, shown: str | None) -> tuple[Any, Any]:
    """Point the Phoenix pane at the filtered project; keep it when the project is unchanged."""
    if not get_services().settings.phoenix_enabled:
        return no_update, no_update
    project = state_from_search(search).project
    path = phoenix_project_path(project)
    if shown == path:
        return no_update, no_update
    return _project_pane(project, path), path


@callback(
    Output(f"{PAGE}-compare", "children"),
    Input(f"{PAGE}-version-a", "value"),
    Input(f"{PAGE}-version-b", "value"),
    Input(f"{PAGE}-state", "data"),
)
def compare(version_a: str | None, version_b: str | None, search: str | None) -> Any:
    """Show B minus A for each metric, with 95 % bootstrap intervals."""
    if not version_a or not version_b:
        return html.P("Pick two versions to compare them.", className="text-body-secondary")
    filters = state_from_search(search).to_filters()
    with get_services().sessions() as db:
        spans = analytics.load_spans(db, filters)
        annotations = analytics.load_annotations(db, filters)
    deltas = analytics.compare_versions(spans, annotations, version_a, version_b, seed=0)
    rows = [
        {
            "metric": d.metric,
            "a": d.a,
            "b": d.b,
            "delta": d.delta,
            "ci_low": d.ci_low,
            "ci_high": d.ci_high,
            "significant": "yes" if d.significant else "no",
        }
        for d in deltas
    ]
    return create_data_table(
        f"{PAGE}-compare-table",
        rows,
        DELTA_COLUMNS,
        export_href=_comparison_href(state_from_search(search), version_a, version_b),
        title=f"{version_b} minus {version_a} (95 % bootstrap interval)",
    )


def _comparison_href(state: FilterState, version_a: str, version_b: str) -> str:
    query = state.query_string()
    extra = urlencode({"a": version_a, "b": version_b})
    return f"/api/export/{PAGE}/comparison.csv{query}{'&' if query else '?'}{extra}"
