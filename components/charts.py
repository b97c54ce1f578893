"""Plotly figures for the analytics pages, as plain dicts; no data gives a friendly chart."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dash import dcc

from components.formats import Unit, axis, fmt_count, fmt_value
from store.views import Histogram

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


Point = tuple[str, Any, float | None]  # (series name, x, y)
# ... and the n behind y (the calls, or the scores, a point stands for)
CountedPoint = tuple[str, Any, float | None, int]
# ... and how many of those n have an unknown value (the total leaves them out)
PartialPoint = tuple[str, Any, float | None, int, int]
AnyPoint = Point | CountedPoint | PartialPoint


@dataclass(frozen=True)
class Hover:
    """How a chart's tooltips read: the value's unit, and what its n counts."""

    unit: Unit
    n_label: str = "calls"
    unknown_label: str = "unknown"  # "without tokens": what the unknown count lacks

    def template(self, counted: bool) -> str:
        """Show the x, the formatted value and, where known, the n behind it."""
        n = " · n = %{customdata[1]:,} " + self.n_label + "%{customdata[2]}" if counted else ""
        return "%{x}<br>%{customdata[0]}" + n

    def customdata(self, point: tuple[Any, ...]) -> list[Any]:
        """Carry the value as the dashboard formats it, the n, and the unknown note."""
        n = point[3] if len(point) > 3 else None
        unknown = point[4] if len(point) > 4 else 0
        note = f" ({fmt_count(unknown)} {self.unknown_label})" if unknown else ""
        return [fmt_value(point[2], self.unit), n, note]


def _traces(
    points: Sequence[AnyPoint], hover: Hover | None = None, **trace: Any
) -> list[dict[str, Any]]:
    """Make a trace per series name, in order of first appearance, as plotly express does."""
    series: dict[str, tuple[list[Any], list[float | None], list[list[Any]]]] = {}
    counted = False
    for point in points:
        name, x, y = point[0], point[1], point[2]
        xs, ys, custom = series.setdefault(name, ([], [], []))
        xs.append(x.isoformat() if isinstance(x, datetime) else x)
        ys.append(y)
        if hover is not None:
            custom.append(hover.customdata(point))
            counted = counted or len(point) > 3
    traces = []
    for name, (xs, ys, custom) in series.items():
        made = {**trace, "name": name, "x": xs, "y": ys}
        if hover is not None:
            made |= {"customdata": custom, "hovertemplate": hover.template(counted)}
        traces.append(made)
    return traces


def create_series_figure(
    points: Sequence[AnyPoint], title: str, y_title: str, hover: Hover | None = None
) -> Figure:
    """Plot one metric over time, a line per series (prompt version or model).

    With `hover`, the y axis ticks in its unit and each tooltip shows the value as the cards
    do, with the n behind it when points carry one.
    """
    if not points:
        return create_empty_figure("No data for these filters", title)
    data = _traces(points, hover, type="scatter", mode="lines+markers")
    yaxis = {"title": {"text": y_title}, **axis(hover.unit if hover else None)}
    return _figure(data, title, yaxis=yaxis, legend=LEGEND_BELOW)


def create_histogram(histogram: Histogram, title: str, x_title: str, unit: Unit = "ms") -> Figure:
    """Plot a distribution the engine binned: a bar per bin, its range and count on hover."""
    if not histogram.counts or not any(histogram.counts):
        return create_empty_figure("No data for these filters", title)
    edges = histogram.edges
    data = [
        {
            "type": "bar",
            "x": [(low + high) / 2 for low, high in itertools.pairwise(edges)],
            "width": [high - low for low, high in itertools.pairwise(edges)],
            "y": list(histogram.counts),
            "name": x_title,
            "customdata": [
                f"{fmt_value(low, unit)} to {fmt_value(high, unit)}"
                for low, high in itertools.pairwise(edges)
            ],
            "hovertemplate": "%{customdata}<br>n = %{y:,} calls<extra></extra>",
        }
    ]
    return _figure(
        data,
        title,
        bargap=0.05,
        xaxis={"title": {"text": x_title}, **axis(unit)},
        yaxis={"title": {"text": "calls"}, **axis("count")},
    )


@dataclass(frozen=True)
class Box:
    """One box of a box plot: its group (legend), its place on the x axis, and five numbers."""

    group: str
    x: str
    low: float
    q1: float
    median: float
    q3: float
    high: float


def create_score_box(boxes: Sequence[Box], title: str) -> Figure:
    """Plot the score distribution per evaluator, a box per prompt version, from quartiles."""
    if not boxes:
        return create_empty_figure("No scored evaluations for these filters", title)
    grouped: dict[str, list[Box]] = {}
    for box in boxes:
        grouped.setdefault(box.group, []).append(box)
    data = [
        {
            "type": "box",
            "name": group,
            "x": [b.x for b in items],
            "q1": [b.q1 for b in items],
            "median": [b.median for b in items],
            "q3": [b.q3 for b in items],
            "lowerfence": [b.low for b in items],
            "upperfence": [b.high for b in items],
        }
        for group, items in grouped.items()
    ]
    return _figure(
        data,
        title,
        height=300,
        boxmode="group",
        yaxis={"title": {"text": "score"}, **axis("score")},
        legend=LEGEND_BELOW,
    )


def create_label_bars(shares: Sequence[AnyPoint], title: str) -> Figure:
    """Plot label shares as stacked bars: (label, "evaluator · version", share[, labelled])."""
    if not shares:
        return create_empty_figure("No labelled evaluations for these filters", title)
    data = _traces(shares, Hover("percent", "labelled"), type="bar")
    return _figure(
        data,
        title,
        height=300,
        barmode="stack",
        yaxis={"title": {"text": "share"}, **axis("percent")},
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
