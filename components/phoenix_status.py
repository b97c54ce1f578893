"""The banner that tells whether Phoenix is reachable."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from services.phoenix import PhoenixStatus


def create_phoenix_status(status: PhoenixStatus | None) -> dbc.Alert:
    """Show the Phoenix version and URL, a clear outage banner, or that the integration is off."""
    if status is None:
        return dbc.Alert(
            [html.I(className="bi bi-toggle-off me-2"), "The Phoenix integration is turned off."],
            color="secondary",
            id="phoenix-status",
        )
    if status.ok:
        return dbc.Alert(
            [
                html.I(className="bi bi-check-circle-fill me-2"),
                f"Connected to Phoenix {status.version} at ",
                html.Code(status.url),
            ],
            color="success",
            id="phoenix-status",
        )
    return dbc.Alert(
        [
            html.I(className="bi bi-exclamation-triangle-fill me-2"),
            html.Strong("Phoenix can't be reached. "),
            f"{status.error}. The dashboard keeps working; Phoenix data will return when ",
            html.Code(status.url),
            " answers again.",
        ],
        color="danger",
        id="phoenix-status",
    )
