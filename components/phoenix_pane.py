"""An embedded Phoenix view, served same-origin through the dashboard's /phoenix proxy."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

PHOENIX_PREFIX = "/phoenix"


def pane_widths(open_: bool) -> tuple[int, int, str]:
    """Return (table lg, pane lg, pane class): the table takes the row until a pane opens."""
    return (6, 6, "") if open_ else (12, 12, "d-none")


def phoenix_href(path: str) -> str:
    """Return the dashboard URL of a Phoenix UI path."""
    return f"{PHOENIX_PREFIX}/{path.lstrip('/')}"


def create_skeleton(pane_id: str) -> html.Div:
    """Build the grey placeholder shown until the Phoenix view has loaded."""
    widths = (7, 4, 9, 6, 8, 5)
    hidden: dict[str, Any] = {"aria-hidden": "true"}
    return html.Div(
        [html.Span(className=f"placeholder col-{w} mb-3 d-block") for w in widths],
        id=f"{pane_id}-skeleton",
        # Over the iframe until Phoenix has painted; the iframe is transparent before that.
        className="placeholder-glow p-3 position-absolute top-0 start-0 w-100 h-100 bg-body",
        **hidden,
    )


def create_phoenix_pane(pane_id: str, path: str, title: str, height_px: int = 640) -> dbc.Card:
    """Build a card whose Phoenix iframe is created only once the card scrolls into view."""
    href = phoenix_href(path)
    # assets/phoenix_pane.js watches `.phoenix-pane-body` and fills the slot with the iframe
    # when the body becomes visible, so hidden or below-the-fold panes cost Phoenix nothing.
    data: dict[str, Any] = {"data-pane": pane_id, "data-src": href, "data-title": title}
    body = html.Div(
        [create_skeleton(pane_id), html.Div(id=f"{pane_id}-slot", className="h-100")],
        className="phoenix-pane-body position-relative",
        style={"height": f"{height_px}px"},
        **data,
    )
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
            body,
        ],
        id=pane_id,
    )
