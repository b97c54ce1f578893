"""The load test's pure helpers: percentiles, the memory verdict, CSRF and callback parsing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from devtools.signin import csrf_token
from load.client import parse_dependencies
from load.stats import Latency, memory_verdict, percentile


def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0) == 1.0
    assert percentile(values, 50) == 2.5
    assert percentile(values, 100) == 4.0
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert math.isnan(percentile([], 50))


def test_latency_is_in_milliseconds() -> None:
    latency = Latency.of([0.010, 0.020, 0.030])
    assert (latency.count, latency.p50_ms, latency.max_ms) == (3, 20.0, 30.0)
    assert latency.cell() == "20 / 29 / 29.8 (3)"
    assert Latency.of([]).cell() == "none"  # and None, not NaN, in the JSON


@pytest.mark.parametrize(
    ("rss", "stable"),
    [
        ([600.0, 601.0, 600.5], True),  # flat
        ([600.0, 610.0, 620.0], True),  # rising, but only 20 MB in all
        ([600.0, 580.0, 640.0], False),  # the last run grew by more than 5 %
        ([600.0, 620.0, 640.0], False),  # rising after every run, 40 MB in all
        ([640.0, 620.0, 630.0], True),  # not monotonic, last growth under 5 %
    ],
)
def test_memory_verdict(rss: list[float], stable: bool) -> None:
    verdict = memory_verdict(rss)
    assert verdict.stable is stable, verdict.reason
    assert verdict.label == ("stable" if stable else "growing")


def test_memory_verdict_needs_three_runs() -> None:
    with pytest.raises(ValueError):
        memory_verdict([600.0, 601.0])


def test_csrf_token_from_hidden_input_or_meta_or_empty() -> None:
    form = '<input id="csrf_token" name="csrf_token" type="hidden" value="abc.123-_x">'
    assert csrf_token(form) == "abc.123-_x"
    assert csrf_token('<meta name="csrf-token" content="tok">') == "tok"
    assert csrf_token('<input type="hidden" name="next" value="/">') == ""


def test_parse_dependencies_keeps_server_callbacks_with_string_ids() -> None:
    specs: list[dict[str, Any]] = [
        {
            "output": "..a-url.search...a-state.data..",
            "inputs": [{"id": "a-filter-prompt", "property": "value"}],
            "state": [{"id": "a-state", "property": "data"}],
            "prevent_initial_call": True,
            "clientside_function": None,
        },
        {
            "output": "a-pane.children",
            "inputs": [{"id": "a-grid", "property": "cellClicked"}],
            "state": [],
            "prevent_initial_call": False,
            "clientside_function": None,
        },
        {
            "output": "a-custom.style",
            "inputs": [{"id": "a-range", "property": "value"}],
            "clientside_function": {"namespace": "filters", "function_name": "x"},
        },
        {
            "output": '{"grid":["MATCH"],"type":"t"}.data',
            "inputs": [{"id": '{"grid":["MATCH"],"type":"c"}', "property": "value"}],
        },
    ]
    multi, single = parse_dependencies(specs)
    assert multi.outputs == (("a-url", "search"), ("a-state", "data"))
    assert multi.state == (("a-state", "data"),) and multi.prevent_initial_call
    assert single.outputs == (("a-pane", "children"),) and single.name == "a-pane.children"
