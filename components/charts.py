"""Plotly figures for the analytics pages; an empty frame gives a friendly empty chart."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from dash import dcc

LEGEND_BELOW = {"orientation": "h", "y": -0.2}


def _styled(figure: go.Figure, height: int = 280, **layout: Any) -> go.Figure:
    """Apply the dashboard's chart style."""
    figure.update_layout(
        height=height,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        **layout,
    )
    return figure


def create_empty_figure(message: str, title: str = "") -> go.Figure:
    """Build a blank chart that says why it is blank."""
    figure = go.Figure()
    figure.add_annotation(
        text=message, showarrow=False, font={"size": 14}, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    return _styled(figure, title=title, xaxis={"visible": False}, yaxis={"visible": False})


def create_series_figure(frame: pd.DataFrame, y: str, title: str, y_title: str) -> go.Figure:
    """Plot one metric over time, a line per series (prompt version or model)."""
    if frame.empty:
        return create_empty_figure("No data for these filters", title)
    figure = px.line(
        frame,
        x="bucket",
        y=y,
        color="series",
        markers=True,
        title=title,
        labels={"bucket": "", y: y_title, "series": ""},
    )
    return _styled(figure, legend=LEGEND_BELOW)


def create_histogram(values: pd.Series, title: str, x_title: str) -> go.Figure:
    """Plot the distribution of one measure."""
    if values.empty:
        return create_empty_figure("No data for these filters", title)
    figure = px.histogram(values.to_frame(name=x_title), x=x_title, nbins=40, title=title)
    return _styled(figure, bargap=0.05, yaxis_title="calls")


def create_score_box(annotations: pd.DataFrame, title: str) -> go.Figure:
    """Plot the score distribution per evaluator, a box per prompt version."""
    scored = annotations.dropna(subset=["score"])
    if scored.empty:
        return create_empty_figure("No scored evaluations for these filters", title)
    figure = px.box(
        scored.assign(prompt_version=scored["prompt_version"].fillna("(none)")),
        x="name",
        y="score",
        color="prompt_version",
        title=title,
        labels={"name": "", "score": "score", "prompt_version": ""},
    )
    return _styled(figure, height=300, legend=LEGEND_BELOW)


def create_label_bars(fractions: pd.DataFrame, title: str) -> go.Figure:
    """Plot label fractions per evaluator and prompt version as stacked bars."""
    if fractions.empty:
        return create_empty_figure("No labelled evaluations for these filters", title)
    frame = fractions.assign(group=fractions["name"] + " · " + fractions["prompt_version"])
    figure = px.bar(
        frame,
        x="group",
        y="fraction",
        color="label",
        title=title,
        labels={"group": "", "fraction": "share", "label": ""},
    )
    return _styled(figure, height=300, barmode="stack", legend={"orientation": "h", "y": -0.3})


CHART_HEIGHT_PX = 300


def create_chart_slot(graph_id: str) -> dcc.Loading:
    """Build a chart's place with a spinner, sized up front so nothing below it jumps."""
    return dcc.Loading(
        dcc.Graph(
            id=graph_id,
            style={"minHeight": f"{CHART_HEIGHT_PX}px"},
            config={"displaylogo": False, "displayModeBar": "hover"},
        )
    )
