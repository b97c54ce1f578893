"""Playground: a registry prompt version, its template and tags, its live traffic and metrics."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html, no_update
from sqlalchemy.orm import Session

from components.filter_bar import create_page_header
from components.kpis import create_kpi_cards
from components.phoenix_pane import create_phoenix_pane, phoenix_href
from components.phoenix_status import phoenix_error_text
from components.table import create_data_table
from pages._shared import register_live_callback, register_paged_grid
from services import analytics, prompt_filters, prompts, tables
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState
from services.live import live_state
from services.phoenix import PhoenixError
from store import analytics as store_analytics

dash.register_page(
    __name__,
    path="/playground",
    name="Playground",
    title="Playground · Prompt Analytics",
    order=50,
    icon="bi-play-circle",
    needs_phoenix=True,
)
PAGE = "playground"
GRID = f"{PAGE}-grid"
TRACES = tables.table("traces")


def layout(**query: str) -> html.Div:
    """Render the prompt and version pickers for the prompt named in the URL."""
    services = get_services()
    header = create_page_header(PAGE, "Playground", services.settings.poll_interval_s, live_state())
    if services.phoenix is None:
        return html.Div(
            [
                header,
                dbc.Alert(
                    "The Phoenix integration is turned off.", color="secondary", id=f"{PAGE}-off"
                ),
            ]
        )
    try:
        registry = prompts.registry(services.phoenix)
    except PhoenixError as exc:
        return html.Div(
            [
                header,
                dbc.Alert(phoenix_error_text(exc), color="danger", id=f"{PAGE}-error"),
            ]
        )
    names = [p["name"] for p in registry]
    chosen = query.get("prompt") if query.get("prompt") in names else (names[0] if names else None)
    return html.Div(
        [
            header,
            dcc.Location(id=f"{PAGE}-url", refresh=False),
            dbc.Row(
                [
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-prompt",
                            options=names,
                            value=chosen,
                            clearable=False,
                            placeholder="Prompt",
                        ),
                        md=4,
                    ),
                    dbc.Col(
                        dcc.Dropdown(
                            id=f"{PAGE}-version",
                            value=query.get("version"),
                            clearable=False,
                            placeholder="Version",
                        ),
                        md=4,
                    ),
                ],
                className="g-2 mb-3",
            ),
            html.Div(id=f"{PAGE}-detail"),
            dcc.Loading(html.Div(id=f"{PAGE}-metrics")),
            html.Div(id=f"{PAGE}-pane"),
        ]
    )


register_live_callback(PAGE)
register_paged_grid(GRID, TRACES.name)


def _find(prompt_name: str | None) -> dict[str, Any] | None:
    phoenix = get_services().phoenix
    if phoenix is None or not prompt_name:
        return None
    return next((p for p in prompts.registry(phoenix) if p["name"] == prompt_name), None)


@callback(
    Output(f"{PAGE}-version", "options"),
    Output(f"{PAGE}-version", "value"),
    Input(f"{PAGE}-prompt", "value"),
    State(f"{PAGE}-version", "value"),
)
def versions(prompt_name: str | None, current: str | None) -> tuple[Any, Any]:
    """Offer the chosen prompt's versions, newest first."""
    try:
        prompt = _find(prompt_name)
    except PhoenixError:
        # Keep the offered versions; the detail below says what went wrong.
        return no_update, no_update
    if prompt is None:
        return [], None
    options = [
        {"label": f"{v.get('description') or v['id']}", "value": v["id"]}
        for v in prompt["versions"]
    ]
    ids = [o["value"] for o in options]
    return options, current if current in ids else (ids[0] if ids else None)


def _version_detail(
    db: Session, prompt_name: str | None, version_id: str | None
) -> prompts.PromptVersionDetail | None:
    """Return the chosen version's detail, or None until a prompt and version are chosen."""
    phoenix = get_services().phoenix
    prompt = _find(prompt_name)
    version = next((v for v in (prompt or {}).get("versions", []) if v["id"] == version_id), None)
    if prompt is None or version is None or phoenix is None:
        return None
    return prompts.version_detail(phoenix, db, prompt, version)


@callback(
    Output(f"{PAGE}-detail", "children"),
    Output(f"{PAGE}-pane", "children"),
    Output(f"{PAGE}-url", "search"),
    Input(f"{PAGE}-version", "value"),
    State(f"{PAGE}-prompt", "value"),
)
def show_version(version_id: str | None, prompt_name: str | None) -> tuple[Any, Any, Any]:
    """Show the template and tags, embed Phoenix's playground, and keep the URL in step."""
    services = get_services()
    try:
        with services.sessions() as db:
            detail = _version_detail(db, prompt_name, version_id)
    except PhoenixError as exc:
        alert = dbc.Alert(phoenix_error_text(exc), color="danger", id=f"{PAGE}-detail-error")
        return alert, None, no_update
    if detail is None:
        return html.P("Pick a prompt and version.", className="text-body-secondary"), None, ""
    card = dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        html.Span(detail.prompt_name, className="fw-semibold me-2"),
                        *[dbc.Badge(t, color="info", className="me-1") for t in detail.tags],
                        html.Span(
                            f"synced as {detail.label}" if detail.label else "no traffic yet",
                            className="small text-body-secondary ms-2 me-auto",
                        ),
                        html.A(
                            [
                                html.I(className="bi bi-box-arrow-up-right me-1"),
                                "Prompt in Phoenix",
                            ],
                            href=phoenix_href(f"/prompts/{detail.prompt_id}"),
                            target="_blank",
                            rel="noopener",
                            className="small",
                            id=f"{PAGE}-prompt-link",
                        ),
                    ],
                    className="d-flex align-items-center mb-2",
                ),
                html.Pre(
                    detail.template,
                    id=f"{PAGE}-template",
                    className="mb-0 small",
                    style={"whiteSpace": "pre-wrap"},
                ),
            ]
        ),
        className="mb-3",
    )
    pane_path = "/playground?" + urlencode(
        [("promptId", detail.prompt_id), ("promptVersionId", detail.version_id)]
    )
    pane = create_phoenix_pane(f"{PAGE}-phoenix", pane_path, "Phoenix playground", 720)
    search = "?" + urlencode([("prompt", detail.prompt_name), ("version", detail.version_id)])
    return card, pane, search


@callback(
    Output(f"{PAGE}-metrics", "children"),
    Input(f"{PAGE}-watermark", "data"),
    Input(f"{PAGE}-version", "value"),
    State(f"{PAGE}-prompt", "value"),
)
def metrics(mark: int | None, version_id: str | None, prompt_name: str | None) -> Any:
    """Show the version's metrics and its recent traces, redrawn when new data arrives."""
    services = get_services()
    with services.sessions() as db:
        try:
            detail = _version_detail(db, prompt_name, version_id)
        except PhoenixError as exc:
            return dbc.Alert(phoenix_error_text(exc), color="danger", id=f"{PAGE}-metrics-error")
        if detail is None:
            return None
        if detail.label is None:
            return dbc.Alert(
                "No traffic for this version has synced yet.", color="info", id=f"{PAGE}-empty"
            )
        prompt = detail.synced_prompt or detail.prompt_name
        state = FilterState(prompt=prompt, versions=(detail.label,), range="24h")
        filters = prompt_filters.resolve(db, state)
        sync_mark = analytics.watermark(db)
    store = fact_store()
    kpis = analytics.cached(
        f"{PAGE}-kpis", filters, sync_mark, lambda: store_analytics.kpis(store, filters)
    )
    query = state.query_string()
    return html.Div(
        [
            html.H3("Last 24 hours", className="h6 text-body-secondary"),
            create_kpi_cards(PAGE, kpis),
            create_data_table(
                GRID,
                TRACES.columns,
                export_href=f"/api/export/{PAGE}/{TRACES.name}.csv{query}",
                title="Recent traces",
                query=query,
                mark=mark,
                row_id=TRACES.row_id,
            ),
        ]
    )
