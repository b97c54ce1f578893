"""Plotly figures for the analytics pages; an empty frame gives a friendly empty chart."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def create_empty_figure(message: str) -> go.Figure:
    """Build a blank chart that says why it is blank."""
    figure = go.Figure()
    figure.add_annotation(
        text=message, showarrow=False, font={"size": 14}, x=0.5, y=0.5, xref="paper", yref="paper"
    )
    figure.update_layout(
        xaxis={"visible": False},
        yaxis={"visible": False},
        height=280,
        margin={"l": 20, "r": 20, "t": 40, "b": 20},
        template="plotly_white",
    )
    return figure


def create_series_figure(frame: pd.DataFrame, y: str, title: str, y_title: str) -> go.Figure:
    """Plot one metric over time, a line per series (prompt version or model)."""
    if frame.empty:
        figure = create_empty_figure("No data for these filters")
        figure.update_layout(title=title)
        return figure
    figure = px.line(
        frame,
        x="bucket",
        y=y,
        color="series",
        markers=True,
        title=title,
        labels={"bucket": "", y: y_title, "series": ""},
    )
    figure.update_layout(
        height=280,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def create_histogram(values: pd.Series, title: str, x_title: str) -> go.Figure:
    """Plot the distribution of one measure."""
    if values.empty:
        figure = create_empty_figure("No data for these filters")
        figure.update_layout(title=title)
        return figure
    figure = px.histogram(values.to_frame(name=x_title), x=x_title, nbins=40, title=title)
    figure.update_layout(
        height=280,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        bargap=0.05,
        yaxis_title="calls",
    )
    return figure


def create_score_box(annotations: pd.DataFrame, title: str) -> go.Figure:
    """Plot the score distribution per evaluator, a box per prompt version."""
    scored = annotations.dropna(subset=["score"])
    if scored.empty:
        figure = create_empty_figure("No scored evaluations for these filters")
        figure.update_layout(title=title)
        return figure
    figure = px.box(
        scored.assign(prompt_version=scored["prompt_version"].fillna("(none)")),
        x="name",
        y="score",
        color="prompt_version",
        title=title,
        labels={"name": "", "score": "score", "prompt_version": ""},
    )
    figure.update_layout(
        height=300,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def create_label_bars(fractions: pd.DataFrame, title: str) -> go.Figure:
    """Plot label fractions per evaluator and prompt version as stacked bars."""
    if fractions.empty:
        figure = create_empty_figure("No labelled evaluations for these filters")
        figure.update_layout(title=title)
        return figure
    frame = fractions.assign(group=fractions["name"] + " · " + fractions["prompt_version"])
    figure = px.bar(
        frame,
        x="group",
        y="fraction",
        color="label",
        title=title,
        labels={"group": "", "fraction": "share", "label": ""},
    )
    figure.update_layout(
        height=300,
        margin={"l": 40, "r": 10, "t": 40, "b": 30},
        template="plotly_white",
        barmode="stack",
        legend={"orientation": "h", "y": -0.3},
    )
    return figure
