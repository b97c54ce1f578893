"""Dash callbacks called as the browser calls them, through the Flask test client."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

POLL_OUTPUT = "..home-watermark.data...home-live-status.children...home-status.children.."


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


def home_poll(client: FlaskClient, seen: int | None, live: bool = True) -> dict[str, Any]:
    """Run the home page's poll (watermark, live status, Phoenix banner); return its outputs."""
    payload = {
        "output": POLL_OUTPUT,
        "outputs": [
            {"id": "home-watermark", "property": "data"},
            {"id": "home-live-status", "property": "children"},
            {"id": "home-status", "property": "children"},
        ],
        "inputs": [
            {"id": "home-poll", "property": "n_intervals", "value": 1},
            {"id": "home-live", "property": "value", "value": live},
        ],
        "state": [{"id": "home-watermark", "property": "data", "value": seen}],
        "changedPropIds": ["home-poll.n_intervals"],
    }
    response = client.post("/_dash-update-component", json=payload)
    assert response.status_code == 200 and response.json, response.get_data(as_text=True)
    return dict(response.json["response"])
