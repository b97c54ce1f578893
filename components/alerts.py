"""Builders of the alerts page: a monitor's card (state, numbers, sparkline, history) and forms."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dcc, html

from components.colors import series_color, version_key
from components.formats import NO_VALUE, Unit, axis, fmt_delta, fmt_value
from db.models import MonitorEvent, MonitorPoint
from services.monitor_rules import METRIC_TEXT, METRICS, RULES
from services.monitors import ChannelView, MonitorView
from services.span_facts import aware

STATE_COLORS = {
    "firing": "danger",
    "resolved": "success",
    "ok": "secondary",
    "insufficient": "light",
}
STATE_TEXT = {
    "firing": "firing",
    "resolved": "resolved",
    "ok": "ok",
    "insufficient": "insufficient data",
}
# The two sides keep their colours on every card (Okabe-Ito: colour-blind safe).
CANDIDATE_COLOR = "#D55E00"
BASELINE_COLOR = "#0072B2"
RULE_TEXT = {
    "relative": "candidate version against a baseline version",
    "previous_period": "last window against the window before",
    "threshold": "against a fixed threshold",
}


def state_badge(state: str, paused: bool) -> dbc.Badge:
    """Show a monitor's state (or that it is paused) as a coloured badge."""
    if paused:
        return dbc.Badge("paused", color="dark", className="me-2")
    color = STATE_COLORS.get(state, "secondary")
    text_color = "dark" if color == "light" else None
    return dbc.Badge(
        STATE_TEXT.get(state, state), color=color, text_color=text_color, className="me-2"
    )


def _unit(view: MonitorView) -> Unit:
    """Return the formatter unit of a monitor's metric."""
    unit = view.spec.unit
    return unit if unit in ("count", "percent", "ms", "usd", "number") else "number"  # type: ignore[return-value]


def _side_text(side: dict[str, Any] | None, unit: Unit) -> str:
    """Describe one side: label, value, its own interval and n."""
    if not side:
        return NO_VALUE
    value = fmt_value(side.get("value"), unit)
    low, high = side.get("low"), side.get("high")
    band = (
        f" [{fmt_value(low, unit)}, {fmt_value(high, unit)}]"
        if low is not None and high is not None
        else ""
    )
    return f"{side.get('label')}: {value}{band}, n = {int(side.get('n') or 0):,}"


def numbers(view: MonitorView) -> html.Div:
    """Show the last evaluation: both sides, the difference and its interval, the method."""
    result = view.last_result
    if not result:
        return html.Div(
            "Not evaluated yet: the next sync tick will.", className="small text-body-secondary"
        )
    if result.get("reason"):
        return html.Div(result["reason"], className="small text-body-secondary")
    unit = _unit(view)
    interval = result.get("interval") or {}
    low, high = interval.get("low"), interval.get("high")
    rel = result.get("relative_delta")
    difference = fmt_delta(result.get("delta"), unit)
    if rel is not None:
        difference += f" ({rel * 100:+.1f}%)"
    if low is not None and high is not None:
        difference += f", 95% interval [{fmt_delta(low, unit)}, {fmt_delta(high, unit)}]"
    rows = [
        html.Div(
            [
                html.Span("candidate ", className="text-body-secondary"),
                _side_text(result.get("candidate"), unit),
            ]
        ),
    ]
    if result.get("baseline"):
        rows.append(
            html.Div(
                [
                    html.Span("baseline ", className="text-body-secondary"),
                    _side_text(result.get("baseline"), unit),
                ]
            )
        )
        rows.append(
            html.Div([html.Span("difference ", className="text-body-secondary"), difference])
        )
    elif result.get("threshold") is not None:
        rows.append(
            html.Div(
                [
                    html.Span("threshold ", className="text-body-secondary"),
                    fmt_value(result["threshold"], unit),
                ]
            )
        )
    rows.append(html.Div(interval.get("method") or "", className="text-body-secondary"))
    return html.Div(rows, className="small")


# One line of ticks whatever the span (a second line would be cut off at this height), from
# the second to the day, so points a few seconds apart never repeat one label.
TICK_FORMATS = [
    {"dtickrange": [None, 60_000], "value": "%H:%M:%S"},
    {"dtickrange": [60_000, 86_400_000], "value": "%b %d %H:%M"},
    {"dtickrange": [86_400_000, None], "value": "%b %d"},
]
HEADROOM = 0.2  # of the values' span, above and below, so no line hugs an edge


def side_colors(view: MonitorView, catalogue: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Colour each side as its prompt version is coloured on every other page.

    A side that is not one version (a previous-period or threshold rule) keeps the fixed
    candidate and baseline colours; so does a version the catalogue does not know.
    """
    result = view.last_result or {}
    colors = []
    for side, fallback in (("candidate", CANDIDATE_COLOR), ("baseline", BASELINE_COLOR)):
        label = (result.get(side) or {}).get("label")
        key = version_key(view.spec.prompt, str(label)) if label else ""
        colors.append(
            series_color(key, catalogue)
            if view.spec.rule == "relative" and catalogue and key in catalogue
            else fallback
        )
    return colors[0], colors[1]


def _local(moment: datetime, zone: str) -> datetime:
    """Return a moment as a wall-clock time in `zone` (Plotly draws naive times as given)."""
    return aware(moment).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def _y_range(values: Sequence[float]) -> list[float] | None:
    """Leave room above and below the lines; from zero when the values are all positive."""
    if not values:
        return None
    low, high = min(values), max(values)
    pad = (high - low) * HEADROOM or abs(high) * HEADROOM or 1.0
    bottom = low - pad
    if low >= 0 > bottom:
        bottom = 0.0
    return [bottom, high + pad]


def sparkline(
    view: MonitorView,
    points: Sequence[MonitorPoint],
    *,
    zone: str = "UTC",
    catalogue: Mapping[str, str] | None = None,
) -> html.Div:
    """Plot both sides' values over the last evaluations; gaps where a side had none.

    Times are on the wall clock of `zone` (the user's display zone); each side takes its
    version's colour from `catalogue` (components.colors.prompt_catalogue).
    """
    unit = _unit(view)
    at = [_local(p.at, zone) for p in points]
    candidate_color, baseline_color = side_colors(view, catalogue)
    has_baseline = any(p.baseline is not None for p in points)
    traces = [
        go.Scatter(
            x=at,
            y=[p.candidate for p in points],
            name="candidate",
            mode="lines",
            line={"color": candidate_color, "width": 2},
            connectgaps=False,
            hovertemplate="candidate %{y}<br>%{x|%b %d %H:%M:%S}<extra></extra>",
        )
    ]
    if has_baseline:
        traces.append(
            go.Scatter(
                x=at,
                y=[p.baseline for p in points],
                name="baseline",
                mode="lines",
                line={"color": baseline_color, "width": 2, "dash": "dot"},
                connectgaps=False,
                hovertemplate="baseline %{y}<br>%{x|%b %d %H:%M:%S}<extra></extra>",
            )
        )
    values = [
        v for p in points for v in (p.candidate, p.baseline) if v is not None and math.isfinite(v)
    ]
    yaxis = axis(unit)
    y_range = _y_range(values)
    if y_range is not None:
        yaxis["range"] = y_range
    figure = go.Figure(traces)
    figure.update_layout(
        height=100,
        margin={"l": 56, "r": 8, "t": 4, "b": 24},
        showlegend=False,
        template="plotly_white",
        yaxis=yaxis,
        xaxis={"tickformatstops": TICK_FORMATS, "nticks": 4},
    )
    key = html.Div(
        [
            html.Span("━ candidate", style={"color": candidate_color}, className="me-3"),
            html.Span("┅ baseline", style={"color": baseline_color}, className="me-3")
            if has_baseline
            else None,
            html.Span(f"times in {zone}", className="text-body-secondary"),
        ],
        className="small text-end",
    )
    return html.Div(
        [dcc.Graph(figure=figure, config={"displayModeBar": False}), key], className="mb-1"
    )


def history(events: Sequence[MonitorEvent], unit: Unit, zone: str = "UTC") -> html.Div | html.Ul:
    """List the monitor's changes of state, newest first, at wall-clock times in `zone`."""
    if not events:
        return html.Div("No changes of state yet.", className="small text-body-secondary")
    items = []
    for event in events[:8]:
        result = json.loads(event.result)
        delta = result.get("delta")
        rel = result.get("relative_delta")
        what = fmt_delta(delta, unit) if delta is not None else ""
        if rel is not None:
            what += f" ({rel * 100:+.1f}%)"
        before = STATE_TEXT.get(event.from_state, event.from_state)
        after = STATE_TEXT.get(event.to_state, event.to_state)
        when = aware(event.at).astimezone(ZoneInfo(zone))
        items.append(html.Li(f"{when:%Y-%m-%d %H:%M %Z}: {before} → {after} {what}".rstrip()))
    return html.Ul(items, className="small mb-0 ps-3")


def monitor_card(
    view: MonitorView,
    points: Sequence[MonitorPoint],
    events: Sequence[MonitorEvent],
    *,
    can_write: bool,
    zone: str = "UTC",
    catalogue: Mapping[str, str] | None = None,
) -> dbc.Card:
    """Build one monitor's card: state, rule, numbers, sparkline, history, actions.

    `zone` is the display zone the sparkline's times are in; `catalogue` colours its sides.
    """
    result = view.last_result or {}
    link = result.get("link")
    where = f" in {view.spec.project}" if view.spec.project else ""
    actions: list[Any] = []
    if link:
        # The notification's link names PUBLIC_URL; on the page the same path suffices.
        parts = urlsplit(link)
        actions.append(
            dcc.Link(
                "Open comparison",
                href=f"{parts.path}?{parts.query}",
                className="me-3 small",
                id={"type": "alerts-link", "monitor": view.id},
            )
        )
    if can_write:
        action = "resume" if view.paused else "pause"
        for name, label in ((action, action.capitalize()), ("edit", "Edit"), ("delete", "Delete")):
            actions.append(
                dbc.Button(
                    label,
                    id={"type": "alerts-action", "action": name, "monitor": view.id},
                    size="sm",
                    color="danger" if name == "delete" else "secondary",
                    outline=True,
                    className="me-2",
                )
            )
    return dbc.Card(
        dbc.CardBody(
            [
                html.Div(
                    [
                        state_badge(view.state, view.paused),
                        html.Span(view.name, className="fw-semibold"),
                    ],
                    className="mb-1",
                ),
                html.Div(
                    f"{view.spec.prompt}{where} · {view.spec.metric_text}: {view.spec.rule_text()}",
                    className="small mb-2",
                ),
                dbc.Row(
                    [
                        dbc.Col(numbers(view), md=6),
                        dbc.Col(sparkline(view, points, zone=zone, catalogue=catalogue), md=6),
                    ],
                    className="g-2",
                ),
                html.Details(
                    [
                        html.Summary("History", className="small"),
                        history(events, _unit(view), zone),
                    ],
                    className="mb-2",
                ),
                html.Div(actions),
            ]
        ),
        className="mb-3",
        id=f"alerts-monitor-{view.id}",
    )


def _field(label: str, control: Any, width: int = 3) -> dbc.Col:
    """Lay out one labelled form control."""
    return dbc.Col([dbc.Label(label, className="small mb-0"), control], md=width)


def monitor_form(prompts: Sequence[str], channels: Sequence[ChannelView]) -> dbc.Card:
    """Build the form that creates or edits a monitor."""
    return dbc.Card(
        dbc.CardBody(
            [
                html.H3("New monitor", className="h6", id="alerts-form-title"),
                dbc.Row(
                    [
                        _field("Name", dbc.Input(id="alerts-f-name", maxLength=200)),
                        _field("Prompt", dcc.Dropdown(id="alerts-f-prompt", options=list(prompts))),
                        _field(
                            "Project (optional)", dbc.Input(id="alerts-f-project", maxLength=200)
                        ),
                        _field(
                            "Metric",
                            dcc.Dropdown(
                                id="alerts-f-metric",
                                options=[{"label": METRIC_TEXT[m], "value": m} for m in METRICS],
                                value="p95_ms",
                                clearable=False,
                            ),
                        ),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Row(
                    [
                        _field(
                            "Evaluator (scores, labels)",
                            dbc.Input(id="alerts-f-evaluator", maxLength=200),
                        ),
                        _field(
                            "Label (label share)", dbc.Input(id="alerts-f-label", maxLength=200)
                        ),
                        _field(
                            "Rule",
                            dcc.Dropdown(
                                id="alerts-f-rule",
                                options=[{"label": RULE_TEXT[r], "value": r} for r in RULES],
                                value="relative",
                                clearable=False,
                            ),
                        ),
                        _field(
                            "Higher is bad",
                            dbc.Checklist(
                                id="alerts-f-higher",
                                options=[{"label": "yes", "value": "yes"}],
                                value=["yes"],
                                switch=True,
                            ),
                        ),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Row(
                    [
                        _field(
                            "Candidate",
                            dbc.Input(id="alerts-f-candidate", value="newest", maxLength=200),
                        ),
                        _field(
                            "Baseline",
                            dbc.Input(id="alerts-f-baseline", value="previous", maxLength=200),
                        ),
                        _field(
                            "Window (hours)",
                            dbc.Input(id="alerts-f-window", type="number", value=24),
                        ),
                        _field(
                            "Min sample per side",
                            dbc.Input(id="alerts-f-samples", type="number", value=100),
                        ),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Row(
                    [
                        _field(
                            "Min effect", dbc.Input(id="alerts-f-effect", type="number", value=10)
                        ),
                        _field(
                            "Effect unit",
                            dcc.Dropdown(
                                id="alerts-f-effect-unit",
                                options=[
                                    {"label": "% of baseline", "value": "percent"},
                                    {"label": "absolute", "value": "absolute"},
                                ],
                                value="percent",
                                clearable=False,
                            ),
                        ),
                        _field(
                            "Threshold (threshold rule)",
                            dbc.Input(id="alerts-f-threshold", type="number"),
                        ),
                        _field(
                            "Channels",
                            dcc.Dropdown(
                                id="alerts-f-channels",
                                options=[
                                    {"label": f"{c.name} ({c.kind})", "value": c.id}
                                    for c in channels
                                ],
                                multi=True,
                            ),
                        ),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Button("Save monitor", id="alerts-save", color="primary", className="me-2"),
                dbc.Button("Clear", id="alerts-clear", color="secondary", outline=True),
            ]
        ),
        className="mb-3",
        id="alerts-form",
    )


def channel_list(channels: Sequence[ChannelView], *, can_write: bool) -> html.P | html.Ul:
    """List channels (never their secrets) with a test button each."""
    if not channels:
        return html.P("No channels yet.", className="small text-body-secondary")
    rows = []
    for channel in channels:
        test = (
            dbc.Button(
                "Test notification",
                id={"type": "alerts-test", "channel": channel.id},
                size="sm",
                color="secondary",
                outline=True,
                className="ms-2",
            )
            if can_write
            else None
        )
        rows.append(
            html.Li(
                [
                    html.Span(channel.name, className="fw-semibold"),
                    f" · {channel.kind} · {channel.target or 'no target'}",
                    f" · secret {channel.secret}",
                    test,
                ],
                className="mb-1",
            )
        )
    return html.Ul(rows, className="list-unstyled small mb-0", id="alerts-channel-list")


def channel_form() -> dbc.Row:
    """Build the form that adds a channel."""
    return dbc.Row(
        [
            _field("Name", dbc.Input(id="alerts-c-name", maxLength=200)),
            _field(
                "Kind",
                dcc.Dropdown(
                    id="alerts-c-kind",
                    options=["webhook", "slack", "email"],
                    value="webhook",
                    clearable=False,
                ),
                2,
            ),
            _field("URL or addresses", dbc.Input(id="alerts-c-target", maxLength=2000)),
            # The secret takes what the button leaves; the button keeps its label on one line.
            dbc.Col(
                [
                    dbc.Label("Secret (or env:NAME)", className="small mb-0"),
                    dbc.Input(id="alerts-c-secret", type="password", maxLength=2000),
                ],
                md=True,
            ),
            dbc.Col(
                dbc.Button(
                    "Add channel",
                    id="alerts-c-add",
                    color="primary",
                    className="text-nowrap",
                ),
                md="auto",
                className="d-flex align-items-end",
            ),
        ],
        className="g-2 mb-2",
    )
