"""The filter bar: project, prompt, versions, model, status and time range, mirrored in the URL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.live import create_live_controls
from services import evaluators
from services.filters import RANGES, STATUSES, FilterState
from services.live import LiveState
from store.analytics import EvaluatorScore


def _with_current(options: list[str], value: str | list[str] | None) -> list[str]:
    current = value if isinstance(value, list) else [value] if value else []
    return options + [v for v in current if v not in options]


def _dropdown(
    page: str,
    name: str,
    label: str,
    options: list[str],
    value: str | list[str] | None,
    multi: bool = False,
) -> dbc.Col:
    return dbc.Col(
        [
            dbc.Label(label, html_for=f"{page}-filter-{name}", className="small mb-1"),
            dcc.Dropdown(
                id=f"{page}-filter-{name}",
                # The URL's value stays selectable even before any synced data has it.
                options=[{"label": o, "value": o} for o in _with_current(options, value)],
                value=value,
                multi=multi,
                placeholder="All",
                clearable=True,
            ),
        ],
        xs=12,
        sm=6,
        lg=2,
    )


def create_filter_bar(
    page: str, state: FilterState, options: dict[str, list[str]], problems: list[str]
) -> html.Div:
    """Build the filter bar for a page, showing the current state and any ignored values."""
    range_options: list[dict[str, object]] = [{"label": key, "value": key} for key in RANGES]
    range_options.append({"label": "custom", "value": "custom"})
    return html.Div(
        [
            dcc.Location(id=f"{page}-url", refresh=False),
            dbc.Row(
                [
                    _dropdown(page, "project", "Project", options["project"], state.project),
                    _dropdown(page, "prompt", "Prompt", options["prompt"], state.prompt),
                    _dropdown(
                        page,
                        "versions",
                        "Versions",
                        options["versions"],
                        list(state.versions),
                        multi=True,
                    ),
                    _dropdown(page, "model", "Model", options["model"], state.model),
                    _dropdown(page, "status", "Status", list(STATUSES), state.status),
                    dbc.Col(
                        [
                            dbc.Label("Time range", className="small mb-1"),
                            dbc.RadioItems(
                                id=f"{page}-filter-range",
                                options=range_options,
                                value=state.range,
                                inline=True,
                                className="pt-1",
                            ),
                        ],
                        xs=12,
                        lg=2,
                    ),
                ],
                className="g-2 mb-2",
            ),
            create_custom_range(page, state),
            *[
                dbc.Alert(
                    problem,
                    color="warning",
                    className="py-1 small mb-2",
                    id=f"{page}-filter-problem-{i}",
                )
                for i, problem in enumerate(problems)
            ],
        ],
        className="mb-3",
    )


def _input_value(moment: datetime | None) -> str | None:
    """Render a time as a datetime-local input's value, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if moment else None


def create_custom_range(page: str, state: FilterState) -> dbc.Row:
    """Build the start and end inputs (UTC) that the custom time range shows."""
    fields = [
        dbc.Col(
            dbc.InputGroup(
                [
                    dbc.InputGroupText(label),
                    dbc.Input(
                        id=f"{page}-filter-{name}",
                        type="datetime-local",
                        value=_input_value(value),
                        # Typing a date fires once, when the field loses focus or on Enter.
                        debounce=True,
                    ),
                ],
                size="sm",
            ),
            xs=12,
            md=4,
            lg=3,
        )
        for name, label, value in (
            ("start", "From (UTC)", state.start),
            ("end", "To (UTC)", state.end),
        )
    ]
    return dbc.Row(
        fields,
        id=f"{page}-filter-custom",
        className="g-2 mb-2",
        style=None if state.range == "custom" else {"display": "none"},
    )


def create_page_header(page: str, title: str, poll_interval_s: int, live: LiveState) -> html.Div:
    """Build a page's title row with its live controls."""
    return html.Div(
        [
            html.H2(title, className="h4 mb-0 me-auto"),
            create_live_controls(page, poll_interval_s, live),
        ],
        className="d-flex align-items-center mb-3",
    )


def create_filtered_page_top(
    page: str,
    title: str,
    state: FilterState,
    options: dict[str, list[str]],
    problems: list[str],
    poll_interval_s: int,
    live: LiveState,
) -> list[Any]:
    """Build the header, filter bar, state store and message slot a filtered page starts with."""
    return [
        create_page_header(page, title, poll_interval_s, live),
        create_filter_bar(page, state, options, problems),
        dcc.Store(id=f"{page}-state", data=state.query_string()),
        html.Div(id=f"{page}-message"),
    ]


def create_empty_notice(page: str, message: str | None, empty: bool, what: str) -> Any:
    """Say why a page shows nothing: an unknown filter value, or no matching data yet."""
    if not message and not empty:
        return None
    text = message or f"No {what} match these filters yet."
    return dbc.Alert(text, color="info", id=f"{page}-empty")


def create_evaluator_picker(page: str, evaluator: str | None) -> dbc.Row:
    """Build the picker of the evaluator the score cards show, kept in the URL as evaluator=.

    Empty means the evaluator with the most annotations; the page fills the choices (and says
    which one that is in the placeholder) once it knows the data.
    """
    return dbc.Row(
        [
            dbc.Col(
                dbc.InputGroup(
                    [
                        dbc.InputGroupText("Evaluator", className="small"),
                        dcc.Dropdown(
                            id=f"{page}-filter-evaluator",
                            options=[{"label": evaluator, "value": evaluator}] if evaluator else [],
                            value=evaluator,
                            placeholder="the one with the most annotations",
                            clearable=True,
                            className="flex-grow-1",
                        ),
                    ],
                    size="sm",
                    className="flex-nowrap",
                ),
                xs=12,
                md=6,
                lg=4,
            ),
            dbc.Col(html.Div(id=f"{page}-evaluator-message"), xs=12, md=6, lg=8),
        ],
        className="g-2 mb-2 align-items-center",
    )


def evaluator_picker_outputs(
    page: str, scores: Sequence[EvaluatorScore], wanted: str | None
) -> tuple[list[dict[str, str]], str, Any]:
    """Fill the picker: the evaluators here, the default named, and a note if the URL's is not."""
    choice = evaluators.choose(scores, wanted)
    default = evaluators.default_evaluator(scores)
    placeholder = f"{default} (most annotations)" if default else "no evaluations"
    note = (
        dbc.Alert(
            choice.message,
            color="warning",
            className="py-1 small mb-0",
            id=f"{page}-evaluator-problem",
        )
        if choice.message
        else None
    )
    return evaluators.options(scores, wanted), placeholder, note
