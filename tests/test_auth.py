"""Login, logout, the guard, rate limiting and deactivation."""

from __future__ import annotations

import pytest

from app import create_app
from services.auth import LoginRateLimiter, safe_next

from .conftest import AuthActions


def test_anonymous_page_redirects_to_login_with_next(client) -> None:
    response = client.get("/analytics?prompt=a")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/analytics?prompt%3Da"


def test_anonymous_callback_gets_json_401(client) -> None:
    response = client.post("/_dash-update-component", json={})
    assert response.status_code == 401
    assert response.json["error"] == "authentication required"


def test_healthz_is_public(client) -> None:
    assert client.get("/healthz").status_code == 200


def test_login_page_is_styled_with_self_hosted_bootstrap(client) -> None:
    html = client.get("/login").get_data(as_text=True)
    assert 'href="/vendor/css/bootstrap.min.css"' in html
    assert "cdn" not in html.lower()
    css = client.get("/vendor/css/bootstrap.min.css")
    assert css.status_code == 200
    assert b"Bootstrap" in css.data[:200]
    icons = client.get("/vendor/css/font/bootstrap-icons.min.css")
    assert icons.status_code == 200
    font = client.get("/vendor/css/font/fonts/bootstrap-icons.woff2")
    assert font.status_code == 200


def test_login_then_pages_and_logout(client, auth: AuthActions) -> None:
    auth.create()
    response = auth.login(next_url="/?project=support-bot")
    assert response.status_code == 302
    assert response.headers["Location"] == "/?project=support-bot"
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    auth.logout()
    assert client.get("/").status_code == 302


def test_a_signed_out_sessions_cookie_no_longer_signs_in(app, client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    # A copy of the cookie: what a response still in flight at logout re-sends, or a thief holds.
    copy = client.get_cookie("session")
    assert copy is not None
    auth.logout()
    replay = app.server.test_client()
    replay.set_cookie("session", copy.value)
    response = replay.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    # The refused session is emptied, so no response refreshes it either.
    assert replay.get("/").status_code == 302
    # Signing in again opens a new session that works.
    assert auth.login().status_code == 302 and client.get("/").status_code == 200


def test_wrong_password_gets_a_clear_message(auth: AuthActions) -> None:
    auth.create()
    response = auth.login(password="nope-nope-nope")
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert "Wrong email or password" in auth.login(email="nobody@example.com").text
    assert "Enter your email and password" in auth.login(password="").text


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/traces?x=1", "/traces?x=1"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nLocation: https://evil", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_only_relative_next_is_honoured(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_login_ignores_an_offsite_next(auth: AuthActions) -> None:
    auth.create()
    response = auth.login(next_url="https://evil.example.com/steal")
    assert response.headers["Location"] == "/"


def test_repeated_failures_rate_limit_the_account(settings, auth: AuthActions) -> None:
    auth.create()
    for _ in range(settings.login_max_failures):
        assert "Wrong email or password" in auth.login(password="wrong-password").text
    # Even the right password is refused while the account is paused.
    response = auth.login()
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.text


def test_repeated_failures_rate_limit_the_address(settings, auth: AuthActions) -> None:
    auth.create()
    # One address may try many accounts, but only so many times in all.
    for i in range(settings.login_max_failures * LoginRateLimiter.ADDRESS_FACTOR):
        auth.login(email=f"guess{i}@example.com", REMOTE_ADDR="10.0.0.9")
    assert "Too many failed sign-in attempts" in auth.login(REMOTE_ADDR="10.0.0.9").text
    # Another address can still sign in to the same account.
    assert auth.login(REMOTE_ADDR="10.0.0.10").status_code == 302


@pytest.mark.integration
def test_rate_limit_is_shared_through_redis_across_replicas(settings, redis_url: str) -> None:
    shared = settings.with_overrides(redis_url=redis_url)
    first, second = create_app(shared), create_app(shared)
    AuthActions(first, first.server.test_client()).create()
    for _ in range(settings.login_max_failures):
        AuthActions(first, first.server.test_client()).login(password="wrong-password")
    response = AuthActions(second, second.server.test_client()).login()
    assert "Too many failed sign-in attempts" in response.text


def test_deactivated_user_loses_access_at_the_next_request(app, client, auth) -> None:
    email = auth.create()
    auth.login()
    assert client.get("/").status_code == 200
    result = app.server.test_cli_runner().invoke(args=["users", "deactivate", email])
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302
    assert client.post("/_dash-update-component", json={}).status_code == 401
    assert "Wrong email or password" in auth.login().text


def test_expired_session_gets_401_for_callbacks(client, auth) -> None:
    auth.create()
    auth.login()
    with client.session_transaction() as session:
        session.clear()
    response = client.post("/_dash-update-component", json={})
    assert response.status_code == 401
    assert response.json["login_url"] == "/login"


@pytest.mark.parametrize("trusted", [0, 1])
def test_the_address_limit_believes_forwarded_for_only_behind_a_trusted_proxy(
    settings, trusted: int
) -> None:
    app = create_app(settings.with_overrides(trusted_proxies=trusted))
    auth = AuthActions(app, app.server.test_client())
    auth.create()
    # Every request arrives from the proxy's own address, naming a different client each time.
    for i in range(settings.login_max_failures * LoginRateLimiter.ADDRESS_FACTOR):
        auth.login(
            email=f"guess{i}@example.com",
            REMOTE_ADDR="10.0.0.1",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{i}",
        )
    refused = "Too many failed sign-in attempts" in auth.login(
        REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.200"
    ).get_data(as_text=True)
    # Trusted: each client has its own count. Untrusted: the header is ignored, the proxy is one.
    assert refused is (trusted == 0)
