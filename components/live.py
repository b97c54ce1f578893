"""The live indicator: polling, pause and resume, last update and a stale warning."""

from __future__ import annotations

from datetime import UTC, datetime

import dash_bootstrap_components as dbc
from dash import dcc, html

from services.live import LiveState


def create_live_controls(page: str, interval_s: int, live: LiveState) -> html.Div:
    """Build the poll timer, the watermark store, the pause switch and the status line."""
    return html.Div(
        [
            dcc.Interval(id=f"{page}-poll", interval=interval_s * 1000),
            # Seeded with what the layout saw: the first poll comes one interval later and
            # redraws only if new data arrived meanwhile.
            dcc.Store(id=f"{page}-watermark", data=live.watermark),
            dbc.Switch(id=f"{page}-live", label="Live", value=True, className="mb-0 me-3"),
            html.Span(
                create_live_status(live, paused=False),
                id=f"{page}-live-status",
                className="small text-body-secondary",
            ),
        ],
        className="d-flex align-items-center",
    )


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = max(0, int((now - aware).total_seconds()))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    return aware.strftime("%Y-%m-%d %H:%M UTC")


def create_live_status(state: LiveState, *, paused: bool, now: datetime | None = None) -> list:
    """Describe the data's freshness: updated when, paused, or stale since when."""
    now = now or datetime.now(UTC)
    if state.stale:
        return [
            dbc.Badge("stale", color="warning", className="me-1"),
            f"Sync failing since {_ago(state.error_at, now)} ({state.error}); "
            f"showing data synced {_ago(state.last_success_at, now)}.",
        ]
    label = "paused" if paused else "live"
    color = "secondary" if paused else "success"
    return [
        dbc.Badge(label, color=color, className="me-1"),
        f"Synced {_ago(state.last_success_at, now)}.",
    ]
