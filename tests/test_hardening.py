"""Issue 12's hardening: no known secret, endpoint-based public routes, the login limiter, CSRF."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest
from flask.sessions import SecureCookieSessionInterface

from app import create_app
from devtools.phoenix import DEFAULT_VENV
from devtools.signin import csrf_token
from services import tokens
from settings import DEV_SECRET_KEY, PROJECT_DIR, Settings, SettingsError

from .conftest import TEST_SECRET, AuthActions

# The development key ------------------------------------------------------------------------


def test_the_built_in_key_is_refused_without_the_development_switch(settings: Settings) -> None:
    with pytest.raises(SettingsError, match=r"SECRET_KEY.*make secret"):
        create_app(settings.with_overrides(secret_key=DEV_SECRET_KEY))
    # With the switch on, a laptop starts with it.
    create_app(settings.with_overrides(secret_key=DEV_SECRET_KEY, dev_mode=True))


def test_a_short_key_is_refused_even_in_development() -> None:
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        Settings.from_env({"SECRET_KEY": "x" * 31, "DEV_MODE": "true"})


def test_gunicorn_and_flask_stop_with_one_clear_sentence(
    settings: Settings, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEV_MODE", "FLASK_APP")}
    env["DATABASE_URL"] = settings.database_url
    # Another process: its own chdb directory, never this session's (one process per directory).
    env["STORE_URL"] = f"chdb://{tmp_path / 'clickhouse'}"
    env["PHOENIX_ENABLED"] = "false"
    result = subprocess.run(
        [sys.executable, "-c", "import app; app.server"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Error: SECRET_KEY is unset" in result.stderr and "make secret" in result.stderr
    assert "Traceback" not in result.stderr


def _dev_key_cookie(user_id: str) -> str:
    """Forge what anyone who read the source could: a session cookie signed with the dev key."""
    from flask import Flask

    forger = Flask("forger")
    forger.secret_key = DEV_SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return str(serializer.dumps({"_user_id": user_id, "_fresh": True, "sid": "x"}))


def test_a_cookie_or_token_signed_with_the_dev_key_gets_nothing(app, client, auth) -> None:
    auth.create(role="admin")
    client.set_cookie("session", _dev_key_cookie("1"))
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/api/token").status_code == 401
    now = int(time.time())
    forged = jwt.encode(
        {
            "sub": "1",
            "email": "analyst@example.com",
            "name": "x",
            "role": "admin",
            "sid": "x",
            "iat": now,
            "exp": now + 3 * 365 * 86400,
            "jti": "j",
        },
        DEV_SECRET_KEY,
        algorithm="HS256",
    )
    response = app.server.test_client().get(
        "/api/export/analytics/llm-calls.csv", headers={"Authorization": f"Bearer {forged}"}
    )
    assert response.status_code == 401


def test_token_ttl_caps_a_token_whatever_its_exp_says(settings: Settings) -> None:
    issued = int(time.time()) - settings.token_ttl_s - tokens.LEEWAY_S - 5
    claims = {
        "sub": "1",
        "email": "a@example.com",
        "name": "a",
        "role": "admin",
        "sid": "s",
        "iat": issued,
        "exp": issued + 3 * 365 * 86400,
        "jti": "j",
    }
    token = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError, match="TOKEN_TTL_S"):
        tokens.decode(token, TEST_SECRET, max_age_s=settings.token_ttl_s)
    claims["iat"] = int(time.time())
    fresh = jwt.encode(claims, TEST_SECRET, algorithm="HS256")
    assert tokens.decode(fresh, TEST_SECRET, max_age_s=settings.token_ttl_s)["sub"] == "1"


def test_the_image_and_compose_cannot_start_without_a_real_key() -> None:
    dockerfile = (PROJECT_DIR / "Dockerfile").read_text()
    assert "SECRET_KEY" not in dockerfile and "DEV_MODE" not in dockerfile
    compose = (PROJECT_DIR / "docker-compose.yml").read_text()
    assert 'SECRET_KEY: "${SECRET_KEY:?' in compose
    assert "DEV_MODE" not in compose or 'DEV_MODE: "false"' in compose
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "DEV_MODE=true $(PY) -m devtools.demo" in makefile


# Public routes by endpoint --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/assets/", "/assets//x", "/vendor//x", "/_dash-component-suites/", "/vendorx", "/nope"],
)
def test_anonymous_requests_off_the_public_endpoints_never_get_the_index(client, path) -> None:
    response = client.get(path)
    assert response.status_code in (302, 401, 404), response.status_code
    body = response.get_data(as_text=True)
    assert "_dash-config" not in body and "dash_renderer" not in body
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/login")


def test_the_login_page_still_loads_its_styles_and_scripts(client) -> None:
    assert client.get("/vendor/css/bootstrap.min.css").status_code == 200
    assert client.get("/_favicon.ico").status_code == 200


# The login limiter -----------------------------------------------------------------------------


def _post_logins(app, count: int, password: str, address: str) -> list[str]:
    """Post `count` logins at the same instant from one address; return each page's text."""
    barrier = threading.Barrier(count)
    results: list[str] = [""] * count

    def post(index: int) -> None:
        client = app.server.test_client()
        form = client.get("/login").get_data(as_text=True)
        data = {"email": "analyst@example.com", "password": password, "next": "/"}
        data["csrf_token"] = csrf_token(form)
        barrier.wait()
        response = client.post("/login", data=data, environ_base={"REMOTE_ADDR": address})
        results[index] = response.get_data(as_text=True)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_guesses_cannot_exceed_the_limit(app, settings: Settings, auth) -> None:
    auth.create()
    pages = _post_logins(app, 12, "wrong-password", "10.1.1.1")
    checked = sum("Wrong email or password" in page for page in pages)
    refused = sum("Too many failed sign-in attempts" in page for page in pages)
    assert (checked, refused) == (settings.login_max_failures, 12 - settings.login_max_failures)
    # The right password from the same address now waits too.
    assert "Too many failed" in auth.login(REMOTE_ADDR="10.1.1.1").get_data(as_text=True)


def test_a_guesser_cannot_lock_the_real_user_out_from_another_address(
    settings: Settings, auth: AuthActions
) -> None:
    auth.create(role="admin")
    for _ in range(settings.login_max_failures):
        auth.login(password="wrong-password", REMOTE_ADDR="10.6.6.6")
    assert "Too many failed" in auth.login(REMOTE_ADDR="10.6.6.6").get_data(as_text=True)
    assert auth.login(REMOTE_ADDR="10.0.0.2").status_code == 302


def test_many_addresses_get_a_slow_trickle_on_one_account(
    settings: Settings, auth: AuthActions
) -> None:
    auth.create()
    for i in range(settings.login_max_failures):
        auth.login(password="wrong-password", REMOTE_ADDR=f"10.9.0.{i}")
    # Past the limit, one try per backoff interval for the account (1 s, then doubling),
    # whatever the address: as the interval grows, a try soon lands inside it and waits.
    pages = [
        auth.login(password="wrong", REMOTE_ADDR=f"10.9.1.{i}").get_data(as_text=True)
        for i in range(6)
    ]
    assert "Wrong email" in pages[0]
    waits = [page for page in pages if "Too many failed sign-in attempts" in page]
    assert waits and all(" s." in page for page in waits)


def test_a_device_that_signed_in_before_skips_the_account_backoff(
    app, settings: Settings, auth: AuthActions
) -> None:
    auth.create()
    assert auth.login(REMOTE_ADDR="10.0.0.3").status_code == 302
    auth.logout()
    guesser = AuthActions(app, app.server.test_client())
    # Guess from new addresses until the account makes one wait: its backoff slot is taken.
    for i in range(settings.login_max_failures + 8):
        page = guesser.login(password="wrong-password", REMOTE_ADDR=f"10.9.2.{i}").text
        if "Too many failed sign-in attempts" in page:
            break
    else:
        pytest.fail("the account never made a guesser wait")
    # The real user's browser carries its device cookie, and signs in at once.
    assert auth.login(REMOTE_ADDR="10.0.0.3").status_code == 302


# CSRF and body size ----------------------------------------------------------------------------


def test_an_invalid_bearer_header_does_not_skip_the_csrf_check(client, auth) -> None:
    auth.create()
    auth.login()
    response = client.post("/logout", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 400
    assert client.get("/").status_code == 200  # still signed in


def test_callbacks_larger_than_the_limit_get_413(client, auth, settings: Settings) -> None:
    auth.create()
    auth.login()
    body = b'{"output": "' + b"x" * (settings.callback_max_body_bytes + 1) + b'"}'
    response = client.post("/_dash-update-component", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "at most" in response.json["message"]


# Phoenix's own CSP ---------------------------------------------------------------------------


@pytest.mark.integration
def test_phoenix_keeps_its_own_csp_with_framing_limited_to_us(settings, phoenix_server) -> None:
    assets = DEFAULT_VENV / "lib"
    worker = next(
        Path(assets).glob("python*/site-packages/phoenix/server/static/assets/jsSandboxWorker-*.js")
    )
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    response = client.get(f"/phoenix/assets/{worker.name}")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "connect-src 'none'" in policy and "worker-src 'none'" in policy
    assert policy.endswith("frame-ancestors 'self'")
