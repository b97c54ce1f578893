"""The page shell: navbar, Phoenix status banner and the page container."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from dash.development.base_component import Component


def create_nav_links(pages: Iterable[Mapping[str, Any]], *, phoenix_enabled: bool) -> list[Any]:
    """Build a nav link per registered page, hiding Phoenix pages when the flag is off."""
    links = []
    for page in sorted(pages, key=lambda p: (p.get("order") or 0, p["name"])):
        if page.get("needs_phoenix") and not phoenix_enabled:
            continue
        icon = html.I(className=f"bi {page.get('icon', 'bi-circle')} me-1")
        links.append(
            dbc.NavItem(
                dbc.NavLink(
                    [icon, page["name"]],
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
) -> dbc.Navbar:
    """Build the top navbar with the pages and the signed-in user."""
    user_menu = dbc.DropdownMenu(
        [
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
                    create_nav_links(pages, phoenix_enabled=phoenix_enabled),
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


def create_shell(navbar: Component) -> html.Div:
    """Wrap the navbar and the current page."""
    return html.Div(
        [
            dcc.Location(id="shell-location"),
            navbar,
            dbc.Container(dash.page_container, fluid=True, className="pb-4"),
        ]
    )
