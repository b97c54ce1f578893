"""The /api/phoenix and /phoenix proxies against a real Phoenix, with auth off and on."""

from __future__ import annotations

import json
import logging
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from flask.testing import FlaskClient

from app import create_app
from devtools.phoenix import phoenix_executable
from services.proxy import stream_response
from settings import Settings

from .conftest import AuthActions

pytestmark = pytest.mark.integration

ClientFor = Callable[..., FlaskClient]


@pytest.fixture
def client_for(settings: Settings) -> ClientFor:
    """Build an app on the given Phoenix and return a client logged in with a role."""

    def build(phoenix_url: str, role: str = "member", **overrides: object) -> FlaskClient:
        app = create_app(
            settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_url, **overrides)
        )
        client = app.server.test_client()
        auth = AuthActions(app, client)
        email = f"{role}-{uuid.uuid4().hex[:6]}@example.com"
        auth.create(email=email, role=role)
        assert auth.login(email=email).status_code == 302
        return client

    return build


@pytest.fixture(scope="module")
def dataset_id(phoenix_server) -> str:
    """Upload a small dataset straight to Phoenix."""
    body = {
        "action": "create",
        "name": f"proxy-downloads-{uuid.uuid4().hex[:6]}",
        "inputs": [{"question": f"q{i}, with a comma"} for i in range(50)],
        "outputs": [{"answer": f'a{i} "quoted" ünïcode'} for i in range(50)],
    }
    response = requests.post(
        f"{phoenix_server.url}/v1/datasets/upload?sync=true", json=body, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["data"]["dataset_id"])


# Auth off ------------------------------------------------------------------------------------


def test_reads_pass_through_with_query_status_and_type(client_for, phoenix_server) -> None:
    client = client_for(phoenix_server.url, role="viewer")
    proxied = client.get("/api/phoenix/v1/projects?limit=1")
    direct = requests.get(f"{phoenix_server.url}/v1/projects?limit=1", timeout=10)
    assert proxied.status_code == 200
    assert proxied.json == direct.json()
    assert proxied.headers["Content-Type"] == direct.headers["Content-Type"]

    missing = client.get("/api/phoenix/v1/projects/no-such-project/spans")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert missing.text == "Project with name no-such-project not found"


def test_viewer_writes_are_refused_by_the_proxy(client_for, phoenix_server) -> None:
    client = client_for(phoenix_server.url, role="viewer")
    name = f"viewer-made-{uuid.uuid4().hex[:6]}"
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/phoenix/v1/projects", json={"name": name})
        assert response.status_code == 403, method
        assert response.json["error"] == "forbidden"
    direct = requests.get(f"{phoenix_server.url}/v1/projects/{name}", timeout=10)
    assert direct.status_code == 404


def test_viewer_graphql_queries_pass_and_mutations_are_refused(client_for, phoenix_server):
    client = client_for(phoenix_server.url, role="viewer")
    query = client.post(
        "/api/phoenix/graphql", json={"query": "{ projects { edges { node { name } } } }"}
    )
    assert query.status_code == 200
    assert query.json["data"]["projects"]["edges"]
    mutation = 'mutation { createProject(input: {name: "nope"}) { project { id } } }'
    for body in ({"query": mutation}, [{"query": "{ __typename }"}, {"query": mutation}]):
        response = client.post("/api/phoenix/graphql", json=body)
        assert response.status_code == 403
    assert client.get("/api/phoenix/graphql", query_string={"query": mutation}).status_code == 405
    bad = client.post("/api/phoenix/graphql", json={"query": "{ unclosed"})
    assert bad.status_code == 400
    assert "Invalid GraphQL" in bad.json["message"]


def test_member_writes_land_in_phoenix_and_are_logged(client_for, phoenix_server, caplog):
    client = client_for(phoenix_server.url, role="member")
    name = f"member-made-{uuid.uuid4().hex[:6]}"
    with caplog.at_level(logging.INFO, logger="services.proxy"):
        response = client.post("/api/phoenix/v1/projects", json={"name": name})
    assert response.status_code == 200, response.json
    assert requests.get(f"{phoenix_server.url}/v1/projects/{name}", timeout=10).status_code == 200
    assert any(
        "phoenix write by member-" in r.getMessage() and "/v1/projects -> 200" in r.getMessage()
        for r in caplog.records
    )


def test_member_mutation_by_get_gets_405_and_changes_nothing(client_for, phoenix_server):
    client = client_for(phoenix_server.url, role="member")
    name = f"by-get-{uuid.uuid4().hex[:6]}"
    mutation = f'mutation {{ createProject(input: {{name: "{name}"}}) {{ project {{ id }} }} }}'
    response = client.get("/api/phoenix/graphql", query_string={"query": mutation})
    assert response.status_code == 405
    assert response.json["error"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"
    assert requests.get(f"{phoenix_server.url}/v1/projects/{name}", timeout=10).status_code == 404


def test_phoenix_cors_grants_never_reach_the_browser(client_for, phoenix_server) -> None:
    """Phoenix answers its OAuth discovery document with `Access-Control-Allow-Origin: *`."""
    origin = {"Origin": "https://evil.example"}
    path = ".well-known/oauth-protected-resource"
    direct = requests.get(f"{phoenix_server.url}/{path}", headers=origin, timeout=10)
    assert direct.headers["Access-Control-Allow-Origin"] == "*"  # the grant the proxy must drop
    proxied = client_for(phoenix_server.url, role="viewer").get(f"/phoenix/{path}", headers=origin)
    assert proxied.status_code == direct.status_code == 200
    assert cors_headers(proxied) == []


def test_phoenix_csp_is_relayed_by_the_proxy(phoenix_server) -> None:
    """Phoenix 20.26.1 sends a CSP only on its sandbox worker script; the proxy keeps it."""
    venv = phoenix_executable().resolve().parent.parent
    assets = venv.glob("lib/python*/site-packages/phoenix/server/static/assets")
    worker = next(p.name for d in assets for p in d.glob("jsSandboxWorker-*.js"))
    upstream = requests.get(f"{phoenix_server.url}/assets/{worker}", stream=True, timeout=10)
    expected = upstream.headers["Content-Security-Policy"]
    response = stream_response(upstream, pass_cookies=False)
    try:
        assert response.headers["Content-Security-Policy"] == expected
    finally:
        response.close()


@pytest.mark.parametrize(
    "path",
    [
        "/api/phoenix/v1/../healthz",
        "/api/phoenix/v1/%2e%2e/healthz",
        "/api/phoenix/v1/%2E%2E%2Fhealthz",
        "/api/phoenix/v1/projects%2f..%2f..%2fhealthz",
        "/api/phoenix/v1/%252e%252e/healthz",
        "/api/phoenix/v1/projects\\..\\x",
        "/api/phoenix/http://evil.example.com/v1/projects",
        "/api/phoenix//v1/projects",
        "/api/phoenix/v1//projects",
    ],
)
def test_traversal_and_absolute_urls_get_400(client_for, phoenix_server, path: str) -> None:
    response = client_for(phoenix_server.url).get(path)
    assert response.status_code == 400, path
    assert response.json["error"] == "bad_path"


@pytest.mark.parametrize("path", ["healthz", "auth/login", "arize_phoenix_version", "projects"])
def test_only_v1_and_graphql_are_proxied(client_for, phoenix_server, path: str) -> None:
    response = client_for(phoenix_server.url).get(f"/api/phoenix/{path}")
    assert response.status_code == 404
    assert response.json["error"] == "not_proxied"


@pytest.mark.parametrize(
    "path",
    [
        "v1/users",
        "v1/user/api_keys",
        "v1/system/api_keys",
        "v1/secrets",
        "v1/agent_sessions",
        "v1/chat/completions",
        "V1/Users",
    ],
)
def test_phoenix_admin_surface_is_never_proxied(client_for, phoenix_server, path: str) -> None:
    client = client_for(phoenix_server.url, role="admin")
    assert client.get(f"/api/phoenix/{path}").status_code == 403
    assert client.post(f"/api/phoenix/{path}", json={}).status_code == 403


def test_bodies_over_the_cap_get_413(client_for, phoenix_server) -> None:
    client = client_for(phoenix_server.url, proxy_max_body_bytes=1024)
    response = client.post(
        "/api/phoenix/v1/projects", data=b"x" * 2048, content_type="application/json"
    )
    assert response.status_code == 413
    assert "1024 bytes" in response.json["message"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_downloads_are_byte_identical(client_for, phoenix_server, dataset_id, fmt, encoding):
    client = client_for(phoenix_server.url, role="viewer")
    headers = {"Accept-Encoding": encoding}
    proxied = client.get(f"/api/phoenix/v1/datasets/{dataset_id}/{fmt}", headers=headers)
    direct = requests.get(
        f"{phoenix_server.url}/v1/datasets/{dataset_id}/{fmt}",
        headers=headers,
        stream=True,
        timeout=30,
    )
    raw = direct.raw.read(decode_content=False)
    assert proxied.status_code == 200
    assert proxied.get_data() == raw
    assert len(raw) > 300
    for header in ("Content-Type", "Content-Disposition", "Content-Encoding"):
        assert proxied.headers.get(header) == direct.headers.get(header), header


def test_integration_off_answers_404_and_calls_nothing(client, auth) -> None:
    auth.create()
    auth.login()
    response = client.get("/api/phoenix/v1/projects")
    assert response.status_code == 404
    assert response.json["error"] == "phoenix_disabled"
    assert client.get("/phoenix/projects").status_code == 404


# Headers, timeouts and outages ---------------------------------------------------------------


def cors_headers(response: Any) -> list[str]:
    """Return the names of the CORS headers a response carries."""
    return [n for n, _ in response.headers.items() if n.lower().startswith("access-control-")]


# What a misconfigured or hostile Phoenix could grant other sites; the proxy drops it all.
ECHO_CORS = {
    "Access-Control-Allow-Origin": "https://evil.example",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Methods": "GET, POST, DELETE",
    "Access-Control-Expose-Headers": "X-Secret",
}
ECHO_CSP = "script-src 'self'; frame-ancestors 'none'"
# A client's claims about proxies in front and method overrides: ProxyFix has read what it
# trusts, and Phoenix (or a framework in it) must not act on the rest.
FORGED_REQUEST_HEADERS = {
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/admin",
    "X-Forwarded-Server": "evil.example",
    "Forwarded": "for=203.0.113.9;host=evil.example;proto=https",
    "X-HTTP-Method-Override": "DELETE",
    "X-HTTP-Method": "DELETE",
    "X-Method-Override": "DELETE",
}


class _Echo(BaseHTTPRequestHandler):
    """Answer every request with the headers it received, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "path": self.path,
                "body": self.rfile.read(length).decode(),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "phoenix-session=should-not-leak")
        for name, value in ECHO_CORS.items():
            self.send_header(name, value)
        self.send_header("Content-Security-Policy", ECHO_CSP)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def echo_url() -> Iterator[str]:
    """A loopback server that echoes request headers: it checks our forwarding, not Phoenix."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_proxy_strips_cookies_auth_and_hop_headers_and_adds_the_key(client_for, echo_url):
    client = client_for(
        echo_url, role="member", phoenix_api_key="read-key", phoenix_write_api_key="write-key"
    )
    client.set_cookie("phoenix-access-token", "from-the-browser")
    response = client.get(
        "/api/phoenix/v1/projects?a=1&a=2",
        headers={
            "Authorization": "Bearer caller-token",
            "Connection": "keep-alive, X-Secret",
            "Keep-Alive": "timeout=5",
            "TE": "trailers",
            "X-Request-Id": "abc",
        },
    )
    seen = response.json
    assert seen["path"] == "/v1/projects?a=1&a=2"
    assert seen["headers"]["authorization"] == "Bearer read-key"
    assert "cookie" not in seen["headers"]
    assert "keep-alive" not in seen["headers"] and "te" not in seen["headers"]
    assert seen["headers"]["x-request-id"] == "abc"
    assert "Set-Cookie" not in response.headers or "phoenix-session" not in str(
        response.headers.getlist("Set-Cookie")
    )
    write = client.post("/api/phoenix/v1/projects", json={"name": "x"})
    assert write.json["headers"]["authorization"] == "Bearer write-key"
    assert json.loads(write.json["body"]) == {"name": "x"}


def test_viewer_reads_use_the_read_key_even_when_a_write_key_exists(client_for, echo_url):
    client = client_for(
        echo_url, role="viewer", phoenix_api_key="read-key", phoenix_write_api_key="write-key"
    )
    assert client.get("/api/phoenix/v1/projects").json["headers"]["authorization"] == (
        "Bearer read-key"
    )


@pytest.mark.parametrize("path", ["/api/phoenix/v1/projects", "/phoenix/projects"])
def test_forwarding_and_override_headers_never_reach_phoenix(client_for, echo_url, path) -> None:
    client = client_for(echo_url, role="viewer")
    response = client.get(path, headers={**FORGED_REQUEST_HEADERS, "X-Request-Id": "kept"})
    seen = response.json["headers"]
    assert sorted({name.lower() for name in FORGED_REQUEST_HEADERS} & set(seen)) == []
    assert seen["x-request-id"] == "kept"
    # Nor does Phoenix's CORS grant reach the browser, on a GET or a HEAD.
    assert cors_headers(response) == []
    head = client.head(path, headers=FORGED_REQUEST_HEADERS)
    assert head.status_code == 200 and cors_headers(head) == []


def test_phoenix_csp_passes_and_cors_headers_are_dropped(echo_url) -> None:
    """The proxy keeps Phoenix's CSP for the security headers to merge, and no CORS grant."""
    response = stream_response(
        requests.get(f"{echo_url}/x", stream=True, timeout=10), pass_cookies=False
    )
    try:
        assert response.headers["Content-Security-Policy"] == ECHO_CSP
        assert cors_headers(response) == []
    finally:
        response.close()


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
def test_graphql_mutations_by_get_get_405_for_every_role(client_for, echo_url, role) -> None:
    client = client_for(
        echo_url, role=role, phoenix_api_key="read-key", phoenix_write_api_key="write-key"
    )
    mutation = 'mutation { createProject(input: {name: "by-get"}) { project { id } } }'
    documents = [
        [mutation],
        ["subscription { spanInserted { id } }"],
        ["query A { a } mutation B { b }"],
        # Phoenix's framework reads the last of repeated keys: every one is checked.
        ["{ __typename }", mutation],
        [mutation, "{ __typename }"],
        ["{ unclosed", mutation],
    ]
    for mount in ("/api/phoenix/graphql", "/phoenix/graphql"):
        for queries in documents:
            target = f"{mount}?{urlencode([('query', q) for q in queries])}"
            for method in ("get", "head"):
                response = getattr(client, method)(target)
                assert response.status_code == 405, (role, mount, queries, method)
                assert response.headers["Allow"] == "POST"
            assert client.get(target).json["error"] == "method_not_allowed"
        read = client.get(mount, query_string={"query": "{ __typename }"})
        assert read.status_code == 200 and read.json["headers"]["authorization"] == (
            "Bearer read-key"
        )


def test_a_silent_phoenix_gives_504(client_for) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = client_for(url, phoenix_read_timeout_s=0.5)
        response = client.get("/api/phoenix/v1/projects")
        assert response.status_code == 504
        assert response.json["error"] == "phoenix_timeout"
    finally:
        listener.close()


# Phoenix down (connections refused), then back: tests/test_faults.py, through the proxies and
# every other layer (test_proxies_answer_a_fault_clearly[refused]).


# Auth on -------------------------------------------------------------------------------------


def test_auth_on_reads_with_the_viewer_key(client_for, phoenix_auth) -> None:
    url = phoenix_auth.server.url
    client = client_for(
        url,
        role="viewer",
        phoenix_api_key=phoenix_auth.keys.viewer_key,
        phoenix_write_api_key=phoenix_auth.keys.member_key,
    )
    assert client.get("/api/phoenix/v1/projects").status_code == 200
    assert requests.get(f"{url}/v1/projects", timeout=10).status_code == 401
    assert client.post("/api/phoenix/v1/projects", json={"name": "x"}).status_code == 403


def test_auth_on_member_writes_land_with_the_member_key(client_for, phoenix_auth) -> None:
    url = phoenix_auth.server.url
    client = client_for(
        url,
        role="member",
        phoenix_api_key=phoenix_auth.keys.viewer_key,
        phoenix_write_api_key=phoenix_auth.keys.member_key,
    )
    name = f"member-auth-{uuid.uuid4().hex[:6]}"
    assert client.post("/api/phoenix/v1/projects", json={"name": name}).status_code == 200
    admin = {"Authorization": f"Bearer {phoenix_auth.admin_secret}"}
    assert requests.get(f"{url}/v1/projects/{name}", headers=admin, timeout=10).status_code == 200


def test_auth_on_without_a_write_key_phoenix_refuses_and_the_proxy_passes_it_on(
    client_for, phoenix_auth
) -> None:
    client = client_for(
        phoenix_auth.server.url, role="admin", phoenix_api_key=phoenix_auth.keys.viewer_key
    )
    response = client.post("/api/phoenix/v1/projects", json={"name": "refused"})
    assert response.status_code == 403
    assert "Viewers cannot perform this action" in response.get_data(as_text=True)


def test_phoenix_rejects_jwts_signed_by_anyone_else(phoenix_auth) -> None:
    import jwt

    forged = jwt.encode(
        {"sub": "1", "email": "admin@localhost", "name": "admin", "exp": 2**31},
        "any-other-secret-0123456789abcdefghij",
        algorithm="HS256",
    )
    response = requests.get(
        f"{phoenix_auth.server.url}/v1/projects",
        headers={"Authorization": f"Bearer {forged}"},
        timeout=10,
    )
    assert response.status_code == 401


def test_phoenix_secret_never_enters_the_dashboard() -> None:
    names = {name for name, _default, _meaning in Settings.documented()}
    assert not {n for n in names if "SECRET" in n and n.startswith("PHOENIX")}


def test_ui_is_served_same_origin_with_the_injected_key(client_for, phoenix_auth) -> None:
    client = client_for(
        phoenix_auth.server.url, role="viewer", phoenix_api_key=phoenix_auth.keys.viewer_key
    )
    page = client.get("/phoenix/projects")
    assert page.status_code == 200
    assert b'href="/phoenix/favicon.ico"' in page.data
    viewer = client.post(
        "/phoenix/graphql", json={"query": "{ viewer { username role { name } } }"}
    )
    assert viewer.json["data"]["viewer"]["role"]["name"] == "VIEWER"


def test_ui_is_behind_the_login(app, client) -> None:
    response = client.get("/phoenix/projects")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/phoenix/projects")
    assert client.post("/phoenix/graphql", json={"query": "{ __typename }"}).status_code == 401


def test_phoenix_login_fallback_passes_phoenix_cookies(client_for, phoenix_auth) -> None:
    """With PHOENIX_UI_AUTH=phoenix-login, users sign in to Phoenix itself inside the pane."""
    client = client_for(
        phoenix_auth.server.url,
        role="viewer",
        phoenix_ui_auth="phoenix-login",
        phoenix_api_key=phoenix_auth.keys.viewer_key,
    )
    query = {"query": "{ viewer { username } }"}
    anonymous = client.post("/phoenix/graphql", json=query)
    assert anonymous.status_code == 401 or anonymous.json["data"]["viewer"] is None
    login = client.post(
        "/phoenix/auth/login", json={"email": "admin@localhost", "password": "admin"}
    )
    assert login.status_code == 204, login.get_data(as_text=True)
    assert any("phoenix-access-token" in c for c in login.headers.getlist("Set-Cookie"))
    signed_in = client.post("/phoenix/graphql", json=query)
    assert signed_in.json["data"]["viewer"]["username"] == "admin"


def test_viewer_mutations_through_the_ui_pane_are_refused(client_for, phoenix_auth) -> None:
    client = client_for(
        phoenix_auth.server.url, role="viewer", phoenix_api_key=phoenix_auth.keys.viewer_key
    )
    mutation = 'mutation { createProject(input: {name: "pane"}) { project { id } } }'
    assert client.post("/phoenix/graphql", json={"query": mutation}).status_code == 403


class _SlowMultipart(BaseHTTPRequestHandler):
    """Send a chunked multipart answer, as uvicorn does, the second part only once released."""

    protocol_version = "HTTP/1.1"
    release = threading.Event()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", 'multipart/mixed; boundary="-"')
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._chunk(b'\r\n---\r\nContent-Type: application/json\r\n\r\n{"part": 1}\r\n')
        part = b"2" if self.release.wait(timeout=10) else b"0"
        self._chunk(b'---\r\nContent-Type: application/json\r\n\r\n{"part": ' + part + b"}\r\n")
        self._chunk(b"-----\r\n")
        self._chunk(b"")

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def test_multipart_answers_stream_part_by_part(client_for) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowMultipart)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = client_for(f"http://127.0.0.1:{server.server_address[1]}", role="member")
        response = client.post(
            "/phoenix/graphql", json={"query": "subscription { x }"}, buffered=False
        )
        assert response.headers["Content-Type"].startswith("multipart/mixed")
        chunks = response.iter_encoded()
        first = next(chunks)
        # The first part arrived while Phoenix still held the second: nothing was buffered.
        assert b'{"part": 1}' in first
        _SlowMultipart.release.set()
        rest = b"".join(chunks)
        assert b'{"part": 2}' in rest
    finally:
        server.shutdown()


def test_auth_on_downloads_are_byte_identical(client_for, phoenix_auth) -> None:
    url = phoenix_auth.server.url
    admin = {"Authorization": f"Bearer {phoenix_auth.admin_secret}"}
    body = {
        "action": "create",
        "name": f"auth-downloads-{uuid.uuid4().hex[:6]}",
        "inputs": [{"q": f"question {i}"} for i in range(20)],
        "outputs": [{"a": f"answer {i}"} for i in range(20)],
    }
    created = requests.post(
        f"{url}/v1/datasets/upload?sync=true", json=body, headers=admin, timeout=30
    )
    created.raise_for_status()
    dataset = created.json()["data"]["dataset_id"]
    client = client_for(url, role="viewer", phoenix_api_key=phoenix_auth.keys.viewer_key)
    for fmt in ("csv", "jsonl"):
        proxied = client.get(f"/api/phoenix/v1/datasets/{dataset}/{fmt}")
        direct = requests.get(
            f"{url}/v1/datasets/{dataset}/{fmt}",
            timeout=30,
            headers={**admin, "Accept-Encoding": "identity"},
        )
        assert proxied.status_code == 200
        assert proxied.get_data() == direct.content
        assert proxied.headers["Content-Type"] == direct.headers["Content-Type"]
