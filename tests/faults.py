"""A misbehaving stand-in for Phoenix: a local reverse proxy that injects faults on demand.

`FaultServer` forwards every request to a real Phoenix while its fault is "none", and otherwise
answers (some of) them the way a broken or overloaded Phoenix would:

- `timeout`: read the request, then say nothing until the client's read timeout has passed;
- `truncated`: Phoenix's real status and headers, then half the body and a closed connection;
- `malformed_json`: 200 with `application/json` and a body that is not JSON;
- `status_500`: 500 with a traceback as body and an internal header that must not leak;
- `status_429`: 429 with `Retry-After` (and the same internal header);
- `closed`: read the request, then close the connection without an answer;
- `refused`: stop listening, so connections are refused, until the fault is cleared.

A fault can be limited to paths matching a regular expression and to the next `times` matching
requests (after letting `skip` of them through). The server records every request it saw.
This module is also a pytest plugin (conftest lists it): it provides the `faulty_phoenix` fixture.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from devtools.phoenix import PhoenixServer
from devtools.services import free_port
from services.proxy import HOP_BY_HOP
from settings import Settings

HOST = "127.0.0.1"
FAULTS = (
    "none",
    "timeout",
    "truncated",
    "malformed_json",
    "status_500",
    "status_429",
    "closed",
    "refused",
)
# What a badly configured upstream leaks: the proxy must pass neither on to the browser.
SECRET_HEADER = "X-Internal-Token"
SECRET_VALUE = "upstream-secret-7f3a"
TRACEBACK_BODY = (
    "Traceback (most recent call last):\n"
    '  File "/srv/phoenix/server/app.py", line 42, in handle\n'
    f"    token = '{SECRET_VALUE}'\n"
    "RuntimeError: database is locked\n"
)
MALFORMED_BODY = b'{"data": [{"id": "U3Bhbjox", <html>502 Bad Gateway</html>'
# Client read timeout of the `faulty_phoenix` settings: short, so a `timeout` costs ~2 s, yet
# long enough for a Phoenix answering a busy machine (the suite runs on several workers).
READ_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 1.0
# A hung answer gives up after this long even if nobody clears the fault.
HANG_LIMIT_S = 10.0


@dataclass
class Rule:
    """The fault to inject, and which requests it applies to."""

    fault: str = "none"
    path: re.Pattern[str] | None = None
    times: int | None = None  # None: until cleared
    skip: int = 0
    retry_after_s: int = 1


@dataclass(frozen=True)
class Seen:
    """One request the server received, and what it did with it."""

    method: str
    path: str
    fault: str
    at: float  # time.monotonic()


@dataclass
class _State:
    """Mutable server state, guarded by `lock`."""

    rule: Rule = field(default_factory=Rule)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the current fault ends: hung `timeout` handlers then drop their connection.
    release: threading.Event = field(default_factory=threading.Event)


class FaultServer:
    """A fault-injecting reverse proxy on a free loopback port in front of one Phoenix."""

    def __init__(self, target_url: str) -> None:
        self.target_url = target_url.rstrip("/")
        self.port = free_port()
        self.state = _State()
        self.upstream = requests.Session()
        # The target is ours; the machine's proxy variables must not reroute it.
        self.upstream.trust_env = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Return the base URL clients should use instead of Phoenix's."""
        return f"http://{HOST}:{self.port}"

    # Lifecycle --------------------------------------------------------------------------------

    def start(self) -> FaultServer:
        """Listen on the port and serve in a background thread."""
        handler = type("BoundHandler", (_Handler,), {"server_ref": self})
        httpd = ThreadingHTTPServer((HOST, self.port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        # A short poll interval keeps switching to and from `refused` quick.
        self._thread = threading.Thread(
            target=functools.partial(httpd.serve_forever, poll_interval=0.05),
            name=f"fault-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _stop_listening(self) -> None:
        """Close the listening socket, so that new connections are refused."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def stop(self) -> None:
        """Release hung handlers and stop listening."""
        self.state.release.set()
        self._stop_listening()
        self.upstream.close()

    # Faults -----------------------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        path: str | None = None,
        times: int | None = None,
        skip: int = 0,
        retry_after_s: int = 1,
    ) -> None:
        """Answer matching requests with `fault` from now on (thread-safe)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
        if fault == "refused" and (path or times is not None or skip):
            # A refused connection happens before any request, so there is no path to match.
            raise ValueError("refused applies to every connection until cleared")
        with self.state.lock:
            self.state.release.set()
            self.state.release = threading.Event()
            self.state.rule = Rule(
                fault, re.compile(path) if path else None, times, skip, retry_after_s
            )
        if fault == "refused":
            self._stop_listening()
        elif self._httpd is None:
            self.start()

    def clear(self) -> None:
        """Forward everything to Phoenix again."""
        self.inject("none")

    def seen(self, path: str | None = None) -> list[Seen]:
        """Return the requests received so far, optionally those whose path matches."""
        with self.state.lock:
            seen = list(self.state.seen)
        pattern = re.compile(path) if path else None
        return [s for s in seen if pattern is None or pattern.search(s.path)]

    def reset_seen(self) -> None:
        """Forget the recorded requests."""
        with self.state.lock:
            self.state.seen.clear()

    def _decide(self, method: str, path: str) -> tuple[Rule, threading.Event]:
        """Pick the fault for one request, count it against the rule, and record it."""
        with self.state.lock:
            rule = self.state.rule
            fault = rule.fault
            if rule.path is not None and not rule.path.search(path):
                fault = "none"
            elif fault != "none" and rule.skip > 0:
                rule.skip -= 1
                fault = "none"
            elif fault != "none" and rule.times is not None:
                if rule.times > 0:
                    rule.times -= 1
                else:
                    fault = "none"
            self.state.seen.append(Seen(method, path, fault, time.monotonic()))
            applied = Rule(fault, rule.path, rule.times, rule.skip, rule.retry_after_s)
            return applied, self.state.release


class _Handler(BaseHTTPRequestHandler):
    """Forward one request to Phoenix, or answer it with the server's current fault."""

    server_ref: FaultServer
    # HTTP/1.0: every answer ends with the connection, so a truncated body is seen as such.
    protocol_version = "HTTP/1.0"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        rule, release = self.server_ref._decide(self.command, self.path)
        if rule.fault == "timeout":
            # Say nothing past the client's read timeout, then drop the connection.
            release.wait(HANG_LIMIT_S)
            self.close_connection = True
            return
        if rule.fault == "closed":
            self.close_connection = True
            return
        if rule.fault == "malformed_json":
            self._answer(200, MALFORMED_BODY, {"Content-Type": "application/json"})
            return
        if rule.fault == "status_500":
            self._answer(
                500,
                TRACEBACK_BODY.encode(),
                {"Content-Type": "text/plain; charset=utf-8", SECRET_HEADER: SECRET_VALUE},
            )
            return
        if rule.fault == "status_429":
            self._answer(
                429,
                b'{"detail": "Too many requests, slow down"}',
                {
                    "Content-Type": "application/json",
                    "Retry-After": str(rule.retry_after_s),
                    SECRET_HEADER: SECRET_VALUE,
                },
            )
            return
        status, headers, content = self._forward(body)
        if rule.fault == "truncated":
            # Phoenix's own status and headers, then half its body and a closed connection.
            cut = content[: len(content) // 2] if len(content) > 1 else b""
            self._answer(status, cut, headers, length=max(len(content), 2))
            return
        self._answer(status, content, headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _forward(self, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
        """Send the request on to Phoenix; return its status, headers and raw body."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            upstream = self.server_ref.upstream.request(
                self.command,
                f"{self.server_ref.target_url}{self.path}",
                data=body,
                headers=headers,
                stream=True,
                allow_redirects=False,
                timeout=(5, 60),
            )
        except requests.RequestException as exc:
            return 502, {"Content-Type": "text/plain"}, f"fault server: {exc}".encode()
        with upstream:
            content = upstream.raw.read(decode_content=False)
            kept = {k: v for k, v in upstream.raw.headers.items() if k.lower() not in HOP_BY_HOP}
        return upstream.status_code, kept, content

    def _answer(
        self, status: int, body: bytes, headers: dict[str, str], *, length: int | None = None
    ) -> None:
        """Write a whole answer; `length` may claim more bytes than `body` holds."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        """Stay quiet; `FaultServer.seen` has the requests."""


@pytest.fixture
def fault_server_for() -> Iterator[Any]:
    """Start fault servers in front of given Phoenix URLs; stop them after the test."""
    started: list[FaultServer] = []

    def start(target_url: str) -> FaultServer:
        server = FaultServer(target_url).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@dataclass(frozen=True)
class FaultyPhoenix:
    """A fault server in front of the session's Phoenix, and settings pointing at it."""

    server: FaultServer
    settings: Settings
    phoenix: PhoenixServer


def faulty_settings(settings: Settings, url: str) -> Settings:
    """Point settings at a fault server, with timeouts short enough for quick timeout tests."""
    return settings.with_overrides(
        phoenix_enabled=True,
        phoenix_url=url,
        phoenix_connect_timeout_s=CONNECT_TIMEOUT_S,
        phoenix_read_timeout_s=READ_TIMEOUT_S,
    )


@pytest.fixture
def faulty_phoenix(
    settings: Settings, phoenix_server: PhoenixServer, fault_server_for: Any
) -> FaultyPhoenix:
    """A fault server in front of the real test Phoenix, and settings whose PHOENIX_URL is it."""
    server = fault_server_for(phoenix_server.url)
    return FaultyPhoenix(server, faulty_settings(settings, server.url), phoenix_server)
