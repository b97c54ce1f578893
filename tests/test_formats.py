"""Numbers on screen: one rule per unit in Python and the same rules in the grid's JavaScript."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.charts import Hover, create_histogram, create_label_bars, create_series_figure
from components.formats import (
    NO_VALUE,
    Unit,
    axis,
    fmt_count,
    fmt_delta,
    fmt_ms,
    fmt_number,
    fmt_pct,
    fmt_score,
    fmt_usd,
    fmt_value,
)
from components.table import column_defs
from pages._shared import table_context
from services import tables
from store.analytics import Delta
from store.views import Histogram

from .conftest import AuthActions

JS = Path(__file__).resolve().parents[1] / "assets" / "dashAgGridFunctions.js"


@pytest.mark.parametrize(
    ("shown", "expected"),
    [
        (fmt_count(1204), "1,204"),
        (fmt_count(1_234_567.4), "1,234,567"),
        (fmt_pct(0.1818), "18.2%"),
        (fmt_pct(1.0), "100.0%"),
        (fmt_ms(705.4), "705 ms"),
        (fmt_ms(1705.2435), "1.71 s"),
        (fmt_ms(12_345_678.0), "12,345.68 s"),
        (fmt_usd(0.000123456789), "$0.0001"),
        (fmt_usd(0.0000065432), "$0.0000065"),
        (fmt_usd(0.0123), "$0.0123"),
        (fmt_usd(1234.5), "$1,234.50"),
        (fmt_usd(-0.5), "-$0.5000"),
        (fmt_usd(-0.00001), "-$0.000010"),
        (fmt_usd(0.0), "$0.0000"),
        (fmt_score(0.73333), "0.73"),
        (fmt_score(4.2), "4.20"),
        (fmt_number(1234.56789), "1,234.568"),
        (fmt_number(2.0), "2"),
        (fmt_number(-0.0001), "0"),
    ],
)
def test_each_unit_reads_one_way(shown: str, expected: str) -> None:
    assert shown == expected


UNITS: tuple[Unit, ...] = ("count", "percent", "ms", "usd", "score", "number")


def test_unknown_is_a_dash_never_zero() -> None:
    for unit in UNITS:
        assert fmt_value(None, unit) == NO_VALUE
        assert fmt_delta(None, unit) == NO_VALUE


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.031, "percent", "+3.1 pp"),
        (-0.1818, "percent", "-18.2 pp"),
        (120.4, "ms", "+120 ms"),
        (-1500.0, "ms", "-1.50 s"),
        (0.0012, "usd", "+$0.0012"),
        (12.5, "number", "+12.5"),
        (-0.05, "score", "-0.05"),
        (0.0, "ms", "0 ms"),
        (0.00001, "percent", "0.0 pp"),  # rounds to zero: no sign
    ],
)
def test_differences_carry_a_sign_and_rates_move_in_points(value, unit, expected) -> None:
    assert fmt_delta(value, unit) == expected


def test_chart_axes_and_tooltips_use_the_same_units() -> None:
    points = [
        ("v1", "2026-11-25T09:00:00+00:00", 0.25, 40),
        ("v1", "2026-11-25T10:00:00+00:00", None, 0),
    ]
    figure = create_series_figure(points, "Error rate", "error rate", Hover("percent"))
    assert figure["layout"]["yaxis"]["tickformat"] == axis("percent")["tickformat"]
    (trace,) = figure["data"]
    # The tooltip shows the value as the cards do, and the calls behind it.
    assert trace["customdata"] == [["25.0%", 40, ""], [NO_VALUE, 0, ""]]
    assert "%{customdata[0]}" in trace["hovertemplate"]
    assert "n = %{customdata[1]:,} calls" in trace["hovertemplate"]

    cost = create_series_figure(
        [("v1", "x", 0.5, 10, 3)], "Cost", "cost", Hover("usd", unknown_label="without cost")
    )
    assert cost["layout"]["yaxis"]["tickprefix"] == "$"
    assert cost["data"][0]["customdata"] == [["$0.5000", 10, " (3 without cost)"]]
    latency = create_series_figure([("v1", "x", 1705.0, 2)], "Latency", "latency", Hover("ms"))
    assert latency["layout"]["yaxis"]["ticksuffix"] == " ms"
    assert latency["data"][0]["customdata"][0][0] == "1.71 s"

    # Without a unit (a page not converted yet) nothing changes.
    plain = create_series_figure([("v1", "x", 3.0)], "Volume", "LLM calls")
    assert "customdata" not in plain["data"][0] and "tickformat" not in plain["layout"]["yaxis"]


def test_label_shares_and_histograms_read_in_their_units() -> None:
    bars = create_label_bars([("pass", "correctness · v1", 0.625, 8)], "Label shares")
    assert bars["layout"]["xaxis"]["tickformat"] == axis("percent")["tickformat"]
    assert bars["data"][0]["customdata"] == [["62.5%", 8, ""]]
    assert "labelled" in bars["data"][0]["hovertemplate"]
    histogram = create_histogram(Histogram((0.0, 500.0, 1500.0), (3, 4)), "Latency", "latency")
    assert histogram["data"][0]["customdata"] == ["0 ms to 500 ms", "500 ms to 1.50 s"]
    assert histogram["layout"]["xaxis"]["ticksuffix"] == " ms"


def test_comparison_columns_take_their_unit_from_the_row() -> None:
    defs = {d["field"]: d for d in column_defs(tables.COMPARISON_COLUMNS)}
    for field, format_ in (("a", "unit"), ("delta", "unit-delta"), ("ci_low", "unit-delta")):
        function = defs[field]["valueFormatter"]["function"]
        assert function == f"formatCell(params.value, '{format_}', params)"
    assert [c.id for c in tables.COMPARISON_COLUMNS][-1] == "unit"
    assert tables.metric_unit("error rate") == "percent"
    assert tables.metric_unit("p50 latency (ms)") == "ms"
    assert tables.metric_unit("p99 latency (ms)") == "ms"
    assert tables.metric_unit("cost per call") == "usd"
    assert tables.metric_unit("tokens per call") == "number"
    assert tables.metric_unit("mean correctness") == "score"
    assert tables.metric_unit("mean error rate judge") == "score"  # an evaluator's name


# The grid's formatter against the Python one -------------------------------------------------

CASES: list[tuple[Any, str]] = [
    (value, unit)
    for unit in ("count", "percent", "ms", "usd", "score", "number")
    for value in (
        0,
        1204,
        0.1818,
        0.031,
        705.4,
        1705.2435,
        0.0123,
        1234.567,
        -0.05,
        -1500.3,
        6.5432e-06,
    )
]


def _run_js(calls: list[dict[str, Any]]) -> list[str]:
    """Call the grid's formatter in node on each case; return what the cells would show."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = f"""
        global.window = {{}};
        require({json.dumps(str(JS))});
        const f = window.dashAgGridFunctions;
        const calls = {json.dumps(calls)};
        console.log(JSON.stringify(calls.map(c => c.delta
            ? f.formatDelta(c.value, c.unit)
            : f.formatCell(c.value, c.format, c.params))));
    """
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    result: list[str] = json.loads(done.stdout)
    return result


def test_the_grid_formats_as_the_cards_do() -> None:
    calls = [{"value": v, "format": u, "unit": u, "delta": False} for v, u in CASES]
    calls += [{"value": v, "unit": u, "delta": True} for v, u in CASES]
    shown = _run_js(calls)
    expected = [fmt_value(v, u) for v, u in CASES]  # type: ignore[arg-type]
    expected += [fmt_delta(v, u) for v, u in CASES]  # type: ignore[arg-type]
    assert shown == expected


def test_the_grid_reads_a_comparison_rows_unit() -> None:
    rows: list[dict[str, Any]] = [
        {"value": 0.1818, "format": "unit", "params": {"data": {"unit": "percent"}}},
        {"value": 0.031, "format": "unit-delta", "params": {"data": {"unit": "percent"}}},
        {"value": 1705.2435, "format": "unit", "params": {"data": {"unit": "ms"}}},
        {"value": 120.4, "format": "unit-delta", "params": {"data": {"unit": "ms"}}},
        {"value": None, "format": "unit-delta", "params": {"data": {"unit": "ms"}}},
        {"value": 3.14159, "format": "unit", "params": {"data": {}}},
        {"value": 1705.2435, "format": "number"},  # no params: as before
        {"value": True, "format": "yes-no"},
    ]
    for row in rows:
        row["delta"] = False
    assert _run_js(rows) == [
        "18.2%",
        "+3.1 pp",
        "1.71 s",
        "+120 ms",
        "",
        "3.142",
        "1,705.244",
        "yes",
    ]


DELTAS = [
    Delta("p50 latency (ms)", 1705.2435, 1825.6, 120.3565, 80.123456789, 160.5, "bootstrap", 9, 8),
    Delta("tokens per call", 512.3333333333334, 498.0, -14.333333333333371, -40.0, 9.5, "b", 9, 8),
    Delta("error rate", 0.18181818181818182, 0.2125, 0.030681818181818177, -0.2, 0.3, "n", 11, 8),
    Delta("cost per call", 0.000123456789, 0.00013, 6.543211e-06, None, None, "", 9, 8),
    Delta("mean correctness", 0.7333333333333333, None, None, None, None, "b", 9, 8),
]


def test_comparison_rows_carry_their_unit_and_the_csv_stays_raw(app, monkeypatch) -> None:
    # The store's numbers are fixed here: this is about how they are shown and exported.
    monkeypatch.setattr(tables.store_analytics, "compare_versions", lambda *a, **k: DELTAS)
    args = {"a": tables.version_value(None, "v1"), "b": tables.version_value(None, "v2")}
    with app.server.test_request_context("/"):
        plain = table_context("")
        context = tables.Context(plain.store, plain.filters, plain.names, args)
        page = tables.table("comparison").view(context)
    records = {r["metric"]: r for r in tables.records(page)}
    assert {metric: r["unit"] for metric, r in records.items()} == {
        "p50 latency (ms)": "ms",
        "tokens per call": "number",
        "error rate": "percent",
        "cost per call": "usd",
        "mean correctness": "score",
    }
    # What the grid shows of these rows, by the JavaScript formatter.
    shown = _run_js(
        [
            {"value": records[m][c], "format": f, "params": {"data": records[m]}, "delta": False}
            for m, c, f in (
                ("error rate", "a", "unit"),
                ("error rate", "delta", "unit-delta"),
                ("p50 latency (ms)", "a", "unit"),
                ("p50 latency (ms)", "delta", "unit-delta"),
                ("cost per call", "delta", "unit-delta"),
                ("mean correctness", "b", "unit"),
            )
        ]
    )
    assert shown == ["18.2%", "+3.1 pp", "1.71 s", "+120 ms", "+$0.0000065", ""]
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    response = client.get(f"/api/export/analytics/comparison.csv?a={args['a']}&b={args['b']}")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert {m: r["unit"] for m, r in rows.items()} == {m: r["unit"] for m, r in records.items()}
    for delta in DELTAS:
        for column in ("a", "b", "delta", "ci_low", "ci_high"):
            value = getattr(delta, column)
            # The raw number at full precision: no %, ms, $ or pp, no rounding, "" if unknown.
            expected = "" if value is None else repr(value)
            assert rows[delta.metric][column] == expected, (delta.metric, column)
