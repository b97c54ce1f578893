"""The filter bar as one All-in-One component: filters in the URL, saved views, live polling.

FilterBarAIO holds its ids, all pattern-matching dicts keyed by the page, and registers its
callbacks once with MATCH, so every filtered page (and home's live switch) shares them: the
filters write the URL and the state store, the URL's saved views open and save, a bare URL opens
the user's default view, and the poll moves the watermark. The pages read two plain ids the
callbacks keep in step, `<page>-state` (the filters' query) and `<page>-watermark`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import dash
import dash_bootstrap_components as dbc
from dash import (
    MATCH,
    ClientsideFunction,
    Input,
    Output,
    State,
    clientside_callback,
    ctx,
    dcc,
    html,
    no_update,
    set_props,
)
from flask import has_request_context
from flask_login import current_user

from components.live import create_live_status
from services import evaluators, prompt_filters, saved_views
from services.analytics import fact_store
from services.container import get_services
from services.filters import RANGES, STATUSES, FilterState, parse_query
from services.live import LiveState, poll_watermark
from services.saved_views import SavedViewError, ViewEntry
from store.analytics import EvaluatorScore

COMPONENT = "filter-bar"
FILTERS = ("project", "prompt", "versions", "model", "status", "range", "start", "end")
LABELS = {
    "project": "Project",
    "prompt": "Prompt",
    "versions": "Versions",
    "model": "Model",
    "status": "Status",
}


def _id(sub: str, page: Any) -> dict[str, Any]:
    return {"component": COMPONENT, "subcomponent": sub, "aio_id": page}


class FilterBarAIO(html.Div):
    """A page's filter bar, saved views and live controls, wired by callbacks registered once."""

    class ids:
        """The bar's component ids; pass MATCH as the page in a callback serving every page."""

        @staticmethod
        def url(page: Any) -> dict[str, Any]:
            """Return the id of the location the filters are mirrored in (no reload)."""
            return _id("url", page)

        @staticmethod
        def nav(page: Any) -> dict[str, Any]:
            """Return the id of the location that navigates to a saved view's URL."""
            return _id("nav", page)

        @staticmethod
        def filter(page: Any, name: str) -> dict[str, Any]:
            """Return the id of one filter control (project, prompt, ..., start, end)."""
            return _id(name, page)

        @staticmethod
        def custom(page: Any) -> dict[str, Any]:
            """Return the id of the row of custom range inputs."""
            return _id("custom", page)

        @staticmethod
        def evaluator(page: Any) -> dict[str, Any]:
            """Return the id of the store holding the evaluator the URL carries."""
            return _id("evaluator", page)

        @staticmethod
        def state(page: Any) -> dict[str, Any]:
            """Return the id of the store holding the filters' URL query."""
            return _id("state", page)

        @staticmethod
        def default(page: Any) -> dict[str, Any]:
            """Return the id of the store holding the default view's query to open, if any."""
            return _id("default", page)

        @staticmethod
        def views(page: Any) -> dict[str, Any]:
            """Return the id of the saved views dropdown."""
            return _id("views", page)

        @staticmethod
        def view_name(page: Any) -> dict[str, Any]:
            """Return the id of the new view's name input."""
            return _id("view-name", page)

        @staticmethod
        def view_shared(page: Any) -> dict[str, Any]:
            """Return the id of the "share with the team" switch."""
            return _id("view-shared", page)

        @staticmethod
        def view_make_default(page: Any) -> dict[str, Any]:
            """Return the id of the "open this page with it" switch of the save form."""
            return _id("view-make-default", page)

        @staticmethod
        def view_save(page: Any) -> dict[str, Any]:
            """Return the id of the "Save view" button."""
            return _id("view-save", page)

        @staticmethod
        def view_default(page: Any) -> dict[str, Any]:
            """Return the id of the button making the picked view the default."""
            return _id("view-default", page)

        @staticmethod
        def view_delete(page: Any) -> dict[str, Any]:
            """Return the id of the button deleting the picked view."""
            return _id("view-delete", page)

        @staticmethod
        def view_feedback(page: Any) -> dict[str, Any]:
            """Return the id of the line saying what the last view action did."""
            return _id("view-feedback", page)

        @staticmethod
        def poll(page: Any) -> dict[str, Any]:
            """Return the id of the poll timer."""
            return _id("poll", page)

        @staticmethod
        def live(page: Any) -> dict[str, Any]:
            """Return the id of the live (pause and resume) switch."""
            return _id("live", page)

        @staticmethod
        def watermark(page: Any) -> dict[str, Any]:
            """Return the id of the store of the last watermark the poll saw."""
            return _id("watermark", page)

        @staticmethod
        def live_status(page: Any) -> dict[str, Any]:
            """Return the id of the live status line."""
            return _id("live-status", page)

    def __init__(
        self,
        page: str,
        state: FilterState,
        options: dict[str, list[str]],
        problems: Sequence[str] = (),
    ) -> None:
        """Build the bar for a page, showing the URL's filters, its problems and saved views."""
        super().__init__(
            [
                dcc.Location(id=self.ids.url(page), refresh=False),
                # A separate location: the filters' one must not reload the page, this one must
                # (client-side), so that the page is redrawn for the view's filters.
                dcc.Location(id=self.ids.nav(page), refresh="callback-nav"),
                dcc.Store(id=self.ids.state(page), data=state.query_string()),
                dcc.Store(id=self.ids.evaluator(page), data=state.evaluator),
                dcc.Store(
                    id=self.ids.default(page),
                    data=_default_query(page)
                    if not state.query_string() and not problems
                    else None,
                ),
                dbc.Row(
                    [
                        *[
                            _dropdown(
                                page,
                                name,
                                options.get(name, []),
                                _value(state, name),
                                multi=name == "versions",
                            )
                            for name in ("project", "prompt", "versions", "model")
                        ],
                        _dropdown(page, "status", list(STATUSES), state.status),
                        _range_picker(page, state),
                    ],
                    className="g-2 mb-2",
                ),
                create_custom_range(page, state),
                *[
                    dbc.Alert(
                        problem,
                        color="warning",
                        className="py-1 small mb-2",
                        id=f"{page}-filter-problem-{i}",
                    )
                    for i, problem in enumerate(problems)
                ],
                create_views_bar(page, state),
            ],
            className="mb-3",
        )


def _value(state: FilterState, name: str) -> str | list[str] | None:
    if name == "versions":
        return list(state.versions)
    value = getattr(state, name)
    return value if isinstance(value, str) else None


def _with_current(options: list[str], value: str | list[str] | None) -> list[str]:
    current = value if isinstance(value, list) else [value] if value else []
    return options + [v for v in current if v not in options]


def _dropdown(
    page: str,
    name: str,
    options: list[str],
    value: str | list[str] | None,
    multi: bool = False,
) -> dbc.Col:
    return dbc.Col(
        [
            dbc.Label(LABELS[name], className="small mb-1"),
            dcc.Dropdown(
                id=FilterBarAIO.ids.filter(page, name),
                # The URL's value stays selectable even before any synced data has it.
                options=[{"label": o, "value": o} for o in _with_current(options, value)],
                value=value,
                multi=multi,
                placeholder="All",
                clearable=True,
            ),
        ],
        xs=12,
        sm=6,
        lg=2,
    )


def _range_picker(page: str, state: FilterState) -> dbc.Col:
    range_options: list[dict[str, object]] = [{"label": key, "value": key} for key in RANGES]
    range_options.append({"label": "custom", "value": "custom"})
    return dbc.Col(
        [
            dbc.Label("Time range", className="small mb-1"),
            dbc.RadioItems(
                id=FilterBarAIO.ids.filter(page, "range"),
                options=range_options,
                value=state.range,
                inline=True,
                className="pt-1",
            ),
        ],
        xs=12,
        lg=2,
    )


def create_filter_bar(
    page: str, state: FilterState, options: dict[str, list[str]], problems: list[str]
) -> html.Div:
    """Build the filter bar for a page, showing the current state and any ignored values."""
    return FilterBarAIO(page, state, options, problems)


def _input_value(moment: datetime | None) -> str | None:
    """Render a time as a datetime-local input's value, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else None


def create_custom_range(page: str, state: FilterState) -> dbc.Row:
    """Build the start and end inputs (UTC) that the custom time range shows."""
    fields = [
        dbc.Col(
            dbc.InputGroup(
                [
                    dbc.InputGroupText(label),
                    dbc.Input(
                        id=FilterBarAIO.ids.filter(page, name),
                        type="datetime-local",
                        value=_input_value(value),
                        # Typing a date fires once, when the field loses focus or on Enter.
                        debounce=True,
                    ),
                ],
                size="sm",
            ),
            xs=12,
            md=4,
            lg=3,
        )
        for name, label, value in (
            ("start", "From (UTC)", state.start),
            ("end", "To (UTC)", state.end),
        )
    ]
    return dbc.Row(
        fields,
        id=FilterBarAIO.ids.custom(page),
        className="g-2 mb-2",
        style=None if state.range == "custom" else {"display": "none"},
    )


def _signed_in_user() -> tuple[int, str] | None:
    """Return the signed-in user's id and role, or None outside a signed-in request."""
    if not has_request_context() or not current_user.is_authenticated:
        return None
    return int(current_user.id), str(current_user.role)


def _visible_views(page: str) -> list[ViewEntry]:
    user = _signed_in_user()
    if user is None:
        return []
    with get_services().sessions() as db:
        return saved_views.list_for(db, user[0], page)


def _default_query(page: str) -> str | None:
    """Return the query of the user's default view of the page, if it names any filters."""
    user = _signed_in_user()
    if user is None:
        return None
    with get_services().sessions() as db:
        view = saved_views.default_for(db, user[0], page)
    return view.query if view is not None and view.query else None


def view_options(views: Sequence[ViewEntry]) -> list[dict[str, Any]]:
    """List views as dropdown choices: the user's own, then the team's, with the owner named."""
    return [
        {
            "label": (
                f"{v.name} (shared)"
                if v.mine and v.shared
                else v.name
                if v.mine
                else f"{v.name} · {v.owner_name}"
            ),
            "value": v.id,
        }
        for v in views
    ]


def create_views_bar(page: str, state: FilterState) -> dbc.Row:
    """Build the "Views" picker and the form saving the current filters as a view."""
    views = _visible_views(page)
    user = _signed_in_user()
    current = state.query_string()
    # The view these filters are, if any, so it can be made the default once opened.
    picked = next((v.id for v in views if v.query == current), None)
    can_share = user is not None and user[1] in saved_views.SHARERS
    ids = FilterBarAIO.ids
    return dbc.Row(
        [
            dbc.Col(
                dbc.InputGroup(
                    [
                        dbc.InputGroupText("Views", className="small"),
                        dcc.Dropdown(
                            id=ids.views(page),
                            options=view_options(views),
                            value=picked,
                            placeholder="Open a saved view",
                            clearable=True,
                            className="flex-grow-1",
                        ),
                        dbc.Button(
                            "Set as default",
                            id=ids.view_default(page),
                            size="sm",
                            color="secondary",
                            outline=True,
                        ),
                        dbc.Button(
                            "Delete",
                            id=ids.view_delete(page),
                            size="sm",
                            color="danger",
                            outline=True,
                        ),
                    ],
                    size="sm",
                    className="flex-nowrap",
                ),
                xs=12,
                lg=5,
            ),
            dbc.Col(
                dbc.InputGroup(
                    [
                        dbc.Input(
                            id=ids.view_name(page),
                            placeholder="Name these filters",
                            maxLength=saved_views.MAX_NAME_LENGTH,
                            size="sm",
                        ),
                        dbc.InputGroupText(
                            dbc.Checkbox(
                                id=ids.view_shared(page),
                                label="Share with team",
                                value=False,
                                # Sharing is for members and admins; the service checks it too.
                                disabled=not can_share,
                            ),
                            className="small",
                        ),
                        dbc.InputGroupText(
                            dbc.Checkbox(
                                id=ids.view_make_default(page), label="My default", value=False
                            ),
                            className="small",
                        ),
                        dbc.Button("Save view", id=ids.view_save(page), size="sm"),
                    ],
                    size="sm",
                    className="flex-nowrap",
                ),
                xs=12,
                lg=5,
            ),
            dbc.Col(html.Div(id=ids.view_feedback(page), className="small"), xs=12, lg=2),
        ],
        className="g-2 mb-2 align-items-center",
    )


def create_live_controls(page: str, interval_s: int, live: LiveState) -> html.Div:
    """Build the poll timer, the watermark stores, the pause switch and the status line."""
    ids = FilterBarAIO.ids
    return html.Div(
        [
            dcc.Interval(id=ids.poll(page), interval=interval_s * 1000),
            # Seeded with what the layout saw: the first poll comes one interval later and
            # redraws only if new data arrived meanwhile.
            dcc.Store(id=ids.watermark(page), data=live.watermark),
            # The page's own callbacks listen to this one; the poll keeps it in step.
            dcc.Store(id=f"{page}-watermark", data=live.watermark),
            dbc.Switch(id=ids.live(page), label="Live", value=True, className="mb-0 me-3"),
            html.Span(
                create_live_status(live, paused=False),
                id=ids.live_status(page),
                className="small text-body-secondary",
            ),
        ],
        className="d-flex align-items-center",
    )


def create_page_header(page: str, title: str, poll_interval_s: int, live: LiveState) -> html.Div:
    """Build a page's title row with its live controls."""
    return html.Div(
        [
            html.H2(title, className="h4 mb-0 me-auto"),
            create_live_controls(page, poll_interval_s, live),
        ],
        className="d-flex align-items-center mb-3",
    )


def create_filtered_page_top(
    page: str,
    title: str,
    state: FilterState,
    options: dict[str, list[str]],
    problems: list[str],
    poll_interval_s: int,
    live: LiveState,
) -> list[Any]:
    """Build the header, filter bar, state store and message slot a filtered page starts with."""
    return [
        create_page_header(page, title, poll_interval_s, live),
        FilterBarAIO(page, state, options, problems),
        # The page's callbacks listen to this one; the bar's callbacks keep it in step.
        dcc.Store(id=f"{page}-state", data=state.query_string()),
        html.Div(id=f"{page}-message"),
    ]


def create_empty_notice(page: str, message: str | None, empty: bool, what: str) -> Any:
    """Say why a page shows nothing: an unknown filter value, or no matching data yet."""
    if not message and not empty:
        return None
    text = message or f"No {what} match these filters yet."
    return dbc.Alert(text, color="info", id=f"{page}-empty")


def create_evaluator_picker(page: str, evaluator: str | None) -> dbc.Row:
    """Build the picker of the evaluator the score cards show, kept in the URL as evaluator=.

    Empty means the evaluator with the most annotations; the page fills the choices (and says
    which one that is in the placeholder) once it knows the data.
    """
    return dbc.Row(
        [
            dbc.Col(
                dbc.InputGroup(
                    [
                        dbc.InputGroupText("Evaluator", className="small"),
                        dcc.Dropdown(
                            id=f"{page}-filter-evaluator",
                            options=[{"label": evaluator, "value": evaluator}] if evaluator else [],
                            value=evaluator,
                            placeholder="the one with the most annotations",
                            clearable=True,
                            className="flex-grow-1",
                        ),
                    ],
                    size="sm",
                    className="flex-nowrap",
                ),
                xs=12,
                md=6,
                lg=4,
            ),
            dbc.Col(html.Div(id=f"{page}-evaluator-message"), xs=12, md=6, lg=8),
        ],
        className="g-2 mb-2 align-items-center",
    )


def evaluator_picker_outputs(
    page: str, scores: Sequence[EvaluatorScore], wanted: str | None
) -> tuple[list[dict[str, str]], str, Any]:
    """Fill the picker: the evaluators here, the default named, and a note if the URL's is not."""
    choice = evaluators.choose(scores, wanted)
    default = evaluators.default_evaluator(scores)
    placeholder = f"{default} (most annotations)" if default else "no evaluations"
    note = (
        dbc.Alert(
            choice.message,
            color="warning",
            className="py-1 small mb-0",
            id=f"{page}-evaluator-problem",
        )
        if choice.message
        else None
    )
    return evaluators.options(scores, wanted), placeholder, note


def state_from_search(search: str | None) -> FilterState:
    """Read the filter state from a URL query string."""
    return parse_query(_query_dict(search))[0]


def _query_dict(search: str | None) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}


def _page() -> str:
    """Name the page whose bar fired the running callback (its ids' aio_id)."""
    outputs = ctx.outputs_list
    first = outputs[0] if isinstance(outputs, list) else outputs
    return str(first["id"]["aio_id"])


def _utc(value: str | None) -> str | None:
    """Mark a custom range input's value as UTC, as its label says, whatever the URL's tz."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the parser says why it is ignored
    return value if moment.tzinfo else f"{value}+00:00"


def filters_to_url(*values: Any) -> tuple[Any, Any]:
    """Write the filters into the URL, so the view can be shared, and into the state stores."""
    *chosen, evaluator, current = values
    picked = dict(zip(FILTERS, chosen, strict=True))
    previous = state_from_search(current)
    # The same parser as a typed-in URL, so the bar cannot produce what a link would refuse;
    # the evaluator and time zone are carried along as the URL has them.
    state = parse_query(
        {
            **picked,
            "versions": ",".join(picked["versions"] or ()),
            "start": _utc(picked["start"]),
            "end": _utc(picked["end"]),
            "evaluator": evaluator,
            "tz": previous.tz,
        }
    )[0]
    if state == previous:
        return no_update, no_update
    query = state.query_string()
    set_props(f"{_page()}-state", {"data": query})
    return query or "?", query


def versions_for_prompt(prompt: str | None, chosen: list[str] | None) -> list[str]:
    """Offer only the chosen prompt's versions, keeping any already picked."""
    with get_services().sessions() as db:
        versions = prompt_filters.filter_options(db, fact_store(), prompt)["versions"]
    return versions + [v for v in chosen or [] if v not in versions]


def poll(_n: int | None, live: bool, seen: int | None) -> tuple[Any, Any]:
    """Check our database for new data; the page's redraws follow only when it moved."""
    mark, state = poll_watermark(live, seen)
    if mark is not None:
        set_props(f"{_page()}-watermark", {"data": mark})
    return (no_update if mark is None else mark), create_live_status(state, paused=not live)


def open_view(view_id: int | None, current: str | None) -> Any:
    """Open the picked view: navigate to its page with its filters."""
    user = _signed_in_user()
    if view_id is None or user is None:
        return no_update
    page = _page()
    try:
        with get_services().sessions() as db:
            view = saved_views.get(db, user[0], int(view_id))
    except SavedViewError as exc:
        set_props(FilterBarAIO.ids.view_feedback(page), {"children": _feedback(str(exc), ok=False)})
        return no_update
    if view.page != page or view.query == (current or ""):
        return no_update
    return dash.get_relative_path(view.path)


def _feedback(text: str, *, ok: bool) -> html.Span:
    return html.Span(text, className="text-success" if ok else "text-danger")


def view_action(
    _save: int | None,
    _default: int | None,
    _delete: int | None,
    name: str | None,
    shared: bool | None,
    make_default: bool | None,
    current: str | None,
    picked: int | None,
) -> tuple[Any, Any, Any]:
    """Save the filters as a view, make the picked view the default, or delete it."""
    page = _page()
    user = _signed_in_user()
    if user is None:
        return _feedback("Sign in to save views.", ok=False), no_update, no_update
    action = ctx.triggered_id["subcomponent"] if isinstance(ctx.triggered_id, dict) else None
    value: Any = no_update
    try:
        with get_services().sessions.begin() as db:
            if action == "view-save":
                view = saved_views.save(db, user[0], page, name or "", current, bool(shared))
                if make_default:
                    saved_views.set_default(db, user[0], page, view.id)
                value = view.id if view.query == (current or "") else no_update
                text = f"Saved {view.name!r}" + (" as your default." if make_default else ".")
            elif picked is None:
                raise SavedViewError("Pick a view first.")
            elif action == "view-default":
                saved_views.set_default(db, user[0], page, int(picked))
                text = "This page now opens with that view."
            else:
                saved_views.delete(db, user[0], int(picked))
                value, text = None, "Deleted the view."
    except SavedViewError as exc:
        return _feedback(str(exc), ok=False), no_update, no_update
    return _feedback(text, ok=True), view_options(_visible_views(page)), value


# Opens the default view in place of the bare URL (replace, not push: Back leaves the page),
# then tells the locations, Pages' router among them, that the URL changed.
OPEN_DEFAULT = """
function (query) {
    if (query && !window.location.search) {
        window.history.replaceState({}, "", window.location.pathname + query);
        window.dispatchEvent(new CustomEvent("_dashprivate_pushstate"));
    }
    return window.dash_clientside.no_update;
}
"""


def register_callbacks() -> None:
    """Register the bar's callbacks, once for every page of the app being built."""
    # Pages run their modules for each app; the first page to ask registers, the rest find the
    # callbacks waiting for the app (Dash moves them over when it starts serving).
    from dash._callback import GLOBAL_CALLBACK_LIST

    if any(f'"{COMPONENT}"' in str(spec.get("output")) for spec in GLOBAL_CALLBACK_LIST):
        return
    ids = FilterBarAIO.ids
    dash.callback(
        Output(ids.url(MATCH), "search"),
        Output(ids.state(MATCH), "data"),
        *[Input(ids.filter(MATCH, name), "value") for name in FILTERS],
        Input(ids.evaluator(MATCH), "data"),
        State(ids.state(MATCH), "data"),
        prevent_initial_call=True,
    )(filters_to_url)
    # A function from assets/filters.js, not inline code, so the CSP needs no hash for it.
    clientside_callback(
        ClientsideFunction(namespace="filters", function_name="customRangeStyle"),
        Output(ids.custom(MATCH), "style"),
        Input(ids.filter(MATCH, "range"), "value"),
        prevent_initial_call=True,
    )
    dash.callback(
        Output(ids.filter(MATCH, "versions"), "options"),
        Input(ids.filter(MATCH, "prompt"), "value"),
        State(ids.filter(MATCH, "versions"), "value"),
        prevent_initial_call=True,
    )(versions_for_prompt)
    dash.callback(
        Output(ids.watermark(MATCH), "data"),
        Output(ids.live_status(MATCH), "children"),
        Input(ids.poll(MATCH), "n_intervals"),
        Input(ids.live(MATCH), "value"),
        State(ids.watermark(MATCH), "data"),
        # The layout drew the status; the first poll comes one interval later.
        prevent_initial_call=True,
    )(poll)
    dash.callback(
        Output(ids.nav(MATCH), "href"),
        Input(ids.views(MATCH), "value"),
        State(ids.state(MATCH), "data"),
        prevent_initial_call=True,
    )(open_view)
    dash.callback(
        Output(ids.view_feedback(MATCH), "children"),
        Output(ids.views(MATCH), "options"),
        Output(ids.views(MATCH), "value"),
        Input(ids.view_save(MATCH), "n_clicks"),
        Input(ids.view_default(MATCH), "n_clicks"),
        Input(ids.view_delete(MATCH), "n_clicks"),
        State(ids.view_name(MATCH), "value"),
        State(ids.view_shared(MATCH), "value"),
        State(ids.view_make_default(MATCH), "value"),
        State(ids.state(MATCH), "data"),
        State(ids.views(MATCH), "value"),
        prevent_initial_call=True,
    )(view_action)
    clientside_callback(
        OPEN_DEFAULT,
        Output(ids.default(MATCH), "clear_data"),
        Input(ids.default(MATCH), "data"),
    )
