"""Security headers and session cookie flags on every kind of response."""

from __future__ import annotations

import pytest

from app import create_app
from devtools.phoenix import free_port

from .conftest import AuthActions


def _directives(policy: str) -> dict[str, str]:
    pairs = (part.strip().partition(" ") for part in policy.split(";"))
    return {name: value for name, _, value in pairs}


@pytest.mark.parametrize(
    "path", ["/login", "/", "/analytics", "/api/export/x/nope.csv", "/healthz"]
)
def test_every_dashboard_response_carries_the_headers(client, auth, path: str) -> None:
    auth.create()
    auth.login()
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["frame-ancestors"] == "'self'"
    # Frames only from the dashboard's own Phoenix proxy.
    assert policy["frame-src"] == "http://localhost/phoenix/"
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"]


def test_the_dash_page_allows_its_inline_scripts_by_hash(client, auth) -> None:
    auth.create()
    auth.login()
    response = client.get("/")
    script_src = _directives(response.headers["Content-Security-Policy"])["script-src"]
    assert script_src.count("'sha256-") >= 2  # the renderer and the Pages title callback


def test_phoenix_ui_responses_may_not_be_framed_elsewhere(settings) -> None:
    app = create_app(
        settings.with_overrides(phoenix_enabled=True, phoenix_url=f"http://127.0.0.1:{free_port()}")
    )
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    response = client.get("/phoenix/projects")
    assert response.status_code == 502
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("secure", [False, True])
def test_session_cookie_flags(settings, secure: bool) -> None:
    app = create_app(settings.with_overrides(session_cookie_secure=secure))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    cookie = auth.login().headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure
