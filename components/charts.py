"""Plotly figures for the analytics pages, as plain dicts; an empty frame gives a friendly chart."""

from __future__ import annotations

from typing import Any

import pandas as pd
from dash import dcc

Figure = dict[str, Any]
LEGEND_BELOW = {"orientation": "h", "y": -0.2}
# Plotly's default colours and the look of its "plotly_white" template, written out once:
# building figures as dicts skips plotly's per-property validation, which cost most of a redraw.
COLORS = [
    "#636efa", "#EF553B", "#00cc96", "#ab63fa", "#FFA15A",
    "#19d3f3", "#FF6692", "#B6E880", "#FF97FF", "#FECB52",
]  # fmt: skip
_AXIS = {
    "gridcolor": "#EBF0F8",
    "linecolor": "#EBF0F8",
    "zerolinecolor": "#EBF0F8",
    "automargin": True,
}
_BASE_LAYOUT: dict[str, Any] = {
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
    "colorway": COLORS,
    "font": {"color": "#2a3f5f"},
    "hovermode": "closest",
    "xaxis": _AXIS,
    "yaxis": _AXIS,
}


def _figure(data: list[dict[str, Any]], title: str, height: int = 280, **layout: Any) -> Figure:
    """Return a figure in the dashboard's chart style."""
    merged: dict[str, Any] = {
        **_BASE_LAYOUT,
        "height": height,
        "margin": {"l": 40, "r": 10, "t": 40, "b": 30},
        # Left, as plotly_white puts it, clear of the mode bar on the right.
        "title": {"text": title, "x": 0.05},
    }
    for key, value in layout.items():
        merged[key] = {**merged[key], **value} if isinstance(merged.get(key), dict) else value
    return {"data": data, "layout": merged}


def create_empty_figure(message: str, title: str = "") -> Figure:
    """Build a blank chart that says why it is blank."""
    note = {
        "text": message, "showarrow": False, "font": {"size": 14},
        "x": 0.5, "y": 0.5, "xref": "paper", "yref": "paper",
    }  # fmt: skip
    return _figure(
        [], title, xaxis={"visible": False}, yaxis={"visible": False}, annotations=[note]
    )


def _traces(frame: pd.DataFrame, by: str, x: str, y: str, **trace: Any) -> list[dict[str, Any]]:
    """Make a trace per value of `by`, in order of first appearance, as plotly express does."""
    return [
        {**trace, "name": str(key), "x": part[x].to_numpy(), "y": part[y].to_numpy()}
        for key, part in ((k, frame[frame[by] == k]) for k in frame[by].drop_duplicates())
    ]


def create_series_figure(frame: pd.DataFrame, y: str, title: str, y_title: str) -> Figure:
    """Plot one metric over time, a line per series (prompt version or model)."""
    if frame.empty:
        return create_empty_figure("No data for these filters", title)
    data = _traces(frame, "series", "bucket", y, type="scatter", mode="lines+markers")
    return _figure(data, title, yaxis={"title": {"text": y_title}}, legend=LEGEND_BELOW)


def create_histogram(values: pd.Series, title: str, x_title: str) -> Figure:
    """Plot the distribution of one measure."""
    if values.empty:
        return create_empty_figure("No data for these filters", title)
    data = [{"type": "histogram", "x": values.to_numpy(), "nbinsx": 40, "name": x_title}]
    return _figure(
        data,
        title,
        bargap=0.05,
        xaxis={"title": {"text": x_title}},
        yaxis={"title": {"text": "calls"}},
    )


def create_score_box(annotations: pd.DataFrame, title: str) -> Figure:
    """Plot the score distribution per evaluator, a box per prompt version."""
    scored = annotations.dropna(subset=["score"])
    if scored.empty:
        return create_empty_figure("No scored evaluations for these filters", title)
    scored = scored.assign(prompt_version=scored["prompt_version"].fillna("(none)"))
    data = _traces(scored, "prompt_version", "name", "score", type="box")
    return _figure(
        data,
        title,
        height=300,
        boxmode="group",
        yaxis={"title": {"text": "score"}},
        legend=LEGEND_BELOW,
    )


def create_label_bars(fractions: pd.DataFrame, title: str) -> Figure:
    """Plot label fractions per evaluator and prompt version as stacked bars."""
    if fractions.empty:
        return create_empty_figure("No labelled evaluations for these filters", title)
    frame = fractions.assign(group=fractions["name"] + " · " + fractions["prompt_version"])
    data = _traces(frame, "label", "group", "fraction", type="bar")
    return _figure(
        data,
        title,
        height=300,
        barmode="stack",
        yaxis={"title": {"text": "share"}},
        legend={"orientation": "h", "y": -0.3},
    )


def create_sparkline(values: list[float]) -> Figure:
    """Build a tiny line without axes, for the quick-stat cards."""
    return {
        "data": [{"type": "scatter", "y": values, "mode": "lines", "line": {"width": 1.5}}],
        "layout": {
            **_BASE_LAYOUT,
            "height": 40,
            "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
            "xaxis": {"visible": False},
            "yaxis": {"visible": False},
            "showlegend": False,
        },
    }


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
