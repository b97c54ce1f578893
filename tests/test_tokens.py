"""Dashboard tokens: minting, bearer use on the proxy, and every way a token is refused."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from app import create_app
from services.tokens import REQUIRED_CLAIMS

from .conftest import TEST_SECRET, AuthActions


def _token(client) -> str:
    response = client.get("/api/token")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return str(response.json["token"])


def test_anonymous_cannot_mint(client) -> None:
    assert client.post("/api/token").status_code == 401
    assert client.get("/api/token").status_code == 401


def test_token_claims_and_algorithm(client, auth) -> None:
    auth.create(role="member")
    auth.login()
    token = _token(client)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, TEST_SECRET, algorithms=["HS256"])
    assert set(REQUIRED_CLAIMS) <= set(claims)
    assert claims["email"] == "analyst@example.com"
    assert claims["name"] == "Ana Lyst"
    assert claims["role"] == "member"
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60


def test_every_mint_is_fresh_and_lives_token_ttl_s(settings) -> None:
    app = create_app(settings.with_overrides(token_ttl_s=200))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.login(email=auth.create())
    first, second = _token(client), _token(client)
    assert first != second
    claims = jwt.decode(first, TEST_SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 200


def test_bearer_token_works_on_the_api_without_a_cookie(app, client, auth) -> None:
    auth.create()
    auth.login()
    token = _token(client)
    fresh = app.server.test_client()
    ok = fresh.get("/api/token", headers={"Authorization": f"Bearer {token}"})
    # A token may not mint its successor, but it does authenticate the request.
    assert ok.status_code == 403
    assert "browser session" in ok.json["message"]
    # Pages keep to the session cookie: a token is for scripts and the proxy.
    assert fresh.get("/", headers={"Authorization": f"Bearer {token}"}).status_code == 302


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "1",
        "email": "analyst@example.com",
        "name": "Ana",
        "role": "member",
        "sid": "a-sign-in",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"), "signature"),
        (lambda _t: jwt.encode(_claims(exp=int(time.time()) - 100), TEST_SECRET), "expired"),
        (lambda _t: jwt.encode(_claims(), "another-secret-0123456789-abcdefghijk"), "signature"),
        (lambda _t: jwt.encode(_claims(), TEST_SECRET, algorithm="HS512"), "HS256"),
        (lambda _t: jwt.encode(_claims(), "", algorithm="none"), "HS256"),
        (lambda _t: jwt.encode({"sub": "1", "exp": int(time.time()) + 60}, TEST_SECRET), "claim"),
        (lambda _t: "not-a-jwt", "malformed"),
    ],
    ids=["tampered", "expired", "wrong-key", "hs512", "alg-none", "missing-claims", "garbage"],
)
def test_bad_tokens_get_401_with_a_reason(app, client, auth, make, reason: str) -> None:
    auth.create()
    auth.login()
    token = make(_token(client))
    fresh = app.server.test_client()
    response = fresh.get("/api/phoenix/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert reason in response.json["message"]
    assert token not in response.get_data(as_text=True)


def test_deactivated_users_tokens_stop_at_once(app, client, auth) -> None:
    email = auth.create()
    auth.login()
    token = _token(client)
    fresh = app.server.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    # Phoenix is off in these settings, so an accepted token reaches the proxy's 404.
    assert fresh.get("/api/phoenix/v1/projects", headers=headers).status_code == 404
    app.server.test_cli_runner().invoke(args=["users", "deactivate", email])
    refused = fresh.get("/api/phoenix/v1/projects", headers=headers)
    assert refused.status_code == 401
    assert "deactivated" in refused.json["message"]


@pytest.mark.integration
def test_bearer_token_reads_phoenix_through_the_proxy(settings, phoenix_server) -> None:
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create(role="viewer")
    auth.login()
    token = _token(client)
    script = app.server.test_client()
    response = script.get("/api/phoenix/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert any(p["name"] == "default" for p in response.json["data"])
    write = script.post(
        "/api/phoenix/v1/projects", json={"name": "x"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert write.status_code == 403
