"""Home's list of saved views: the user's own and the team's, each a link to its page."""

from __future__ import annotations

from collections.abc import Sequence

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html
from flask import has_request_context
from flask_login import current_user

from services import saved_views
from services.container import get_services
from services.saved_views import ViewEntry


def _view_list(prefix: str, title: str, views: Sequence[ViewEntry], empty: str) -> dbc.Col:
    """List views by page, each a link that opens the page with the view's filters."""
    items: list[html.Li] = []
    for page in saved_views.PAGES:
        for view in (v for v in views if v.page == page):
            owner = "" if view.mine else f" · {view.owner_name}"
            items.append(
                html.Li(
                    [
                        html.Span(page.capitalize(), className="text-body-secondary me-2"),
                        dcc.Link(view.name, href=dash.get_relative_path(view.path)),
                        html.Span(
                            (" (shared)" if view.mine and view.shared else "") + owner,
                            className="text-body-secondary small",
                        ),
                    ],
                    id=f"{prefix}-view-{view.id}",
                )
            )
    body = (
        html.Ul(items, className="list-unstyled mb-0")
        if items
        else html.P(empty, className="text-body-secondary small mb-0")
    )
    return dbc.Col([html.H4(title, className="h6"), body], md=6)


def create_saved_views(prefix: str) -> html.Div:
    """Build the "Your views" and "Team views" lists of the signed-in user."""
    views: list[ViewEntry] = []
    if has_request_context() and current_user.is_authenticated:
        with get_services().sessions() as db:
            views = saved_views.list_all(db, int(current_user.id))
    return html.Div(
        [
            html.H3("Saved views", className="h6 text-body-secondary"),
            dbc.Row(
                [
                    _view_list(
                        f"{prefix}-own",
                        "Your views",
                        [v for v in views if v.mine],
                        "None yet: name a page's filters with its Save view control.",
                    ),
                    _view_list(
                        f"{prefix}-team",
                        "Team views",
                        [v for v in views if not v.mine],
                        "No one has shared a view yet.",
                    ),
                ],
                className="g-3",
            ),
        ],
        id=f"{prefix}-saved-views",
        className="mb-3",
    )
