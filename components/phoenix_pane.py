"""An embedded Phoenix view, served same-origin through the dashboard's /phoenix proxy."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

PHOENIX_PREFIX = "/phoenix"


def phoenix_href(path: str) -> str:
    """Return the dashboard URL of a Phoenix UI path."""
    return f"{PHOENIX_PREFIX}/{path.lstrip('/')}"


def create_phoenix_pane(pane_id: str, path: str, title: str, height_px: int = 640) -> dbc.Card:
    """Build a card with a Phoenix view in an iframe and an "Open in Phoenix" link."""
    href = phoenix_href(path)
    return dbc.Card(
        [
            dbc.CardHeader(
                [
                    html.Span(title, className="fw-semibold"),
                    html.A(
                        [html.I(className="bi bi-box-arrow-up-right me-1"), "Open in Phoenix"],
                        href=href,
                        target="_blank",
                        rel="noopener",
                        className="small",
                        id=f"{pane_id}-open",
                    ),
                ],
                className="d-flex justify-content-between align-items-center",
            ),
            html.Iframe(
                src=href,
                id=f"{pane_id}-frame",
                title=title,
                style={"width": "100%", "height": f"{height_px}px", "border": "0"},
            ),
        ],
        id=pane_id,
    )
