"""The page shell: navbar, Phoenix status banner, display settings and the page container."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, State, dcc, html
from dash.development.base_component import Component

THEME_CHOICES = [
    {"label": "Auto (follow the system)", "value": "auto"},
    {"label": "Light", "value": "light"},
    {"label": "Dark", "value": "dark"},
]


def create_alerts_badge(firing: int) -> html.Span:
    """Show how many monitors fire, in the navbar; nothing while none does."""
    return html.Span(
        f"{firing:,}" if firing else "",
        id="nav-alerts-badge",
        className="badge rounded-pill text-bg-danger ms-1" if firing else "d-none",
        title=f"{firing} monitor{'s' if firing != 1 else ''} firing" if firing else None,
    )


def create_nav_links(
    pages: Iterable[Mapping[str, Any]], *, phoenix_enabled: bool, firing: int = 0
) -> list[Any]:
    """Build a nav link per registered page, hiding Phoenix pages when the flag is off."""
    links = []
    for page in sorted(pages, key=lambda p: (p.get("order") or 0, p["name"])):
        if page.get("needs_phoenix") and not phoenix_enabled:
            continue
        icon = html.I(className=f"bi {page.get('icon', 'bi-circle')} me-1")
        module = page["module"].rsplit(".", 1)[-1]
        badge = (
            [html.Span(create_alerts_badge(firing), id="nav-alerts-slot")]
            if module == "alerts"
            else []
        )
        links.append(
            dbc.NavItem(
                dbc.NavLink(
                    [icon, page["name"], *badge],
                    href=page["relative_path"],
                    active="exact",
                    id=f"nav-{page['module'].rsplit('.', 1)[-1]}",
                )
            )
        )
    return links


def create_logout_form(
    csrf_token: str, *, label: str = "Sign out", action: str = "/logout", id: str = "nav-logout"
) -> html.Form:
    """Build a sign-out menu entry: a POST with the CSRF token, as every change is."""
    return html.Form(
        [
            dcc.Input(type="hidden", name="csrf_token", value=csrf_token),
            html.Button(label, type="submit", className="dropdown-item", id=id),
        ],
        action=action,
        method="POST",
    )


def create_navbar(
    pages: Iterable[Mapping[str, Any]],
    *,
    phoenix_enabled: bool,
    user_name: str,
    csrf_token: str,
    firing: int = 0,
) -> dbc.Navbar:
    """Build the top navbar with the pages and the signed-in user."""
    user_menu = dbc.DropdownMenu(
        [
            dbc.DropdownMenuItem(
                [html.I(className="bi bi-sliders me-1"), "Display settings"],
                id="nav-settings-open",
                n_clicks=0,
            ),
            dbc.DropdownMenuItem(divider=True),
            create_logout_form(csrf_token),
            create_logout_form(
                csrf_token,
                label="Sign out everywhere",
                action="/logout/everywhere",
                id="nav-logout-everywhere",
            ),
        ],
        label=html.Span([html.I(className="bi bi-person-circle me-1"), user_name]),
        nav=True,
        align_end=True,
        id="nav-user",
    )
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand(
                    [html.I(className="bi bi-graph-up-arrow me-2"), "Prompt Analytics"], href="/"
                ),
                dbc.Nav(
                    create_nav_links(pages, phoenix_enabled=phoenix_enabled, firing=firing),
                    className="me-auto",
                    navbar=True,
                ),
                dbc.Nav([user_menu], navbar=True),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )


def create_display_settings(
    theme: str, timezone: str | None, zones: list[dict[str, str]], *, signed_in: bool
) -> list[Component]:
    """Build the user's display settings: the values assets/theme.js applies, and their dialog."""
    # assets/theme.js reads these attributes: the colour mode to set on <html>, and the zone
    # the grid shows times in (empty: the browser's, which it then saves once).
    attributes: dict[str, Any] = {
        "data-theme": theme,
        "data-timezone": timezone or "",
        "data-signed-in": "true" if signed_in else "false",
    }
    values = html.Div(id="user-display", hidden=True, **attributes)
    dialog = dbc.Modal(
        [
            dbc.ModalHeader(dbc.ModalTitle("Display settings")),
            dbc.ModalBody(
                [
                    dbc.Label("Theme", html_for="settings-theme"),
                    dbc.RadioItems(
                        id="settings-theme", options=THEME_CHOICES, value=theme, className="mb-3"
                    ),
                    dbc.Label("Time zone", html_for="settings-timezone"),
                    dcc.Dropdown(
                        id="settings-timezone",
                        options=zones,
                        value=timezone or "",
                        searchable=True,
                        clearable=False,
                        placeholder="Browser default",
                    ),
                    html.Div(
                        "Charts, tables and day and hour buckets use this zone; a tz= in the "
                        "URL overrides it. CSV exports keep ISO 8601 times with their offset.",
                        className="form-text",
                    ),
                    html.Div(id="settings-status", className="small mt-2", role="status"),
                ]
            ),
            dbc.ModalFooter(dbc.Button("Save", id="settings-save", color="primary", n_clicks=0)),
        ],
        id="settings-modal",
        is_open=False,
    )
    return [values, dialog]


def create_shell(
    navbar: Component,
    poll_interval_s: int = 5,
    settings: list[Component] | None = None,
) -> html.Div:
    """Wrap the navbar and the current page; the alerts badge polls our database."""
    return html.Div(
        [
            dcc.Location(id="shell-location"),
            dcc.Interval(id="shell-alerts-poll", interval=poll_interval_s * 1000),
            navbar,
            *(settings or []),
            dbc.Container(dash.page_container, fluid=True, className="pb-4"),
        ]
    )


def init_app(app: Dash) -> None:
    """Register the display settings' clientside callbacks (assets/theme.js)."""
    # On the app, not at import: a module-level registration would reach only the first app.
    app.clientside_callback(
        ClientsideFunction(namespace="theme", function_name="openSettings"),
        Output("settings-modal", "is_open"),
        Input("nav-settings-open", "n_clicks"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction(namespace="theme", function_name="saveSettings"),
        Output("settings-status", "children"),
        Input("settings-save", "n_clicks"),
        State("settings-theme", "value"),
        State("settings-timezone", "value"),
        prevent_initial_call=True,
    )
