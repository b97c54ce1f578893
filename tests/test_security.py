"""Security headers and session cookie flags on every kind of response."""

from __future__ import annotations

import logging

import pytest

from app import create_app
from devtools.phoenix import free_port
from devtools.signin import csrf_token
from services.container import get_services

from .conftest import PASSWORD, AuthActions
from .test_feature_flag import _walk_the_app


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


# CSRF and cross-site changes -----------------------------------------------------------------


def test_login_needs_the_forms_csrf_token(client, auth: AuthActions) -> None:
    auth.create()
    data = {"email": "analyst@example.com", "password": PASSWORD}
    for token in (None, "forged-token"):
        body = data if token is None else {**data, "csrf_token": token}
        refused = client.post("/login", data=body)
        assert refused.status_code == 400
        assert "This form expired or did not come from this site" in refused.text
        # The refused form comes back with a fresh token and the email kept.
        assert csrf_token(refused.text) and 'value="analyst@example.com"' in refused.text
    assert client.get("/", follow_redirects=False).status_code == 302  # still signed out
    assert auth.login().status_code == 302


def test_logout_needs_a_post_with_the_token(client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    # A link or an <img> elsewhere can only GET: that shows a confirmation, nothing more.
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and "Sign out of the dashboard?" in confirm.text
    assert client.post("/logout").status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    assert auth.logout().headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_the_navbar_signs_out_with_a_tokened_post(client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    layout = client.get("/_dash-layout").json
    form = _find(layout, lambda c: c.get("props", {}).get("action") == "/logout")
    assert form["props"]["method"] == "POST"
    hidden = _find(form, lambda c: c.get("props", {}).get("name") == "csrf_token")
    assert client.post("/logout", data={"csrf_token": hidden["props"]["value"]}).status_code == 302


def _find(node: object, match) -> dict:
    """Return the first component in a Dash layout JSON that matches."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if match(item):
                return item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError("no such component")


CROSS_SITE = [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.localhost"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
@pytest.mark.parametrize(
    "path", ["/login", "/logout", "/_dash-update-component", "/api/phoenix/graphql", "/phoenix/x"]
)
def test_changes_from_other_sites_are_refused(client, auth, path: str, headers) -> None:
    auth.create()
    auth.login()
    response = client.post(path, json={"query": "{ __typename }"}, headers=headers)
    assert response.status_code == 403
    assert response.json["error"] == "cross-site request refused"


def test_same_origin_changes_pass(client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    headers = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    form = client.get("/logout").get_data(as_text=True)
    response = client.post("/logout", data={"csrf_token": csrf_token(form)}, headers=headers)
    assert response.status_code == 302


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_dash_callbacks_refuse_what_a_foreign_form_could_send(
    client, auth, content_type: str | None
) -> None:
    auth.create()
    auth.login()
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/_dash-update-component", data='{"output":"x"}', headers=headers)
    assert response.status_code == 400
    assert response.json["error"] == "csrf token missing or invalid"


# Roles on every write path -------------------------------------------------------------------

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Every route that accepts a change, and what guards it; a new one fails here until listed.
WRITE_ROUTES = {
    "/login": "CSRF token; signs in only with the right password",
    "/logout": "CSRF token; signs out only the caller",
    "/_dash-update-component": "JSON only; the callbacks that write (prompts, alerts) check "
    "the role on the server (tests/test_prompt_identity.py, tests/test_monitors.py)",
    "/api/phoenix/<rawpath:path>": "proxy: viewers may not write",
    "/phoenix/<rawpath:path>": "proxy: viewers may not write",
    "/phoenix/": "proxy: viewers may not write",
    "/phoenix": "proxy: viewers may not write",
    "/logout/everywhere": "CSRF token (form post)",
    "/api/monitors": "members and admins; JSON or a bearer token",
    "/api/monitors/<int:monitor_id>": "members and admins; JSON or a bearer token",
    "/api/monitors/<int:monitor_id>/pause": "members and admins; JSON or a bearer token",
    "/api/monitors/<int:monitor_id>/resume": "members and admins; JSON or a bearer token",
    "/api/channels": "admins; JSON or a bearer token",
    "/api/channels/<int:channel_id>": "admins; JSON or a bearer token",
    "/api/channels/<int:channel_id>/test": "members and admins; JSON or a bearer token",
    "/api/settings": "JSON only; the caller's own theme and zone (tests/test_theme_tz.py)",
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/monitors"),
        ("PUT", "/api/monitors/1"),
        ("DELETE", "/api/monitors/1"),
        ("POST", "/api/monitors/1/pause"),
        ("POST", "/api/monitors/1/resume"),
        ("POST", "/api/channels"),
        ("DELETE", "/api/channels/1"),
        ("POST", "/api/channels/1/test"),
    ],
)
def test_viewers_cannot_write_monitors_or_channels(app, client, auth, method, path) -> None:
    auth.create(role="viewer")
    auth.login()
    response = client.open(path, method=method, json={})
    assert response.status_code == 403 and response.json["error"] == "forbidden"


def test_every_write_route_is_known_and_guarded(app) -> None:
    writes = {
        rule.rule for rule in app.server.url_map.iter_rules() if UNSAFE & set(rule.methods or ())
    }
    assert writes == set(WRITE_ROUTES), writes ^ set(WRITE_ROUTES)


@pytest.mark.parametrize("method", sorted(UNSAFE))
@pytest.mark.parametrize(
    "path", ["/api/phoenix/v1/projects", "/api/phoenix/graphql", "/phoenix/v1/datasets/upload"]
)
def test_viewers_cannot_write_through_any_proxy_mount(settings, method: str, path: str) -> None:
    # Nothing listens upstream: a refusal is 403, a request let through would be 502.
    app = create_app(
        settings.with_overrides(phoenix_enabled=True, phoenix_url=f"http://127.0.0.1:{free_port()}")
    )
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create(role="viewer")
    auth.login()
    body = {"query": 'mutation { createProject(input: {name: "x"}) { project { id } } }'}
    response = client.open(path, method=method, json=body)
    assert response.status_code == 403, (method, path, response.status_code)
    assert response.json["error"] == "forbidden"


# No secret in logs, pages or errors ----------------------------------------------------------

CANARIES = {
    "SECRET_KEY": "canary-secret-key-3f9d0c1e8a7b6c5d4e3f2a1b0c9d8e7f",
    "PHOENIX_API_KEY": "canary-phoenix-read-key-51d2e8",
    "PHOENIX_WRITE_API_KEY": "canary-phoenix-write-key-8e07b3",
    "REDIS_URL password": "canary-redis-password-c4b19a",
    "user password": "canary-user-password-77e1",
}


def test_no_secret_reaches_logs_pages_or_errors(settings, caplog, capfd) -> None:
    """Walk the app with every secret set while Phoenix and Redis are down, then grep it all."""
    caplog.set_level(logging.DEBUG)
    app = create_app(
        settings.with_overrides(
            secret_key=CANARIES["SECRET_KEY"],
            phoenix_enabled=True,
            phoenix_url=f"http://127.0.0.1:{free_port()}",
            phoenix_api_key=CANARIES["PHOENIX_API_KEY"],
            phoenix_write_api_key=CANARIES["PHOENIX_WRITE_API_KEY"],
            redis_url=f"redis://:{CANARIES['REDIS_URL password']}@127.0.0.1:{free_port()}/0",
        )
    )
    seen = _walk_the_app(app)
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create(email="writer@example.com", role="admin", password=CANARIES["user password"])
    responses = [
        auth.login("writer@example.com", "wrong-password"),
        auth.login("writer@example.com", CANARIES["user password"]),
        client.post("/api/phoenix/v1/projects", json={"name": "x"}),
        client.post("/api/phoenix/graphql", json={"query": "{ projects { edges { cursor } } }"}),
        client.get("/phoenix/projects"),
        client.get("/api/token"),
        client.get("/api/token", headers={"Authorization": "Bearer not-a-token"}),
        client.post("/logout"),
        client.get("/api/export/analytics/nope.csv"),
    ]
    assert responses[2].status_code == 502  # the write key was used and the failure answered
    captured = capfd.readouterr()
    texts = [
        str(seen),
        caplog.text,
        *(logging.Formatter().formatException(r.exc_info) for r in caplog.records if r.exc_info),
        captured.out,
        captured.err,
        repr(get_services(app.server).settings),
        *(r.get_data(as_text=True) + str(r.headers) for r in responses),
    ]
    assert "is unreachable" in caplog.text  # the Redis outage was logged, by address only
    for name, value in CANARIES.items():
        leaks = [text[max(0, i - 80) : i + 80] for text in texts if (i := text.find(value)) >= 0]
        assert not leaks, f"{name} leaked: {leaks}"
