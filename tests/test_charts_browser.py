"""Charts in headless Chromium on the demo slice: drill-down counts, one colour a version, gaps.

Figures are read as plotly rendered them (the graph's `_fullData`), clicks are real mouse clicks
on the drawn bar or point.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.support.ui import WebDriverWait

from components.charts import TOO_FEW, too_few_name
from tests.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.integration]
PROMPT = "support-answer"
TRACES = re.compile(r" in ([\d,]+) traces")

_READ = """
const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
if (!gd || !gd._fullData || !gd._fullData.length) { return null; }
return gd._fullData.map(t => ({
    name: t.name, meta: t.meta === undefined ? null : t.meta, type: t.type,
    y: t.y ? Array.from(t.y) : null, customdata: t.customdata || null,
    line: t.line ? t.line.color : null, marker: t.marker ? t.marker.color : null,
    connectgaps: t.connectgaps === undefined ? null : t.connectgaps,
}));
"""

# The drawn element of point `i` of trace `c`: d3 binds each trace's calcdata to its group.
_POINT = """
const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
for (const group of gd.querySelectorAll('g.trace')) {
    const data = group.__data__;
    if (!data || !data[0] || data[0].trace.index !== arguments[1]) { continue; }
    for (const point of group.querySelectorAll('.point')) {
        if (point.__data__ && point.__data__.i === arguments[2]) { return point; }
    }
}
return null;
"""


def _traces(dash_duo, graph: str, counted: bool = True) -> list[dict[str, Any]]:
    """Wait for a graph to draw data (with tooltips' n if `counted`) and return its traces."""
    found: list[list[dict[str, Any]] | None] = [None]

    def drawn(_driver) -> bool:
        found[0] = dash_duo.driver.execute_script(_READ, f"#{graph}")
        return bool(found[0]) and (not counted or any(t["customdata"] for t in found[0] or []))

    WebDriverWait(dash_duo.driver, 30).until(drawn)
    return found[0] or []


def _series(traces: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep a chart's series: not their points of too few calls, nor the legend entry for those."""
    return [
        t for t in traces if "(too few " not in t["name"] and not t["name"].startswith("too few ")
    ]


def test_clicking_a_bar_lists_exactly_the_traces_its_tooltip_counts(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 1000)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, f"/analytics?prompt={PROMPT}")
    traces = _traces(dash_duo, "analytics-tokens")
    # The busiest bucket of any series that can be drilled into.
    candidates = [
        (row[1], curve, i)
        for curve, trace in enumerate(traces)
        for i, row in enumerate(trace["customdata"] or [])
        if row[4] and row[1]
    ]
    assert candidates
    _calls, curve, index = max(candidates)
    row = traces[curve]["customdata"][index]
    match = TRACES.search(row[2])
    assert match, row
    expected = int(match.group(1).replace(",", ""))

    point = dash_duo.driver.execute_script(_POINT, "#analytics-tokens", curve, index)
    assert point is not None
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", point
    )
    ActionChains(dash_duo.driver).move_to_element(point).click().perform()

    WebDriverWait(dash_duo.driver, 20).until(lambda d: urlsplit(d.current_url).path == "/traces")
    query = parse_qs(urlsplit(dash_duo.driver.current_url).query)
    assert query["range"] == ["custom"] and query["prompt"] == [PROMPT]
    assert query["versions"] == [traces[curve]["name"]]
    assert "start" in query and "end" in query
    dash_duo.wait_for_contains_text("#traces-table", f"{expected:,} traces", timeout=30)
    # The traces page's own volume bars add up to the calls the clicked bar stood for.
    volume = _traces(dash_duo, "traces-volume")
    assert sum(r[1] for r in volume[0]["customdata"]) == row[1]
    assert dash_duo.get_logs() == []


def test_a_version_has_the_same_colour_on_analytics_and_evaluations(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 1000)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, f"/analytics?prompt={PROMPT}&pct=p95")
    drawn = _traces(dash_duo, "analytics-latency")
    latency = _series(drawn)
    analytics = {t["meta"]: t["line"] for t in latency}
    by_name = {t["name"]: t["line"] for t in latency}
    assert len(set(analytics.values())) == len(analytics) > 1  # one colour per version
    # A p95 from under 20 calls: off the line, in its version's colour, and one legend entry.
    faded = [t for t in drawn if t["name"].endswith(f" ({TOO_FEW})")]
    assert faded, "the demo slice should have buckets of under 20 calls"
    for points in faded:
        assert points["marker"] == by_name[points["name"].removesuffix(f" ({TOO_FEW})")]
    assert [t["name"] for t in drawn if t["meta"] == t["name"] and TOO_FEW in t["name"]] == [
        too_few_name(20)
    ]

    dash_duo.driver.get(f"{dash_duo.server.url}/evaluations?prompt={PROMPT}")
    trend = _series(_traces(dash_duo, "evaluations-trend"))
    shared = [t for t in trend if t["meta"] in analytics]
    assert shared
    for line in shared:
        assert line["line"] == analytics[line["meta"]], line["name"]
    scores = _traces(dash_duo, "evaluations-scores", counted=False)
    boxes = [t for t in scores if t["name"] in by_name]
    assert boxes
    for box in boxes:
        assert box["marker"] == by_name[box["name"]], box["name"]
    # Labels never take a version's colour.
    labels = _traces(dash_duo, "evaluations-labels")
    assert labels and not {t["marker"] for t in labels} & set(analytics.values())
    assert dash_duo.get_logs() == []


def test_no_line_crosses_an_empty_bucket(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 1000)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/analytics?pct=p50")
    assert dash_duo.find_element("#analytics-pct input[value='p50']").is_selected()
    lines = [t for t in _series(_traces(dash_duo, "analytics-latency")) if t["line"]]
    gapped = []
    for trace in lines:
        assert trace["connectgaps"] is False
        y = trace["y"]
        calls = [row[1] for row in trace["customdata"]]
        # A bucket without calls is no point (one with too few calls is off the line too).
        assert all(y[i] is None for i, n in enumerate(calls) if n == 0)
        known = [i for i, v in enumerate(y) if v is not None]
        # An empty bucket between two with calls: the line must break there.
        if known and any(calls[i] == 0 for i in range(known[0], known[-1])):
            gapped.append(trace)
    assert gapped, "the demo slice should leave some version without calls in some bucket"
    # Drawn as separate pieces: a new path, or a new move (M), after each gap.
    pieces = dash_duo.driver.execute_script(
        """
        const gd = document.querySelector('#analytics-latency .js-plotly-plot');
        const counts = [];
        for (const group of gd.querySelectorAll('g.trace.scatter')) {
            let moves = 0;
            for (const path of group.querySelectorAll('path.js-line')) {
                moves += (path.getAttribute('d').match(/M/g) || []).length;
            }
            counts.push([group.__data__[0].trace.name, moves]);
        }
        return counts;
        """
    )
    drawn = dict(pieces)
    assert any(drawn.get(t["name"], 0) > 1 for t in gapped), pieces

    # The percentile toggle redraws the one chart and keeps its choice in the URL.
    dash_duo.driver.find_element(
        "xpath", "//*[@id='analytics-pct']//label[normalize-space()='latency p99']"
    ).click()
    WebDriverWait(dash_duo.driver, 15).until(lambda d: "pct=p99" in d.current_url)
    dash_duo.wait_for_contains_text("#analytics-latency", "Latency p99", timeout=20)
    assert dash_duo.get_logs() == []
