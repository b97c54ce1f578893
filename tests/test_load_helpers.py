"""The load test's pure helpers: percentiles, the memory verdict, CSRF and callback parsing."""

from __future__ import annotations

import math
from typing import Any, cast

import pytest
from dash import MATCH
from dash._utils import stringify_id
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from components.filter_bar import FilterBarAIO
from devtools.signin import csrf_token
from load.analyst import Analyst, Plan
from load.client import Recorder, callback_payload, component_key, parse_dependencies
from load.stats import Latency, memory_verdict, percentile
from services import users
from services.container import get_services
from tests.seed import seed


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


def test_parse_dependencies_keeps_server_callbacks_and_match_ones() -> None:
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
        {
            "output": "a-list.children",
            "inputs": [{"id": '{"row":["ALL"],"type":"undo"}', "property": "n_clicks"}],
        },
    ]
    multi, single, matching = parse_dependencies(specs)
    assert multi.outputs == (("a-url", "search"), ("a-state", "data"))
    assert multi.state == (("a-state", "data"),) and multi.prevent_initial_call
    assert single.outputs == (("a-pane", "children"),) and single.name == "a-pane.children"
    assert matching.matches and not multi.matches


def test_a_match_callback_binds_to_each_page_present() -> None:
    ids = FilterBarAIO.ids
    pattern = stringify_id(ids.state(MATCH))
    (callback,) = parse_dependencies(
        [
            {
                "output": f"{stringify_id(ids.url(MATCH))}.search",
                "inputs": [{"id": stringify_id(ids.filter(MATCH, "prompt")), "property": "value"}],
                "state": [{"id": pattern, "property": "data"}],
            }
        ]
    )
    keys = [component_key(i) for page in ("a", "b") for i in (ids.url(page), ids.state(page))]
    keys += [component_key(ids.filter("a", "prompt")), "plain"]
    (bound,) = callback.bind(keys)  # page b has no prompt filter: no instance
    assert bound.inputs == ((component_key(ids.filter("a", "prompt")), "value"),)
    assert bound.output == callback.output and bound.name == "a-filter-bar-url.search"
    payload = callback_payload(bound, list(bound.inputs), lambda prop: "p1")
    assert payload["inputs"] == [
        {"id": ids.filter("a", "prompt"), "property": "value", "value": "p1"}
    ]
    assert payload["state"] == [{"id": ids.state("a"), "property": "data", "value": "p1"}]
    assert payload["changedPropIds"] == [f"{stringify_id(ids.filter('a', 'prompt'))}.value"]


class _Response:
    """What DashClient reads of a requests.Response, from the Flask test client's response."""

    def __init__(self, response: TestResponse) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.text = response.get_data(as_text=True)
        self._json = response.get_json(silent=True)

    def json(self) -> Any:
        return self._json


class _Cookies:
    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def get(self, name: str) -> str | None:
        cookie = self.client.get_cookie(name)
        return cookie.value if cookie else None


class _Http:
    """requests.Session's face over the Flask test client, so DashClient talks to a test app."""

    def __init__(self, client: FlaskClient, base: str) -> None:
        self.client = client
        self.base = base
        self.cookies = _Cookies(client)

    def request(self, method: str, url: str, **kwargs: Any) -> _Response:
        response = self.client.open(
            url.removeprefix(self.base),
            method=method,
            data=kwargs.get("data"),
            headers=kwargs.get("headers") or {},
            follow_redirects=bool(kwargs.get("allow_redirects")),
        )
        return _Response(response)

    def close(self) -> None:
        pass


def test_the_analyst_drives_the_filter_bar_and_poll_as_the_browser_does(app, client) -> None:
    seed(app)
    base = "http://localhost"
    with get_services(app.server).sessions.begin() as db:
        users.create_user(db, "load@example.com", "load-password-123", role="viewer")
    recorder = Recorder()
    plan = Plan(base=base, password="load-password-123", prompts=("alpha",), window=("", ""))
    analyst = Analyst(plan, "load@example.com", recorder, seed=1)
    analyst.client.http = cast("Any", _Http(client, base))
    analyst.client.login("load@example.com", plan.password)

    def fired() -> list[str]:
        names = [s.name for s in recorder.samples if s.kind == "callback"]
        recorder.samples.clear()
        return names

    analyst.page = "analytics"
    analyst.client.open("/analytics", "?range=30d")
    assert "analytics-kpis.children" in fired()

    analyst.pick_prompt()  # alpha: the only other choice than All
    names = fired()
    # The bar writes the URL and the page's state store (set_props), and offers alpha's
    # versions; the page redraws for the new state.
    assert {"analytics-filter-bar-url.search", "analytics-filter-bar-versions.options"} <= set(
        names
    )
    assert "analytics-kpis.children" in names
    assert "prompt=alpha" in analyst.client.value(("analytics-state", "data"))

    analyst.pick_versions()
    assert "analytics-kpis.children" in fired()
    assert "versions=" in analyst.client.value(("analytics-state", "data"))

    analyst.client.change({analyst._filter("range"): "24h"})
    assert "range=24h" in analyst.client.value(("analytics-state", "data"))
    fired()

    analyst.poll()
    assert fired() == ["analytics-filter-bar-watermark.data"]

    analyst.page = "home"
    analyst.client.navigate("/")
    fired()
    analyst.poll()
    assert sorted(fired()) == ["home-filter-bar-watermark.data", "home-status.children"]
    assert all(s.error is None for s in recorder.samples)
