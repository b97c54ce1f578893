"""What the screenshots showed wrong: a "-0%" drop in red, a UTC sparkline in the wrong colours,
a half-width traces grid, cut-off times and Phoenix's raw experiment times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import create_app
from components.alerts import (
    BASELINE_COLOR,
    CANDIDATE_COLOR,
    channel_form,
    side_colors,
    sparkline,
)
from components.colors import catalogue_colors, series_color, version_key
from components.kpis import _change
from components.table import TIME_WIDTH_PX, column_defs, create_data_table
from db.models import MonitorPoint
from services import experiments, tables
from services.monitor_rules import MonitorSpec
from services.monitors import MonitorView


def _text(component: Any) -> str:
    return str(component.to_plotly_json())


def _find(component: Any, component_id: str) -> Any:
    """Return the component with this id in a layout tree, or None."""
    if getattr(component, "id", None) == component_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, component_id)
            if found is not None:
                return found
    return None


# 1. KPI change: a change that rounds to 0 % is neutral ------------------------------------------


@pytest.mark.parametrize(
    ("current", "previous"), [(996.0, 1000.0), (1004.0, 1000.0), (1000.0, 1000.0)]
)
@pytest.mark.parametrize("lower_is_better", [False, True])
def test_a_change_that_rounds_to_zero_is_neither_a_drop_nor_a_rise(
    current: float, previous: float, lower_is_better: bool
) -> None:
    span = _change(current, previous, lower_is_better=lower_is_better)
    classes = str(getattr(span, "className", ""))
    assert "text-body-secondary" in classes
    assert "text-danger" not in classes and "text-success" not in classes
    assert "±0 % vs previous" in _text(span)
    assert "-0%" not in _text(span) and "bi-arrow" not in _text(span)


@pytest.mark.parametrize(
    ("current", "lower_is_better", "color", "arrow", "text"),
    [
        (994.0, False, "text-danger", "bi-arrow-down", "-1% vs previous"),
        (994.0, True, "text-success", "bi-arrow-down", "-1% vs previous"),
        (1006.0, False, "text-success", "bi-arrow-up", "+1% vs previous"),
        (1006.0, True, "text-danger", "bi-arrow-up", "+1% vs previous"),
    ],
)
def test_a_change_past_the_dead_zone_keeps_its_arrow_and_colour(
    current: float, lower_is_better: bool, color: str, arrow: str, text: str
) -> None:
    span = _change(current, 1000.0, lower_is_better=lower_is_better)
    assert color in str(getattr(span, "className", ""))
    assert arrow in _text(span) and text in _text(span)


def test_no_earlier_data_is_still_said() -> None:
    assert "no earlier data" in _text(_change(5.0, 0.0, lower_is_better=False))
    assert "no earlier data" in _text(_change(5.0, None, lower_is_better=False))


# 2. The alerts sparkline: display zone, ticks, headroom, the versions' colours -----------------


def _view(
    rule: str = "relative", candidate: str = "v3", baseline: str | None = "v2"
) -> MonitorView:
    spec = MonitorSpec(name="p95", prompt="support-answer", metric="p95_ms", rule=rule)
    result: dict[str, Any] = {"candidate": {"label": candidate, "value": 1.0, "n": 9}}
    if baseline is not None:
        result["baseline"] = {"label": baseline, "value": 1.0, "n": 9}
    now = datetime(2026, 11, 26, 19, 12, tzinfo=UTC)
    return MonitorView(1, "p95", spec, False, "firing", now, now, result, "a@example.com")


def _points(start: datetime, step: timedelta, n: int = 4) -> list[MonitorPoint]:
    return [
        MonitorPoint(at=start + i * step, candidate=14_000.0 + i, baseline=4_400.0, state="firing")
        for i in range(n)
    ]


def _figure(div: Any) -> dict[str, Any]:
    graph = div.children[0]
    figure: dict[str, Any] = graph.figure.to_plotly_json()
    return figure


CATALOGUE = catalogue_colors(("support-answer", v) for v in ("v1", "v2", "v3"))


def test_the_sparkline_shows_times_on_the_display_zones_clock() -> None:
    # Naive, as SQLite hands them back: UTC.
    points = _points(datetime(2026, 11, 26, 18, 12, 5), timedelta(seconds=10))
    figure = _figure(sparkline(_view(), points, zone="Europe/Berlin", catalogue=CATALOGUE))
    xs = list(figure["data"][0]["x"])
    assert xs[0] == datetime(2026, 11, 26, 19, 12, 5)  # 18:12 UTC is 19:12 in Berlin (CET)
    assert "Europe/Berlin" in _text(sparkline(_view(), points, zone="Europe/Berlin"))


def test_the_sparkline_never_repeats_one_tick_label_within_a_minute() -> None:
    points = _points(datetime(2026, 11, 26, 18, 12, 5, tzinfo=UTC), timedelta(seconds=10))
    xaxis = _figure(sparkline(_view(), points))["layout"]["xaxis"]
    assert "tickformat" not in xaxis  # one fixed minute format repeats the same label
    stops = {tuple(s["dtickrange"]): s["value"] for s in xaxis["tickformatstops"]}
    assert "%S" in stops[(None, 60_000)]  # ticks seconds apart name their seconds


def test_the_sparkline_leaves_headroom_above_the_highest_line() -> None:
    points = _points(datetime(2026, 11, 26, 18, 0, tzinfo=UTC), timedelta(minutes=5))
    low, high = _figure(sparkline(_view(), points))["layout"]["yaxis"]["range"]
    top = max(p.candidate or 0.0 for p in points)
    assert high > top + 0.1 * (top - 4_400.0)
    assert 0.0 <= low < 4_400.0


def test_the_sparkline_takes_each_versions_colour_from_the_catalogue() -> None:
    points = _points(datetime(2026, 11, 26, 18, 0, tzinfo=UTC), timedelta(minutes=5))
    figure = _figure(sparkline(_view(), points, catalogue=CATALOGUE))
    v3 = series_color(version_key("support-answer", "v3"), CATALOGUE)
    v2 = series_color(version_key("support-answer", "v2"), CATALOGUE)
    assert v3 != v2
    assert figure["data"][0]["line"]["color"] == v3
    assert figure["data"][1]["line"]["color"] == v2


def test_sides_that_are_not_one_version_keep_the_fixed_colours() -> None:
    periods = _view("previous_period", "all versions, last 24 h", "all versions, the 24 h before")
    assert side_colors(periods, CATALOGUE) == (CANDIDATE_COLOR, BASELINE_COLOR)
    unknown = _view(candidate="v9", baseline="v8")
    assert side_colors(unknown, CATALOGUE) == (CANDIDATE_COLOR, BASELINE_COLOR)
    assert side_colors(_view(), None) == (CANDIDATE_COLOR, BASELINE_COLOR)


def test_the_add_channel_button_keeps_its_label_on_one_line() -> None:
    form = channel_form()
    button_col = form.children[-1]
    assert button_col.md == "auto"
    assert "text-nowrap" in button_col.children.className


# 3. The traces grid is full width until a trace opens in the pane ----------------------------


@pytest.fixture
def phoenix_app(settings) -> Any:
    return create_app(
        settings.with_overrides(phoenix_enabled=True, phoenix_url="http://127.0.0.1:9")
    )


def test_the_traces_grid_takes_the_full_width_until_a_trace_opens(phoenix_app) -> None:
    from pages import traces

    with phoenix_app.server.test_request_context("/"):
        layout = traces.layout()
        assert _find(layout, "traces-table-col").lg == 12
        assert "d-none" in _find(layout, "traces-pane-col").className
        pane, table_lg, pane_class = traces.open_trace({"rowId": "abc123"})
        assert pane is not None and table_lg == 6 and "d-none" not in pane_class
        pane, table_lg, pane_class = traces.open_trace({})
        assert pane is None and table_lg == 12 and "d-none" in pane_class


# 4. Time columns are wide enough for their whole text ----------------------------------------


@pytest.mark.parametrize("name", ["traces", "llm-calls", "evaluations"])
def test_time_columns_fit_a_whole_time(name: str) -> None:
    defs = column_defs(tables.table(name).columns, paged=True)
    times = [d for d in defs if d["field"] == "start_time"]
    assert times and all(d["minWidth"] == TIME_WIDTH_PX for d in times)
    assert all("minWidth" not in d for d in defs if d["field"] != "start_time")


# 5. Experiments: creation time in the display zone, grid as tall as its rows -----------------


def test_the_experiments_created_at_is_a_time_column() -> None:
    columns = {c.id: c for c in experiments.EXPERIMENT_TABLE}
    assert columns["created_at"].format == "time"
    assert [c.id for c in experiments.EXPERIMENT_TABLE] == experiments.EXPERIMENT_COLUMNS


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("2026-11-26T18:12:00Z", "2026-11-26T18:12:00+00:00"),
        ("2026-11-26T18:12:00.250000", "2026-11-26T18:12:00.250000+00:00"),
        ("2026-11-26T19:12:00+01:00", "2026-11-26T19:12:00+01:00"),
        ("not a time", "not a time"),
        (None, None),
    ],
)
def test_phoenix_times_become_iso_8601_with_an_offset(raw: str | None, iso: str | None) -> None:
    assert experiments.iso_time(raw) == iso


def test_a_small_grid_is_as_tall_as_its_rows() -> None:
    rows = [{"id": "a"}, {"id": "b"}]
    small = create_data_table(
        "g", experiments.EXPERIMENT_TABLE, export_href="/x", title="t", rows=rows, auto_height=True
    )
    grid = small.children[1].children[0]
    assert grid.dashGridOptions["domLayout"] == "autoHeight"
    assert grid.style.get("height") is None
    fixed = create_data_table(
        "h", experiments.EXPERIMENT_TABLE, export_href="/x", title="t", rows=rows
    )
    grid = fixed.children[1].children[0]
    assert "domLayout" not in grid.dashGridOptions and grid.style["height"] == "420px"
