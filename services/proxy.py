"""Reverse proxy to Phoenix: its REST/GraphQL API at /api/phoenix and its UI at /phoenix."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import urllib3
from flask import Blueprint, Flask, Request, Response, current_app, jsonify, request
from flask_login import current_user
from graphql import GraphQLError, OperationType, parse
from graphql.language import DocumentNode, OperationDefinitionNode
from requests.adapters import HTTPAdapter
from werkzeug.routing import PathConverter

from settings import Settings

log = logging.getLogger(__name__)
EXTENSION_KEY = "phoenix_proxy"
CHUNK_BYTES = 64 * 1024
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROXY_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
# RFC 9110 §7.6.1 hop-by-hop headers, plus what the proxy itself decides.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
RESPONSE_HEADERS_WE_SET = frozenset({"server", "date"})
# Phoenix's CORS grants (it sends `Access-Control-Allow-Origin: *` on its OAuth documents) would
# let other sites read what the proxy serves with our key; the dashboard grants no origin.
# Phoenix's own Content-Security-Policy passes on, for the security headers to merge into.
STRIPPED_RESPONSE_PREFIXES = ("access-control-",)
STRIPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "cookie",
    "authorization",
    # What the client claims about proxies in front: ProxyFix has already read what it trusts,
    # and Phoenix's uvicorn believes X-Forwarded-For/-Proto from loopback, where we call from.
    "forwarded",
    "x-real-ip",
    # Method overrides: a GET that some framework reads as a DELETE would skip the write checks.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
}
STRIPPED_REQUEST_PREFIXES = ("x-forwarded-",)
GRAPHQL_WRITES = (OperationType.MUTATION, OperationType.SUBSCRIPTION)
# Phoenix's admin surface, agent and model-calling routes: never reachable through the dashboard.
BLOCKED_PATHS = re.compile(
    r"^v1/(users|user|system|secrets|agent_sessions|chat)(/|$)", flags=re.IGNORECASE
)
# Encoded dots, slashes, backslashes, NULs and double encoding hide traversal from a path check.
ENCODED_TRAVERSAL = re.compile(r"%(2e|2f|5c|00|25)", flags=re.IGNORECASE)
# Posts that change no Phoenix data: the UI's error reports and Phoenix's own sign-in, which the
# phoenix-login mode needs whatever the dashboard role.
NON_DATA_POSTS = frozenset({"client_errors", "auth/login", "auth/logout", "auth/refresh"})
SAFE_PATH_CHARS = "/:@!$&'()*+,;=-._~"
# Phoenix's 429 and 5xx answers reach the caller as our own short JSON, never Phoenix's body (a
# server error's may be a traceback) or headers; 429, 503 and 504 keep their status and
# Retry-After, every other 5xx becomes 502.
KEPT_FAULT_STATUSES = {
    429: "phoenix_rate_limited",
    503: "phoenix_unavailable",
    504: "phoenix_timeout",
}


class ProxyRefusal(Exception):
    """The proxy answers a request itself: refused before Phoenix, or Phoenix failed it."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        retry_after: str | None = None,
        allow: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after
        self.allow = allow


@dataclass
class PhoenixProxy:
    """Forward requests to one Phoenix with the key that matches the caller's role."""

    settings: Settings
    session: requests.Session

    @classmethod
    def from_settings(cls, settings: Settings) -> PhoenixProxy:
        """Build a proxy with its own pooled session; it never retries, the caller decides."""
        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # Phoenix's address is ours to choose; the machine's proxy variables must not reroute it.
        session.trust_env = False
        # Forward the caller's own Accept-Encoding and User-Agent, not requests' defaults.
        session.headers.clear()
        return cls(settings, session)

    def key_for(self, role: str, writes: bool) -> str:
        """Return the Phoenix API key for this role and kind of request."""
        if writes and role in ("member", "admin") and self.settings.phoenix_write_api_key:
            return self.settings.phoenix_write_api_key
        return self.settings.phoenix_api_key

    def forward(
        self,
        req: Request,
        path: str,
        *,
        inject_key: bool,
        pass_cookies: bool,
    ) -> Response:
        """Send the request on to Phoenix and stream its answer back byte for byte."""
        role = current_user.role
        body = read_body(req, self.settings.proxy_max_body_bytes)
        writes = is_write(req, path, body)
        if writes and role == "viewer":
            raise ProxyRefusal(403, "forbidden", "Viewers can read Phoenix data but not change it.")
        headers = {name: value for name, value in req.headers.items() if forwardable(name)}
        if pass_cookies:
            cookie = phoenix_cookies(req, current_app.config["SESSION_COOKIE_NAME"])
            if cookie:
                headers["Cookie"] = cookie
        key = self.key_for(role, writes) if inject_key else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.settings.phoenix_url}/{quote(path, safe=SAFE_PATH_CHARS)}"
        query = req.query_string.decode("latin-1")
        if query:
            url = f"{url}?{query}"
        try:
            upstream = self.session.request(
                req.method,
                url,
                data=body,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(
                    self.settings.phoenix_connect_timeout_s,
                    self.settings.phoenix_read_timeout_s,
                ),
            )
        except requests.Timeout:
            raise ProxyRefusal(
                504,
                "phoenix_timeout",
                f"Phoenix at {self.settings.phoenix_url} did not answer in time.",
            ) from None
        except requests.RequestException:
            raise ProxyRefusal(
                502,
                "phoenix_unavailable",
                f"Phoenix at {self.settings.phoenix_url} cannot be reached.",
            ) from None
        if writes:
            log.info(
                "phoenix write by %s (%s): %s /%s -> %s",
                current_user.email,
                role,
                req.method,
                path,
                upstream.status_code,
            )
        refuse_upstream_fault(upstream, self.settings.phoenix_url)
        return stream_response(upstream, pass_cookies=pass_cookies)


def forwardable(name: str) -> bool:
    """Tell whether a request header of the caller may go on to Phoenix."""
    lower = name.lower()
    return lower not in STRIPPED_REQUEST_HEADERS and not lower.startswith(STRIPPED_REQUEST_PREFIXES)


def is_write(req: Request, path: str, body: bytes | None) -> bool:
    """Tell whether a request changes Phoenix data: a write method or a GraphQL mutation."""
    normalized = path.strip("/").lower()
    if normalized == "graphql":
        return graphql_writes(req, body)
    if normalized in NON_DATA_POSTS:
        return False
    return req.method in WRITE_METHODS


def writes_data(document: DocumentNode) -> bool:
    """Tell whether a parsed GraphQL document holds a mutation or subscription."""
    return any(
        isinstance(definition, OperationDefinitionNode) and definition.operation in GRAPHQL_WRITES
        for definition in document.definitions
    )


def refuse_writes_by_get(documents: list[str]) -> None:
    """Answer 405 when any document of a GET or HEAD holds a mutation or subscription."""
    for document in documents:
        try:
            parsed = parse(document, no_location=True)
        except GraphQLError:
            continue  # judged (and refused) as unparseable afterwards
        if writes_data(parsed):
            # Whatever the role: a write by GET would ride a link or an <img>, and the POST is
            # what the write checks and the write log are built around.
            raise ProxyRefusal(
                405,
                "method_not_allowed",
                "GraphQL mutations and subscriptions must be sent by POST.",
                allow="POST",
            )


def graphql_writes(req: Request, body: bytes | None) -> bool:
    """Tell whether a GraphQL request holds a mutation or subscription."""
    documents: list[Any] = []
    if req.method in ("GET", "HEAD"):
        # Every `query` key: Werkzeug's get() reads the first, Phoenix's Starlette the last.
        documents.extend(req.args.getlist("query") or [""])
        refuse_writes_by_get(documents)
        if req.method == "HEAD":
            return True  # as before: a HEAD counts as a write, the conservative reading
    elif req.method == "POST":
        if req.mimetype == "application/json":
            try:
                payload = json.loads(body or b"")
            except ValueError:
                raise ProxyRefusal(400, "bad_request", "The GraphQL body is not JSON.") from None
            batch = payload if isinstance(payload, list) else [payload]
            documents.extend(
                item.get("query") if isinstance(item, dict) else None for item in batch
            )
        else:
            # Multipart uploads and other encodings: treat as writes, the conservative reading.
            return True
    else:
        return True
    for document in documents:
        if not isinstance(document, str):
            raise ProxyRefusal(400, "bad_request", "A GraphQL request needs a `query` string.")
        try:
            parsed = parse(document, no_location=True)
        except GraphQLError as exc:
            raise ProxyRefusal(400, "bad_request", f"Invalid GraphQL: {exc.message}") from None
        if writes_data(parsed):
            return True
    return False


def read_body(req: Request, limit: int) -> bytes | None:
    """Read the request body, refusing anything over the cap."""
    if req.method in ("GET", "HEAD"):
        return None
    if req.content_length is not None and req.content_length > limit:
        raise ProxyRefusal(413, "too_large", f"Request bodies are limited to {limit} bytes.")
    body = req.stream.read(limit + 1)
    if len(body) > limit:
        raise ProxyRefusal(413, "too_large", f"Request bodies are limited to {limit} bytes.")
    return body


def phoenix_cookies(req: Request, own_cookie: str) -> str:
    """Return the caller's cookies minus the dashboard's own session cookie."""
    return "; ".join(f"{name}={value}" for name, value in req.cookies.items() if name != own_cookie)


def refuse_upstream_fault(upstream: requests.Response, phoenix_url: str) -> None:
    """Turn Phoenix's 429 and 5xx answers into our own short refusal."""
    status = upstream.status_code
    if status != 429 and status < 500:
        return
    retry_after = upstream.headers.get("Retry-After")
    upstream.close()
    if status == 429:
        wait = f"in {retry_after} s" if retry_after and retry_after.isdigit() else "later"
        message = f"Phoenix at {phoenix_url} is rate limiting requests; try again {wait}."
    else:
        message = f"Phoenix at {phoenix_url} failed ({status} {upstream.reason or 'error'})."
    kept = status in KEPT_FAULT_STATUSES
    error = KEPT_FAULT_STATUSES.get(status, "phoenix_error")
    raise ProxyRefusal(status if kept else 502, error, message, retry_after)


def stream_response(upstream: requests.Response, *, pass_cookies: bool) -> Response:
    """Relay Phoenix's status, headers and raw bytes, encoded as Phoenix sent them."""
    length = upstream.headers.get("Content-Length", "")
    prefetched: bytes | None = None
    if upstream.request.method != "HEAD" and length.isdigit() and int(length) <= CHUNK_BYTES:
        # A small answer is read whole first: one cut short then becomes a clear 502, where
        # a streamed one could only end early under a status already sent.
        prefetched = read_whole(upstream, int(length))

    def body() -> Iterator[bytes]:
        try:
            if prefetched is not None:
                yield prefetched
            else:
                yield from upstream.raw.stream(CHUNK_BYTES, decode_content=False)
        finally:
            upstream.close()

    headers = []
    for name, value in upstream.raw.headers.items():
        lower = name.lower()
        if lower in RESPONSE_HEADERS_WE_SET or (lower in HOP_BY_HOP and lower != "content-length"):
            continue
        if lower.startswith(STRIPPED_RESPONSE_PREFIXES):
            continue
        if lower == "set-cookie" and not pass_cookies:
            continue
        headers.append((name, value))
    # Passing Phoenix's headers at construction keeps Flask from adding its own Content-Type.
    response = Response(body(), status=upstream.status_code, headers=headers)
    # Raw bytes keep their Content-Encoding, so Content-Length stays true.
    response.direct_passthrough = True
    return response


def read_whole(upstream: requests.Response, length: int) -> bytes:
    """Read a small raw body of known length, refusing one that times out or is cut short."""
    url = upstream.url.split("?", 1)[0]
    try:
        data = upstream.raw.read(length, decode_content=False) if length else b""
    except urllib3.exceptions.ReadTimeoutError:
        upstream.close()
        raise ProxyRefusal(
            504, "phoenix_timeout", "Phoenix did not finish its answer in time."
        ) from None
    except urllib3.exceptions.HTTPError:
        upstream.close()
        raise ProxyRefusal(502, "phoenix_incomplete", "Phoenix broke off its answer.") from None
    if len(data) < length:
        upstream.close()
        log.warning("phoenix answer cut short: %s gave %d of %d bytes", url, len(data), length)
        raise ProxyRefusal(502, "phoenix_incomplete", "Phoenix broke off its answer.")
    return data


def check_path(path: str, req: Request, *, api_only: bool) -> str:
    """Refuse traversal, absolute URLs and paths outside the allowlist; return the clean path."""
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI") or req.full_path
    raw_path = raw.split("?", 1)[0]
    segments = path.split("/")
    if (
        ENCODED_TRAVERSAL.search(raw_path)
        or any(segment in (".", "..") for segment in segments)
        or "\\" in path
        or "\x00" in path
        or "//" in path
        or "://" in raw_path
        or "//" in raw_path
        or path.startswith("/")
    ):
        raise ProxyRefusal(400, "bad_path", "The path is not a plain relative Phoenix path.")
    if BLOCKED_PATHS.match(path):
        raise ProxyRefusal(
            403, "forbidden", "Phoenix's admin, agent and model routes are not available here."
        )
    if api_only and not (path == "graphql" or path.startswith("v1/")):
        raise ProxyRefusal(
            404, "not_proxied", "Only Phoenix's /v1 REST API and /graphql are proxied here."
        )
    return path


def refusal_response(exc: ProxyRefusal) -> Response:
    """Render a refusal as JSON."""
    response = jsonify(error=exc.error, message=exc.message)
    response.status_code = exc.status
    if exc.retry_after:
        response.headers["Retry-After"] = exc.retry_after
    if exc.allow:
        response.headers["Allow"] = exc.allow
    return response


def get_proxy() -> PhoenixProxy | None:
    """Return this app's proxy, or None when the Phoenix integration is off."""
    proxy: PhoenixProxy | None = current_app.extensions.get(EXTENSION_KEY)
    return proxy


def _disabled() -> Response:
    response = jsonify(error="phoenix_disabled", message="The Phoenix integration is turned off.")
    response.status_code = 404
    return response


api_bp = Blueprint("phoenix_api", __name__)
ui_bp = Blueprint("phoenix_ui", __name__)


@api_bp.route("/api/phoenix/<rawpath:path>", methods=PROXY_METHODS)
def api_proxy(path: str) -> Response:
    """Forward /api/phoenix/<path> to Phoenix's REST API or GraphQL."""
    proxy = get_proxy()
    if proxy is None:
        return _disabled()
    try:
        return proxy.forward(
            request, check_path(path, request, api_only=True), inject_key=True, pass_cookies=False
        )
    except ProxyRefusal as exc:
        return refusal_response(exc)


@ui_bp.route("/phoenix", defaults={"path": ""}, methods=PROXY_METHODS)
@ui_bp.route("/phoenix/", defaults={"path": ""}, methods=PROXY_METHODS)
@ui_bp.route("/phoenix/<rawpath:path>", methods=PROXY_METHODS)
def ui_proxy(path: str) -> Response:
    """Serve Phoenix's UI same-origin under /phoenix, behind our login."""
    proxy = get_proxy()
    if proxy is None:
        return _disabled()
    inject = proxy.settings.phoenix_ui_auth == "inject"
    try:
        clean = check_path(path, request, api_only=False) if path else ""
        return proxy.forward(request, clean, inject_key=inject, pass_cookies=not inject)
    except ProxyRefusal as exc:
        return refusal_response(exc)


class RawPathConverter(PathConverter):
    """Match any rest of a path, even one starting with "/", so `check_path` sees it all."""

    regex = ".*?"
    part_isolating = False


def init_app(server: Flask, settings: Settings) -> None:
    """Register both proxies; with the integration off they answer 404 and call nothing."""
    server.url_map.converters["rawpath"] = RawPathConverter
    if settings.phoenix_enabled:
        server.extensions[EXTENSION_KEY] = PhoenixProxy.from_settings(settings)
    server.register_blueprint(api_bp)
    server.register_blueprint(ui_bp)
