"""PHOENIX_ENABLED both ways: off means no Phoenix navigation, no Phoenix calls and no sync."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import dash
import pytest

from app import create_app
from devtools.phoenix import free_port
from services.container import get_services

from .callbacks import home_poll
from .conftest import AuthActions

PAGES = ["/", "/traces", "/evaluations", "/experiments", "/analytics", "/playground"]


@pytest.fixture
def dead_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, list[Any]]]:
    """A port where nothing listens, and every connection attempt this process makes to it."""
    port = free_port()
    attempts: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def _record(address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == port:
            attempts.append(address)

    def connect(self: socket.socket, address: Any) -> None:
        _record(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _record(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield port, attempts


def _walk_the_app(app: dash.Dash) -> dict[str, Any]:
    """Do what an analyst and an operator do: health, login, users, every page, polls, exports."""
    server = app.server
    client = server.test_client()
    auth = AuthActions(app, client)
    seen: dict[str, Any] = {"health": client.get("/healthz").status_code}
    runner = server.test_cli_runner()
    created = runner.invoke(
        args=["users", "create", "ops@example.com", "--role", "admin"],
        input="operator-password\noperator-password\n",
    )
    seen["users create"] = created.exit_code, created.output
    seen["users list"] = runner.invoke(args=["users", "list"]).output
    seen["login"] = auth.login("ops@example.com", "operator-password").status_code
    seen["pages"] = {path: client.get(path).status_code for path in PAGES}
    seen["layout"] = client.get("/_dash-layout").status_code
    with server.test_request_context("/"):
        seen["layouts"] = {
            page["path"]: str(page["layout"]() if callable(page["layout"]) else page["layout"])
            for page in dash.page_registry.values()
        }
    seen["poll"] = home_poll(client, seen=None)
    seen["export"] = client.get("/api/export/analytics/llm-calls.csv").status_code
    experiments = client.get("/api/export/experiments/experiments.csv")
    seen["experiments export"] = experiments.status_code, experiments.get_json()
    seen["api proxy"] = client.get("/api/phoenix/v1/projects").status_code
    seen["ui proxy"] = client.get("/phoenix/projects").status_code
    seen["shell"] = client.get("/").get_data(as_text=True)
    return seen


def test_flag_off_makes_no_connection_to_phoenix(settings, dead_port) -> None:
    port, attempts = dead_port
    app = create_app(
        settings.with_overrides(
            phoenix_enabled=False, phoenix_url=f"http://127.0.0.1:{port}", sync_worker=True
        )
    )
    seen = _walk_the_app(app)

    assert attempts == []
    services = get_services(app.server)
    assert services.phoenix is None and services.sync is None
    assert "sync_worker" not in app.server.extensions
    # Login, users and health keep working.
    assert seen["health"] == 200
    assert seen["users create"][0] == 0, seen["users create"][1]
    assert "ops@example.com" in seen["users list"]
    assert seen["login"] == 302
    assert set(seen["pages"].values()) == {200}
    assert seen["layout"] == 200
    assert seen["export"] == 200
    # Phoenix's pages say the integration is off; its proxies answer 404 with a reason.
    assert "The Phoenix integration is turned off." in seen["layouts"]["/experiments"]
    assert "The Phoenix integration is turned off." in seen["layouts"]["/playground"]
    assert seen["experiments export"][0] == 400
    assert "turned off" in seen["experiments export"][1]["message"]
    assert seen["api proxy"] == 404 and seen["ui proxy"] == 404
    assert "home-phoenix" not in str(seen["layouts"]["/"])
    # The poll still answers, with the banner saying the integration is off, from no request.
    assert "home-status" in str(seen["poll"])


def test_flag_on_does_reach_for_phoenix(settings, dead_port) -> None:
    """The same walk with the flag on tries the dead port: the counter above can see attempts."""
    port, attempts = dead_port
    app = create_app(
        settings.with_overrides(phoenix_enabled=True, phoenix_url=f"http://127.0.0.1:{port}")
    )
    seen = _walk_the_app(app)
    assert attempts, "the flag-on walk never tried Phoenix, so the flag-off test proves nothing"
    assert seen["health"] == 200 and seen["login"] == 302
    assert seen["api proxy"] == 502  # Phoenix is down: a clear gateway error, not a crash
