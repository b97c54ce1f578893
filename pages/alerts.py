"""Alerts: every regression monitor with its state, both sides' numbers and sparkline, and its
history; members and admins create, edit, pause and delete monitors and channels."""

from __future__ import annotations

from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, ctx, dcc, html, no_update
from flask_login import current_user

from components.alerts import channel_form, channel_list, monitor_card, monitor_form
from components.colors import prompt_catalogue
from components.shell import create_alerts_badge
from services import monitors, prompt_filters
from services.container import get_services
from services.filters import FilterState, parse_query, time_zone
from services.monitor_rules import MonitorError, load_spec
from services.monitor_stats import METHODS
from services.user_settings import display_zone

dash.register_page(
    __name__,
    path="/alerts",
    name="Alerts",
    title="Alerts · Prompt Analytics",
    order=50,
    icon="bi-bell",
)
PAGE = "alerts"
WRITERS = frozenset({"member", "admin"})
FORM_FIELDS = (
    "name",
    "prompt",
    "project",
    "metric",
    "evaluator",
    "label",
    "rule",
    "higher",
    "candidate",
    "baseline",
    "window",
    "samples",
    "effect",
    "effect-unit",
    "threshold",
    "channels",
)
FORM_PROPS = {"prompt": "value", "metric": "value", "rule": "value", "effect-unit": "value"}


def _can_write() -> bool:
    """Tell whether the signed-in user may change monitors (checked again on every change)."""
    return bool(current_user.is_authenticated and current_user.role in WRITERS)


def _monitor_list(can_write: bool, zone: str) -> Any:
    """Build every monitor's card, firing first, times in `zone`, versions in their colours."""
    with get_services().sessions() as db:
        views = monitors.list_monitors(db)
        catalogue = prompt_catalogue(prompt_filters.prompt_names(db))
        cards = [
            monitor_card(
                view,
                monitors.points(db, view.id),
                monitors.events(db, view.id),
                can_write=can_write,
                zone=zone,
                catalogue=catalogue,
            )
            for view in views
        ]
    if not cards:
        return dbc.Alert(
            "No monitors yet." + (" Create one below." if can_write else ""),
            color="info",
            id=f"{PAGE}-empty",
        )
    return cards


def _channels(can_write: bool) -> Any:
    """List the channels."""
    with get_services().sessions() as db:
        return channel_list(monitors.list_channels(db), can_write=can_write)


def layout(**query: str) -> html.Div:
    """Render the monitors, the methods they use, and the forms for writers.

    Times are in the display zone: the URL's tz=, else the user's setting.
    """
    can_write = _can_write()
    zone = display_zone(parse_query(query)[0])
    with get_services().sessions() as db:
        prompts = prompt_filters.prompt_names(db).names()
        channels = monitors.list_channels(db)
    methods = html.Details(
        [
            html.Summary("How monitors decide", className="small"),
            html.Ul(
                [html.Li(f"{kind}: {text}") for kind, text in METHODS.items()], className="small"
            ),
            html.P(
                "A monitor looks again after every sync tick that brought data, and once a "
                "minute. Fixed-sample 95 % intervals looked at that often would fire on "
                "identical versions far more than 1 time in 20; these intervals hold at every "
                "look at once (always-valid), so they do not. It notifies when it starts firing "
                "and when it stops, once per channel.",
                className="small mb-0",
            ),
        ],
        className="mb-3",
    )
    children: list[Any] = [
        html.H2("Alerts", className="h4 mb-2"),
        methods,
        dcc.Store(id=f"{PAGE}-changed", data=0),
        dcc.Store(id=f"{PAGE}-editing"),
        dcc.Store(id=f"{PAGE}-zone", data=zone),
        dcc.Interval(id=f"{PAGE}-poll", interval=get_services().settings.poll_interval_s * 1000),
        html.Div(id=f"{PAGE}-message"),
        html.Div(_monitor_list(can_write, zone), id=f"{PAGE}-monitors"),
        html.H3("Channels", className="h6 text-body-secondary mt-3"),
        html.Div(channel_list(channels, can_write=can_write), id=f"{PAGE}-channels"),
    ]
    # The forms stay in the layout for everyone (the callbacks name them), hidden from viewers;
    # every change checks the role again on the server.
    admin = can_write and current_user.role == "admin"
    forms = html.Div(
        [
            html.Div(channel_form(), style=None if admin else {"display": "none"}),
            monitor_form(prompts, channels),
        ],
        style=None if can_write else {"display": "none"},
    )
    if not can_write:
        children.append(
            dbc.Alert(
                "Viewers see monitors; members and admins create and change them.",
                color="secondary",
                id=f"{PAGE}-read-only",
            )
        )
    return html.Div([*children, forms])


@callback(
    Output(f"{PAGE}-monitors", "children"),
    Input(f"{PAGE}-poll", "n_intervals"),
    Input(f"{PAGE}-changed", "data"),
    State(f"{PAGE}-zone", "data"),
    prevent_initial_call=True,
)
def refresh(_n: int | None, _changed: int | None, zone: str | None) -> Any:
    """Redraw the monitors from our database (the sync worker evaluates them, not the page)."""
    return _monitor_list(_can_write(), time_zone(zone, []) or display_zone(FilterState()))


@callback(
    Output("nav-alerts-slot", "children"),
    Input("shell-alerts-poll", "n_intervals"),
    prevent_initial_call=True,
)
def badge(_n: int | None) -> Any:
    """Keep the navbar's badge current on every page."""
    if not current_user.is_authenticated:
        return no_update
    with get_services().sessions() as db:
        return create_alerts_badge(monitors.firing_count(db))


def _message(text: str, color: str) -> dbc.Alert:
    """Say what a change did, or why it did not happen."""
    return dbc.Alert(text, color=color, dismissable=True, className="py-2")


def _form_spec(values: dict[str, Any]) -> dict[str, Any]:
    """Turn the form's values into a monitor definition for services/monitor_rules.py."""
    spec = {
        "name": values["name"],
        "prompt": values["prompt"],
        "project": values["project"],
        "metric": values["metric"],
        "evaluator": values["evaluator"],
        "label": values["label"],
        "rule": values["rule"],
        "higher_is_bad": bool(values["higher"]),
        "candidate": values["candidate"],
        "baseline": values["baseline"],
        "window_hours": values["window"],
        "min_samples": values["samples"],
        "min_effect": values["effect"],
        "min_effect_unit": values["effect-unit"],
        "threshold": values["threshold"],
        "channels": values["channels"] or [],
    }
    return {k: v for k, v in spec.items() if v is not None}


@callback(
    Output(f"{PAGE}-message", "children"),
    Output(f"{PAGE}-changed", "data"),
    Output(f"{PAGE}-editing", "data"),
    Output(f"{PAGE}-channels", "children"),
    Input(f"{PAGE}-save", "n_clicks"),
    Input({"type": f"{PAGE}-action", "action": ALL, "monitor": ALL}, "n_clicks"),
    Input(f"{PAGE}-c-add", "n_clicks"),
    Input({"type": f"{PAGE}-test", "channel": ALL}, "n_clicks"),
    State(f"{PAGE}-editing", "data"),
    State(f"{PAGE}-changed", "data"),
    *[State(f"{PAGE}-f-{name}", FORM_PROPS.get(name, "value")) for name in FORM_FIELDS],
    State(f"{PAGE}-c-name", "value"),
    State(f"{PAGE}-c-kind", "value"),
    State(f"{PAGE}-c-target", "value"),
    State(f"{PAGE}-c-secret", "value"),
    prevent_initial_call=True,
)
def change(
    _save: int | None,
    _actions: list[int | None],
    _add: int | None,
    _tests: list[int | None],
    editing: int | None,
    changed: int | None,
    *values: Any,
) -> tuple[Any, Any, Any, Any]:
    """Apply the button that was pressed: save, pause/resume/edit/delete, add or test a channel."""
    trigger = ctx.triggered_id
    if not ctx.triggered or not ctx.triggered[0].get("value"):
        return no_update, no_update, no_update, no_update  # a redraw added buttons: no click
    if not _can_write():
        return (
            _message("Viewers cannot change monitors.", "danger"),
            no_update,
            no_update,
            no_update,
        )
    form = dict(zip(FORM_FIELDS, values[: len(FORM_FIELDS)], strict=True))
    c_name, c_kind, c_target, c_secret = values[len(FORM_FIELDS) :]
    services = get_services()
    bump = (changed or 0) + 1
    try:
        with services.sessions.begin() as db:
            actor = current_user.email
            if trigger == f"{PAGE}-save":
                spec = _form_spec(form)
                if editing:
                    view = monitors.update_monitor(db, int(editing), spec)
                    return _message(f"Saved {view.name!r}.", "success"), bump, None, no_update
                view = monitors.create(db, actor, spec)
                return (
                    _message(f"Created {view.name!r}; the next sync tick evaluates it.", "success"),
                    bump,
                    None,
                    no_update,
                )
            if trigger == f"{PAGE}-c-add":
                if current_user.role != "admin":
                    raise MonitorError("Only admins add notification channels.")
                channel = monitors.create_channel(
                    db,
                    actor,
                    {
                        "name": c_name,
                        "kind": c_kind,
                        "target": c_target or "",
                        "secret": c_secret or "",
                    },
                    services.settings,
                )
                return (
                    _message(f"Added the channel {channel.name!r}.", "success"),
                    bump,
                    no_update,
                    channel_list(monitors.list_channels(db), can_write=True),
                )
            if isinstance(trigger, dict) and trigger.get("type") == f"{PAGE}-test":
                monitors.send_test(db, int(trigger["channel"]), services.settings, actor)
                return (
                    _message(
                        "Test notification queued: it goes out within a sync interval.", "info"
                    ),
                    no_update,
                    no_update,
                    no_update,
                )
            if isinstance(trigger, dict) and trigger.get("type") == f"{PAGE}-action":
                monitor_id = int(trigger["monitor"])
                action = trigger.get("action")
                if action == "delete":
                    monitors.delete_monitor(db, monitor_id)
                    return _message("Deleted the monitor.", "success"), bump, None, no_update
                if action in ("pause", "resume"):
                    view = monitors.set_paused(db, monitor_id, action == "pause")
                    verb = "Paused" if view.paused else "Resumed"
                    return _message(f"{verb} {view.name!r}.", "success"), bump, no_update, no_update
                if action == "edit":
                    return (
                        _message("Editing: change the form below and save.", "info"),
                        no_update,
                        monitor_id,
                        no_update,
                    )
    except MonitorError as exc:
        return _message(str(exc), "warning"), no_update, no_update, no_update
    except monitors.NotFound as exc:
        return _message(str(exc), "warning"), bump, None, no_update
    return no_update, no_update, no_update, no_update


@callback(
    *[Output(f"{PAGE}-f-{name}", FORM_PROPS.get(name, "value")) for name in FORM_FIELDS],
    Output(f"{PAGE}-form-title", "children"),
    Input(f"{PAGE}-editing", "data"),
    Input(f"{PAGE}-clear", "n_clicks"),
    prevent_initial_call=True,
)
def fill_form(editing: int | None, _clear: int | None) -> tuple[Any, ...]:
    """Load a monitor into the form to edit it, or clear the form."""
    if ctx.triggered_id == f"{PAGE}-clear" or not editing:
        defaults = {
            "metric": "p95_ms",
            "rule": "relative",
            "higher": ["yes"],
            "candidate": "newest",
            "baseline": "previous",
            "window": 24,
            "samples": 100,
            "effect": 10,
            "effect-unit": "percent",
            "channels": [],
        }
        return (*[defaults.get(name) for name in FORM_FIELDS], "New monitor")
    with get_services().sessions() as db:
        try:
            view = monitors.get(db, int(editing))
        except monitors.NotFound:
            return (*[no_update for _ in FORM_FIELDS], "New monitor")
    spec = load_spec(view.spec.to_json())
    values = {
        "name": spec.name,
        "prompt": spec.prompt,
        "project": spec.project,
        "metric": spec.metric,
        "evaluator": spec.evaluator,
        "label": spec.label,
        "rule": spec.rule,
        "higher": ["yes"] if spec.higher_is_bad else [],
        "candidate": spec.candidate,
        "baseline": spec.baseline,
        "window": spec.window_hours,
        "samples": spec.min_samples,
        "effect": spec.min_effect,
        "effect-unit": spec.min_effect_unit,
        "threshold": spec.threshold,
        "channels": list(spec.channels),
    }
    return (*[values[name] for name in FORM_FIELDS], f"Edit monitor {spec.name!r}")
