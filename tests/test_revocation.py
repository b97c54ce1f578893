"""Sign-out and token revocation live in our database: they survive restarts and reach replicas."""

from __future__ import annotations

import shutil
from pathlib import Path

import jwt
import pytest
from flask.testing import FlaskClient

from app import create_app
from devtools.signin import csrf_token
from services.container import get_services
from settings import Settings

from .conftest import PASSWORD, AuthActions


def _signed_in(app, email: str = "analyst@example.com") -> FlaskClient:
    client = app.server.test_client()
    AuthActions(app, client).login(email)
    assert client.get("/").status_code == 200
    return client


def _token(client: FlaskClient) -> str:
    response = client.get("/api/token")
    assert response.status_code == 200
    return str((response.get_json() or {})["token"])


def _uses_token(app, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return int(app.server.test_client().get("/api/token", headers=headers).status_code)


def _replay(app, client: FlaskClient) -> int:
    copy = client.get_cookie("session")
    assert copy is not None
    replay = app.server.test_client()
    replay.set_cookie("session", copy.value)
    return int(replay.get("/").status_code)


def test_a_sign_out_on_one_replica_ends_the_session_on_another_without_a_shared_cache(
    settings: Settings,
) -> None:
    # Two replicas on one database and no Redis: each has only its own in-process cache, which
    # is also what a Redis restart without persistence leaves behind.
    first, second = create_app(settings), create_app(settings)
    AuthActions(first, first.server.test_client()).create()
    client = _signed_in(first)
    assert _replay(second, client) == 200
    copy = client.get_cookie("session")
    assert copy is not None
    AuthActions(first, client).logout()
    replay = second.server.test_client()
    replay.set_cookie("session", copy.value)
    response = replay.get("/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    # And a restarted app (a fresh process, empty caches) refuses it too.
    restarted = create_app(settings)
    replay = restarted.server.test_client()
    replay.set_cookie("session", copy.value)
    assert replay.get("/").status_code == 302


def test_a_token_minted_before_sign_out_stops_after_it(app, client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    token = _token(client)
    assert _uses_token(app, token) == 403  # authenticated, but a token cannot mint tokens
    auth.logout()
    response = app.server.test_client().get(
        "/api/export/analytics/llm-calls.csv", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert "sign-in has ended" in response.json["message"]


def test_every_mint_is_a_fresh_token_with_its_own_jti(client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    first, second = _token(client), _token(client)
    assert first != second
    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (first, second)]
    assert claims[0]["jti"] != claims[1]["jti"]
    # Signing in again gives a new sign-in, and so new tokens too.
    auth.logout()
    auth.login()
    third = jwt.decode(_token(client), options={"verify_signature": False})
    assert third["sid"] != claims[0]["sid"]


def test_sign_out_everywhere_ends_every_session_and_token(app, auth: AuthActions) -> None:
    auth.create()
    laptop, phone = _signed_in(app), _signed_in(app)
    token = _token(phone)
    form = laptop.get("/logout").get_data(as_text=True)
    assert "Sign out everywhere" in form
    response = laptop.post("/logout/everywhere", data={"csrf_token": csrf_token(form)})
    assert response.status_code == 302
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 302
    assert phone.post("/_dash-update-component", json={}).status_code == 401
    assert _uses_token(app, token) == 401
    # The user can sign in again afterwards.
    assert _signed_in(app).get("/").status_code == 200


def test_the_navbar_offers_sign_out_everywhere_as_a_tokened_post(client, auth) -> None:
    auth.create()
    auth.login()
    layout = str(client.get("/_dash-layout").get_json())
    assert "/logout/everywhere" in layout and "Sign out everywhere" in layout


def test_sign_out_everywhere_needs_the_csrf_token(client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    assert client.post("/logout/everywhere").status_code == 400
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["users", "sign-out-everywhere", "analyst@example.com"], None),
        (["users", "set-password", "analyst@example.com"], "a-brand-new-password\n"),
        (["users", "set-role", "analyst@example.com", "viewer"], None),
        (["users", "deactivate", "analyst@example.com"], None),
    ],
)
def test_admin_commands_end_the_users_sessions_and_tokens(
    app, auth: AuthActions, args: list[str], stdin: str | None
) -> None:
    auth.create()
    client = _signed_in(app)
    token = _token(client)
    result = app.server.test_cli_runner().invoke(args=args, input=stdin)
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 302
    assert _uses_token(app, token) == 401


def test_a_new_password_works_and_the_old_one_does_not(app, auth: AuthActions) -> None:
    auth.create()
    result = app.server.test_cli_runner().invoke(
        args=["users", "set-password", "analyst@example.com"], input="a-brand-new-password\n"
    )
    assert result.exit_code == 0, result.output
    assert "Wrong email or password" in auth.login(password=PASSWORD).text
    assert auth.login(password="a-brand-new-password").status_code == 302


def test_an_unchanged_role_ends_no_session(app, auth: AuthActions) -> None:
    auth.create(role="member")
    client = _signed_in(app)
    result = app.server.test_cli_runner().invoke(
        args=["users", "set-role", "analyst@example.com", "member"]
    )
    assert result.exit_code == 0, result.output
    assert client.get("/").status_code == 200


def test_a_request_whose_sign_in_cannot_be_checked_is_refused(
    settings: Settings, tmp_path: Path
) -> None:
    app = create_app(settings)
    AuthActions(app, app.server.test_client()).create()
    client = _signed_in(app)
    # The database goes away: SQLite then opens an empty file, where no sign-in can be checked.
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    get_services(app.server).engine.dispose()
    shutil.move(database, tmp_path / "moved.db")
    response = client.post("/_dash-update-component", json={})
    assert response.status_code == 503
    assert "cannot check your sign-in" in response.get_json()["message"]
    assert client.get("/").status_code == 503
