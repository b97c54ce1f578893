"""The banner that tells whether Phoenix is reachable."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from services.phoenix import (
    PhoenixAuthError,
    PhoenixError,
    PhoenixHTTPError,
    PhoenixStatus,
    PhoenixUnavailable,
)


def phoenix_error_text(exc: PhoenixError) -> str:
    """Say in one sentence what went wrong talking to Phoenix, for a page's error alert."""
    if isinstance(exc, PhoenixUnavailable):
        return f"Phoenix can't be reached: {exc}."
    if isinstance(exc, PhoenixAuthError):
        return f"Phoenix refused the dashboard's key: {exc}."
    if isinstance(exc, PhoenixHTTPError) and exc.status == 429:
        return f"Phoenix is rate limiting the dashboard: {exc}."
    return f"Phoenix answered with an error: {exc}."


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
    heading = "Phoenix answers with errors. " if status.answered else "Phoenix can't be reached. "
    return dbc.Alert(
        [
            html.I(className="bi bi-exclamation-triangle-fill me-2"),
            html.Strong(heading),
            f"{status.error}. The dashboard keeps working; Phoenix data will return when ",
            html.Code(status.url),
            " answers again.",
        ],
        color="danger",
        id="phoenix-status",
    )
