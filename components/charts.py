"""Plotly figures for the analytics pages, as plain dicts; no data gives a friendly chart."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from dash import dcc

from components.colors import LABEL_OUTLINE, MUTED, PALETTE, label_style
from components.formats import Unit, axis, fmt_count, fmt_value
from services.filters import FilterState
from store.views import Histogram

Figure = dict[str, Any]
LEGEND_BELOW = {"orientation": "h", "y": -0.2}
# The colour-blind-safe palette (components/colors.py) and the look of plotly's "plotly_white"
# template, written out once: building figures as dicts skips plotly's per-property validation,
# which cost most of a redraw.
COLORS = list(PALETTE)
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
    """One box of a box plot: its group (legend), its place on the x axis, five numbers, and n."""

    group: str
    x: str
    low: float
    q1: float
    median: float
    q3: float
    high: float
    n: int | None = None  # the scores the box summarises


def create_score_box(
    boxes: Sequence[Box],
    title: str,
    colors: Mapping[str, str] | None = None,
    x_title: str = "score",
) -> Figure:
    """Plot score distributions from quartiles as flat boxes, a box per group (prompt version).

    `colors` gives a group (version) its colour, the one it has on every chart; the groups
    come in the order given, first on top. Boxes of different groups at the same place (an
    evaluator) sit side by side, with a legend; groups each in their own place need none: the
    place names the group and the n behind its box ("v2 · n = 1,204"), which plotly's box
    tooltips (they take no template) then show beside every number.
    """
    if not boxes:
        return create_empty_figure("No scored evaluations for these filters", title)
    grouped: dict[str, list[Box]] = {}
    for box in boxes:
        grouped.setdefault(box.group, []).append(box)
    places = [{b.x for b in items} for items in grouped.values()]
    apart = sum(len(p) for p in places) == len(set().union(*places))

    def place(box: Box) -> str:
        return f"{box.x} · n = {fmt_count(box.n)}" if apart and box.n is not None else box.x

    data = [
        {
            "type": "box",
            "orientation": "h",
            "name": group,
            **(
                {"marker": {"color": colors[group]}, "line": {"color": colors[group]}}
                if colors and group in colors
                else {}
            ),
            "y": [place(b) for b in items],
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
        boxmode="overlay" if apart else "group",
        xaxis={"title": {"text": x_title}, **axis("score")},
        # The first group on top, as given; long names read level (the axis makes room).
        yaxis={"autorange": "reversed"},
        showlegend=not apart,
        legend=LEGEND_BELOW,
        margin={"l": 10},
    )


# Label shares: a bar per "evaluator · version", the category on the y axis so long names read
# level; the legend under the share axis. As tall as its place on the page (so nothing below
# jumps when it draws) until more bars need more room.
LABEL_BAR_PX = 22
LABEL_CHART_MIN_PX = 300


def create_label_bars(
    shares: Sequence[AnyPoint], title: str, evaluators: Mapping[str, str] | None = None
) -> Figure:
    """Plot label shares as stacked horizontal bars: (label, "evaluator · version", share[, n]).

    Labels are greys (components/colors.label_style), never a version's colour: ranked by name
    within their evaluator, so a label looks the same from run to run. `evaluators` names each
    bar's evaluator; its labels then form one titled legend group. Every tooltip gives n, the
    labelled annotations the share is of.
    """
    if not shares:
        return create_empty_figure("No labelled evaluations for these filters", title)
    evaluators = evaluators or {}
    categories = list(dict.fromkeys(str(point[1]) for point in shares))
    by_trace: dict[tuple[str, str], list[AnyPoint]] = {}
    for point in shares:
        by_trace.setdefault((evaluators.get(str(point[1]), ""), str(point[0])), []).append(point)
    # Evaluators in the order of their first bar, each one's labels by name.
    groups = list(dict.fromkeys(evaluators.get(bar, "") for bar in categories))
    names: dict[str, list[str]] = {}
    for group, label in sorted(by_trace, key=lambda key: (groups.index(key[0]), key[1])):
        names.setdefault(group, []).append(label)
    hover = Hover("percent", "labelled")
    data = []
    for group, labels in names.items():
        for rank, label in enumerate(labels):
            points = by_trace[(group, label)]
            shade, pattern = label_style(rank)
            data.append(
                {
                    "type": "bar",
                    "orientation": "h",
                    "name": label,
                    "legendgroup": group or label,
                    **({"legendgrouptitle": {"text": group}} if group else {}),
                    "x": [point[2] for point in points],
                    "y": [str(point[1]) for point in points],
                    "customdata": [hover.customdata(point) for point in points],
                    "hovertemplate": (
                        "<b>%{fullData.name}</b> · %{y}<br>%{customdata[0]}"
                        " · n = %{customdata[1]:,} labelled%{customdata[2]}<extra></extra>"
                    ),
                    "marker": {
                        "color": shade,
                        "line": {"color": LABEL_OUTLINE, "width": 1},
                        **({"pattern": {"shape": pattern, "solidity": 0.3}} if pattern else {}),
                    },
                }
            )
    height = max(LABEL_CHART_MIN_PX, 130 + LABEL_BAR_PX * len(categories))
    return _figure(
        data,
        title,
        height=height,
        barmode="stack",
        bargap=0.25,
        # No axis title: the ticks say percent, and the legend sits right under them.
        xaxis={**axis("percent"), "range": [0, 1], "dtick": 0.25},
        yaxis={
            "categoryorder": "array",
            "categoryarray": categories,
            # The first bar on top, as the names were given.
            "autorange": "reversed",
        },
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.1,
            "x": 0,
            "traceorder": "grouped",
        },
        # Room on the right for the 100 % tick's label.
        margin={"l": 10, "r": 24, "t": 40, "b": 30},
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


# Bucketed charts ---------------------------------------------------------------------------------

# A rate from fewer calls than this is drawn hollow and faded, off its line: one failed call is
# not 100 %.
MIN_CALLS = 5
TOO_FEW = "too few calls"  # too_few("calls"); charts of scores say "too few scores"
FEW_OPACITY = 0.55


def too_few(n_label: str = "calls") -> str:
    """Say what a hollow point lacks, in what the chart's n counts: "too few scores"."""
    return f"too few {n_label}"


def too_few_name(min_calls: int, n_label: str = "calls") -> str:
    """Name the legend entry that explains the hollow points (its swatch is a hollow circle)."""
    return f"{too_few(n_label)} (under {min_calls})"


def _too_few_key(min_calls: int, rank: int, n_label: str = "calls") -> dict[str, Any]:
    """Make the legend-only trace that explains hollow points: no data, after the series."""
    name = too_few_name(min_calls, n_label)
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "legendgroup": name,
        "legendrank": rank,
        "showlegend": True,
        # Tells it from the series (whose meta is what their colour stands for).
        "meta": name,
        "x": [None],
        "y": [None],
        "hoverinfo": "skip",
        "marker": {"color": MUTED, "symbol": "circle-open", "size": 8, "line": {"width": 1.5}},
    }


def min_calls_for_quantile(q: float) -> int:
    """Return the calls a q-quantile needs before it is read like the others.

    Below 1 / (1 - q) calls, fewer than one call is expected above the quantile, so it is merely
    the slowest call: a p95 of 12 calls is their maximum, a median of one call is that call.
    """
    return math.ceil(round(1 / (1 - q), 9))


@dataclass(frozen=True)
class Cell:
    """One series in one bucket: its value, the calls and traces behind it, where a click goes."""

    value: float | None
    calls: int
    traces: int | None = None
    unknown: int = 0
    href: str | None = None


@dataclass(frozen=True)
class ChartSeries:
    """A series of a bucketed chart: its legend name, colour, and cells by bucket start."""

    name: str
    color: str
    cells: Mapping[datetime, Cell] = field(default_factory=dict)
    dash: str = "solid"
    # What the colour stands for ("prompt · version", or the model), for tests and tools.
    key: str = ""


@dataclass(frozen=True)
class Buckets:
    """A chart's time axis: every bucket's edges (UTC) and the zone it is shown in."""

    edges: Sequence[datetime]
    zone: str = "UTC"

    @property
    def starts(self) -> list[datetime]:
        """Return every bucket's first instant."""
        return list(self.edges[:-1])

    def wall(self, moment: datetime) -> str:
        """Show an instant on the zone's wall clock, as plotly takes dates (it drops offsets)."""
        return moment.astimezone(ZoneInfo(self.zone)).strftime("%Y-%m-%d %H:%M")

    def span(self, index: int) -> str:
        """Describe bucket `index` for a tooltip: its first and last minute on the wall clock."""
        start, end = self.edges[index], self.edges[index + 1]
        first, last = self.wall(start), self.wall(end)
        same_day = first[:10] == last[:10]
        return f"{first} to {last[11:] if same_day else last}"

    def axis_title(self) -> str:
        """Name the time axis with its zone, so a reader knows which clock it follows."""
        return f"time ({self.zone})"


def _cell_data(buckets: Buckets, index: int, cell: Cell, hover: Hover, note: str) -> list[Any]:
    """Carry a point's tooltip parts, then its drill-down link, as _bucket_template reads."""
    traces = f" in {fmt_count(cell.traces)} traces" if cell.traces is not None else ""
    unknown = f" ({fmt_count(cell.unknown)} {hover.unknown_label})" if cell.unknown else ""
    return [
        fmt_value(cell.value, hover.unit),
        cell.calls,
        traces + unknown + note,
        buckets.span(index),
        cell.href,
    ]


def _bucket_template(hover: Hover) -> str:
    """Show the series, the bucket, the value and the n behind it; the link stays hidden."""
    return (
        "<b>%{fullData.name}</b><br>%{customdata[3]}<br>%{customdata[0]}"
        " · n = %{customdata[1]:,} " + hover.n_label + "%{customdata[2]}<extra></extra>"
    )


def create_bucket_figure(
    buckets: Buckets,
    series: Sequence[ChartSeries],
    title: str,
    y_title: str,
    hover: Hover,
    kind: Literal["bars", "lines"] = "lines",
    min_calls: int = 0,
    height: int = 330,
) -> Figure:
    """Plot one metric per bucket, a trace per series in the given (legend) order.

    Bars are for what adds up (calls, tokens, cost): every bucket is drawn, 0 where a series
    had no calls, stacked across series. Lines are for what does not (latency, rates): a bucket
    without calls is None, so the line breaks there instead of bridging it, and markers show a
    lone point. With `min_calls`, a point from fewer calls leaves its line and is drawn hollow
    and faded in its series' colour, its tooltip saying so, and the legend gains one entry
    (too_few_name) that explains such points. Every tooltip shows the n; each point carries
    its drill-down link last in its customdata.
    """
    if not series or not any(cell.calls for s in series for cell in s.cells.values()):
        return create_empty_figure("No data for these filters", title)
    x = [buckets.wall(start) for start in buckets.starts]
    data: list[dict[str, Any]] = []
    muted = False
    for rank, one in enumerate(series):
        empty = Cell(0.0 if kind == "bars" else None, 0)
        cells = [one.cells.get(start, empty) for start in buckets.starts]
        shown = [
            c.value if (kind == "bars" or (c.calls and c.calls >= min_calls)) else None
            for c in cells
        ]
        trace: dict[str, Any] = {
            "type": "bar" if kind == "bars" else "scatter",
            "name": one.name,
            "legendgroup": one.name,
            "legendrank": rank + 1,
            "meta": one.key or one.name,
            "x": x,
            "y": shown,
            "customdata": [_cell_data(buckets, i, c, hover, "") for i, c in enumerate(cells)],
            "hovertemplate": _bucket_template(hover),
            "marker": {"color": one.color},
        }
        if kind == "lines":
            trace |= {
                "mode": "lines+markers",
                "connectgaps": False,
                "line": {"color": one.color, "dash": one.dash},
            }
        data.append(trace)
        few = [i for i, c in enumerate(cells) if kind == "lines" and 0 < c.calls < min_calls]
        if few:
            note = f" ({too_few(hover.n_label)}: under {min_calls})"
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{one.name} ({too_few(hover.n_label)})",
                    "legendgroup": one.name,
                    "showlegend": False,
                    "meta": one.key or one.name,
                    "x": [x[i] for i in few],
                    "y": [cells[i].value for i in few],
                    "customdata": [_cell_data(buckets, i, cells[i], hover, note) for i in few],
                    "hovertemplate": _bucket_template(hover),
                    # Hollow and faded in the series' own colour: whose it is, but not to be
                    # read like the others.
                    "marker": {
                        "color": one.color,
                        "symbol": "circle-open",
                        "size": 8,
                        "line": {"width": 1.5},
                    },
                    "opacity": FEW_OPACITY,
                }
            )
            muted = True
    if muted:
        data.append(_too_few_key(min_calls, len(series) + 1, hover.n_label))
    layout: dict[str, Any] = {
        "xaxis": {"type": "date", "title": {"text": buckets.axis_title()}},
        "yaxis": {"title": {"text": y_title}, "rangemode": "tozero", **axis(hover.unit)},
        # The legend sits at the foot of the figure, below the time axis and its title (a legend
        # placed relative to the plot overlapped the axis title).
        "legend": {
            "orientation": "h",
            "yref": "container",
            "y": 0,
            "yanchor": "bottom",
            "traceorder": "normal",
        },
        "margin": {"b": 96},
    }
    if kind == "bars":
        layout |= {"barmode": "stack", "bargap": 0.1}
    return _figure(data, title, height=height, **layout)


def clicked_href(click: Mapping[str, Any] | None) -> str | None:
    """Return the drill-down link of a clicked bar or point, if it has one."""
    points = (click or {}).get("points") or []
    custom = points[0].get("customdata") if points and isinstance(points[0], dict) else None
    href = custom[-1] if isinstance(custom, list) and custom else None
    # Only our own paths: customdata travels through the browser.
    return href if isinstance(href, str) and href.startswith("/") and "//" not in href else None


def chart_buckets(
    edges: Sequence[datetime], seen: Iterable[datetime], size: timedelta, zone: str
) -> Buckets:
    """Join the window's buckets with any the data holds outside them (a clock change, a skew)."""
    starts = sorted(set(edges[:-1]) | set(seen))
    if not starts:
        return Buckets([], zone)
    return Buckets([*starts, max(edges[-1] if edges else starts[-1], starts[-1] + size)], zone)


def drill_href(state: FilterState, buckets: Buckets, start: datetime, **narrow: Any) -> str | None:
    """Link to the traces page for exactly one bucket (and, narrowed, one series), or None."""
    edges = list(buckets.edges)
    if start not in edges[:-1]:
        return None
    end = edges[edges.index(start) + 1]
    zone = ZoneInfo(buckets.zone)
    picked = dataclasses.replace(
        state,
        range="custom",
        # With their offsets, so the traces page reads the same instants in any zone.
        start=start.astimezone(zone),
        end=end.astimezone(zone),
        evaluator=None,
        **narrow,
    )
    return f"/traces{picked.query_string()}"
