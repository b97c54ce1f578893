"""Against a real Phoenix: the home page shows its version, or a clear banner when it is down."""

from __future__ import annotations

import json

import pytest

from app import create_app
from devtools.phoenix import free_port
from services.phoenix import PhoenixClient, PhoenixUnavailable

from .callbacks import route
from .conftest import AuthActions

pytestmark = pytest.mark.integration


def _home_layout_text(app) -> str:
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    response = route(client, "/")
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.dumps(response.json)


def test_client_reads_version_and_projects(phoenix_server) -> None:
    client = PhoenixClient(phoenix_server.url)
    assert client.version() == "20.26.1"
    assert any(p["name"] == "default" for p in client.projects())


def test_client_reports_an_unreachable_phoenix() -> None:
    client = PhoenixClient(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(PhoenixUnavailable, match="cannot be reached"):
        client.version()


def test_home_shows_phoenix_version_and_url(phoenix_settings, phoenix_server) -> None:
    text = _home_layout_text(create_app(phoenix_settings))
    assert "Connected to Phoenix 20.26.1 at " in text
    assert phoenix_server.url in text


def test_home_shows_a_banner_when_phoenix_is_down(settings) -> None:
    down = settings.with_overrides(
        phoenix_enabled=True, phoenix_url=f"http://127.0.0.1:{free_port()}"
    )
    text = _home_layout_text(create_app(down))
    assert "Phoenix can't be reached" in text
    assert "Traceback" not in text
