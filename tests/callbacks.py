"""Dash callbacks called as the browser calls them, through the Flask test client."""

from __future__ import annotations

from typing import Any

from dash import MATCH
from dash._utils import stringify_id
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from components.filter_bar import FilterBarAIO

ids = FilterBarAIO.ids


def route(client: FlaskClient, pathname: str, search: str = "") -> TestResponse:
    """Ask Dash Pages' router for a page's layout, as the browser does on navigation."""
    return client.post(
        "/_dash-update-component",
        json={
            "output": ".._pages_content.children..._pages_store.data..",
            "outputs": [
                {"id": "_pages_content", "property": "children"},
                {"id": "_pages_store", "property": "data"},
            ],
            "inputs": [
                {"id": "_pages_location", "property": "pathname", "value": pathname},
                {"id": "_pages_location", "property": "search", "value": search},
            ],
            "changedPropIds": ["_pages_location.pathname"],
            "state": [],
        },
    )


def _key(outputs: list[tuple[Any, str]]) -> str:
    """Name a callback's outputs as Dash does, each page's id as its MATCH pattern."""
    parts = []
    for make, prop in outputs:
        spec = make(MATCH) if callable(make) else make
        parts.append(f"{stringify_id(spec)}.{prop}")
    return parts[0] if len(parts) == 1 else ".." + "...".join(parts) + ".."


def post(
    client: FlaskClient,
    page: str,
    outputs: list[tuple[Any, str]],
    inputs: list[tuple[Any, str, Any]],
    state: list[tuple[Any, str, Any]] | None = None,
) -> dict[str, Any]:
    """Fire one of the bar's callbacks for a page, its first input changed; return the body."""

    def concrete(make: Any) -> Any:
        return make(page) if callable(make) else make

    def spec(make: Any, prop: str, value: Any) -> dict[str, Any]:
        return {"id": concrete(make), "property": prop, "value": value}

    payload = {
        "output": _key(outputs),
        "outputs": [{"id": concrete(m), "property": p} for m, p in outputs]
        if len(outputs) > 1
        else {"id": concrete(outputs[0][0]), "property": outputs[0][1]},
        "inputs": [spec(*i) for i in inputs],
        "state": [spec(*s) for s in state or []],
        "changedPropIds": [f"{stringify_id(concrete(inputs[0][0]))}.{inputs[0][1]}"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    return dict(response.json or {}) if response.status_code == 200 else {}


def home_poll(client: FlaskClient, seen: int | None, live: bool = True) -> dict[str, Any]:
    """Run home's poll as the browser does now: the bar's shared poll, then the banner's redraw.

    Returns the outputs under the old names (home-watermark, home-live-status, home-status), so
    it can stand in for tests/callbacks.home_poll.
    """
    polled = post(
        client,
        "home",
        [(ids.watermark, "data"), (ids.live_status, "children")],
        [(ids.poll, "n_intervals", 1), (ids.live, "value", live)],
        [(ids.watermark, "data", seen)],
    )
    banner = post(client, "home", [("home-status", "children")], [(ids.poll, "n_intervals", 1)])
    outputs: dict[str, Any] = dict(polled.get("sideUpdate", {}))
    outputs["home-live-status"] = polled["response"][stringify_id(ids.live_status("home"))]
    outputs["home-status"] = banner["response"]["home-status"]
    return outputs
