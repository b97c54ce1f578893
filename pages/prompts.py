"""Prompts: every template group with its prompt and version label; admins merge, relabel,
rename and undo, each change audited. Times are in the display zone: the URL's tz=, else the
user's setting."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from flask_login import current_user
from sqlalchemy.orm import Session

from db.models import PromptChange
from services import analytics, prompt_identity
from services.analytics import fact_store
from services.container import get_services
from services.filters import FilterState, parse_query, time_zone
from services.span_facts import aware
from services.user_settings import display_zone
from store.filters import Filters

dash.register_page(
    __name__,
    path="/prompts",
    name="Prompts",
    title="Prompts · Prompt Analytics",
    order=60,
    icon="bi-collection",
)
PAGE = "prompts"
GRID = f"{PAGE}-groups"
TEMPLATE_SNIPPET = 160
COLUMNS = (
    ("prompt", "prompt"),
    ("label", "version label"),
    ("calls", "calls"),
    ("version", "version stated"),
    ("source", "identified by"),
    ("template", "template"),
    ("first_seen_at", "first seen"),
    ("last_seen_at", "last seen"),
    ("id", "group id"),
)


def _is_admin() -> bool:
    """Tell whether the signed-in user may change prompts (checked again on every change)."""
    return bool(current_user.is_authenticated and current_user.role == "admin")


def _calls() -> dict[str, int]:
    """Count each group's calls, once per sync watermark."""
    store = fact_store()
    with get_services().sessions() as db:
        mark = analytics.watermark(db)
    return analytics.cached(
        "prompt-group-calls", Filters(), mark, lambda: prompt_identity.calls_per_group(store)
    )


def _time(moment: datetime, zone: str) -> str:
    """Show a time to the minute on the wall clock of the display zone, naming the zone."""
    return aware(moment).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _zone(stored: str | None) -> str:
    """Return the zone the layout stored for its callbacks (checked again), else the user's."""
    return time_zone(stored, []) or display_zone(FilterState())


def _rows(db: Session, zone: str) -> list[dict[str, Any]]:
    """Return the grid's rows: one per template group, first seen when its spans began."""
    calls = _calls()
    return [
        {
            "id": g.id,
            "prompt": g.prompt,
            "label": g.label,
            "calls": calls.get(g.id, 0),
            "version": g.version,
            "source": g.source,
            "template": " ".join(g.template.split())[:TEMPLATE_SNIPPET] or "(no template)",
            "first_seen_at": _time(g.first_seen_at, zone),
            "last_seen_at": _time(g.last_seen_at, zone),
        }
        for g in prompt_identity.groups(db)
    ]


def _history(db: Session, admin: bool, zone: str) -> Any:
    """List the newest changes, each with an undo button for admins while it can be undone."""
    changes = prompt_identity.history(db)
    if not changes:
        return html.P("No changes yet.", className="text-body-secondary small")
    items = []
    for change in changes:
        undo: Any = None
        if admin and not change.undone and change.action != "undo":
            undo = dbc.Button(
                "Undo",
                id={"type": f"{PAGE}-undo", "change": change.id},
                size="sm",
                color="secondary",
                outline=True,
                className="ms-2",
            )
        items.append(
            html.Li(
                [
                    html.Span(f"#{change.id} ", className="text-body-secondary"),
                    html.Span(change.summary),
                    html.Span(
                        f" by {change.actor}, {_time(change.at, zone)}",
                        className="text-body-secondary small",
                    ),
                    html.Span(" (undone)", className="badge text-bg-light ms-1")
                    if change.undone
                    else None,
                    undo,
                ],
                className="mb-1",
            )
        )
    return html.Ul(items, className="list-unstyled mb-0", id=f"{PAGE}-history-list")


def _names(rows: list[dict[str, Any]]) -> list[str]:
    """Return the prompt names in the grid, sorted."""
    return sorted({str(r["prompt"]) for r in rows})


def _admin_controls(admin: bool) -> html.Div:
    """Build the forms admins change prompts with (in the layout for all, shown to admins)."""
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        dbc.InputGroup(
                            [
                                dbc.InputGroupText("Merge selected into"),
                                dbc.Input(
                                    id=f"{PAGE}-merge-name",
                                    placeholder="prompt name (new or existing)",
                                    list=f"{PAGE}-names",
                                    maxLength=prompt_identity.MAX_NAME,
                                ),
                                dbc.Button("Merge", id=f"{PAGE}-merge", color="primary"),
                            ]
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        dbc.InputGroup(
                            [
                                dbc.InputGroupText("Label selected as"),
                                dbc.Input(
                                    id=f"{PAGE}-label",
                                    placeholder="version label, e.g. v2",
                                    maxLength=prompt_identity.MAX_LABEL,
                                ),
                                dbc.Button("Relabel", id=f"{PAGE}-relabel", color="primary"),
                            ]
                        ),
                        lg=6,
                    ),
                ],
                className="g-2 mb-2",
            ),
            dbc.Row(
                dbc.Col(
                    dbc.InputGroup(
                        [
                            dbc.InputGroupText("Rename"),
                            dbc.Select(id=f"{PAGE}-rename-from"),
                            dbc.InputGroupText("to"),
                            dbc.Input(
                                id=f"{PAGE}-rename-to",
                                placeholder="new name",
                                maxLength=prompt_identity.MAX_NAME,
                            ),
                            dbc.Button("Rename", id=f"{PAGE}-rename", color="primary"),
                        ]
                    ),
                    lg=8,
                ),
                className="g-2 mb-2",
            ),
        ],
        id=f"{PAGE}-controls",
        style=None if admin else {"display": "none"},
    )


def layout(**query: str) -> html.Div:
    """Render every template group, the admin's forms and the change history."""
    admin = _is_admin()
    zone = display_zone(parse_query(query)[0])
    with get_services().sessions() as db:
        rows = _rows(db, zone)
        history = _history(db, admin, zone)
    names = _names(rows)
    intro = html.P(
        [
            "A prompt is recognised by Phoenix's prompt registry, else OpenInference's ",
            html.Code("prompt.id"),
            ", else the span attribute named by ",
            html.Code("PROMPT_NAME_ATTRIBUTE"),
            ", else its template. Each wording and stated version is a template group. "
            "Merging groups makes them one prompt; their labels say which version each is. "
            "Changes apply to past and future calls at once.",
        ],
        className="text-body-secondary small",
    )
    # The forms stay in the layout (the callbacks name them), hidden from non-admins; every
    # change checks the role again on the server.
    controls = _admin_controls(admin)
    notice = (
        None
        if admin
        else dbc.Alert(
            "Only admins change prompts. You can see how calls are grouped.",
            color="secondary",
            id=f"{PAGE}-read-only",
        )
    )
    return html.Div(
        [
            html.H2("Prompts", className="h4 mb-2"),
            intro,
            dcc.Store(id=f"{PAGE}-zone", data=zone),
            notice,
            controls,
            html.Datalist([html.Option(value=n) for n in names], id=f"{PAGE}-names"),
            html.Div(id=f"{PAGE}-message"),
            dag.AgGrid(
                id=GRID,
                rowData=rows,
                columnDefs=[
                    {"field": field, "headerName": header, "filter": True}
                    | (
                        {
                            "type": "rightAligned",
                            "valueFormatter": {"function": "formatCell(params.value, 'count')"},
                        }
                        if field == "calls"
                        else {}
                    )
                    for field, header in COLUMNS
                ],
                getRowId="params.data.id",
                dashGridOptions={
                    "rowSelection": {"mode": "multiRow", "enableClickSelection": True}
                    if admin
                    else None,
                    "domLayout": "autoHeight",
                    # Rows re-sort after each change; sliding them only blurs what moved.
                    "animateRows": False,
                    "pagination": True,
                    "paginationPageSize": 50,
                },
                defaultColDef={"resizable": True, "sortable": True},
                className="ag-theme-alpine mb-3",
                style={"width": "100%"},
            ),
            html.H3("History", className="h6 text-body-secondary"),
            html.Div(history, id=f"{PAGE}-history"),
        ]
    )


def _change(action: Callable[[Session, str], PromptChange], zone: str) -> tuple[Any, Any, Any, Any]:
    """Run one audited change as the signed-in admin; say what happened, and redraw."""
    if not _is_admin():
        message = dbc.Alert("Only admins change prompts.", color="danger")
        return message, no_update, no_update, no_update
    services = get_services()
    try:
        with services.sessions.begin() as db:
            record = action(db, current_user.email)
            summary = record.summary
    except prompt_identity.PromptIdentityError as exc:
        return dbc.Alert(str(exc), color="warning"), no_update, no_update, no_update
    with services.sessions() as db:
        rows = _rows(db, zone)
        history = _history(db, True, zone)
    options = [{"label": n, "value": n} for n in _names(rows)]
    return dbc.Alert(summary, color="success"), rows, history, options


@callback(
    Output(f"{PAGE}-message", "children"),
    Output(GRID, "rowData"),
    Output(f"{PAGE}-history", "children"),
    Output(f"{PAGE}-rename-from", "options"),
    Input(f"{PAGE}-merge", "n_clicks"),
    Input(f"{PAGE}-relabel", "n_clicks"),
    Input(f"{PAGE}-rename", "n_clicks"),
    Input({"type": f"{PAGE}-undo", "change": ALL}, "n_clicks"),
    State(GRID, "selectedRows"),
    State(f"{PAGE}-merge-name", "value"),
    State(f"{PAGE}-label", "value"),
    State(f"{PAGE}-rename-from", "value"),
    State(f"{PAGE}-rename-to", "value"),
    State(f"{PAGE}-zone", "data"),
    prevent_initial_call=True,
)
def change(
    _merge: int | None,
    _relabel: int | None,
    _rename: int | None,
    _undo: list[int | None],
    selected: list[dict[str, Any]] | None,
    merge_name: str | None,
    label: str | None,
    rename_from: str | None,
    rename_to: str | None,
    stored_zone: str | None,
) -> tuple[Any, Any, Any, Any]:
    """Apply the change whose button was pressed."""
    trigger = ctx.triggered_id
    zone = _zone(stored_zone)
    picked = [str(row.get("id")) for row in selected or [] if isinstance(row, dict)]
    if trigger == f"{PAGE}-merge":
        return _change(lambda db, actor: prompt_identity.merge(db, actor, picked, merge_name), zone)
    if trigger == f"{PAGE}-relabel":
        if len(picked) != 1:
            return dbc.Alert("Select exactly one group to relabel.", color="warning"), *(
                no_update,
            ) * 3
        return _change(lambda db, actor: prompt_identity.relabel(db, actor, picked[0], label), zone)
    if trigger == f"{PAGE}-rename":
        return _change(
            lambda db, actor: prompt_identity.rename(db, actor, rename_from, rename_to), zone
        )
    if isinstance(trigger, dict) and trigger.get("type") == f"{PAGE}-undo":
        # A redraw adds buttons with no clicks; only a real click undoes.
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            return no_update, no_update, no_update, no_update
        number = trigger.get("change")
        return _change(lambda db, actor: prompt_identity.undo(db, actor, number), zone)
    return no_update, no_update, no_update, no_update


@callback(
    Output(f"{PAGE}-rename-from", "options", allow_duplicate=True),
    Input(GRID, "rowData"),
    prevent_initial_call="initial_duplicate",
)
def rename_choices(rows: list[dict[str, Any]] | None) -> list[dict[str, str]]:
    """Offer every prompt name to rename."""
    return [{"label": n, "value": n} for n in _names(rows or [])]
