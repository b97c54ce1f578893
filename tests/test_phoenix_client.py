"""The typed Phoenix client against a real Phoenix loaded with the demo slice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit

import pytest

from devtools.demo_data import DATASET_NAME, PROJECT_NAMES
from devtools.phoenix import free_port
from services.phoenix import (
    PhoenixAuthError,
    PhoenixBadIdentifier,
    PhoenixClient,
    PhoenixHTTPError,
    PhoenixUnavailable,
    SpanQuery,
)

pytestmark = pytest.mark.integration

VERSION = "llm.prompt_template.version"


@pytest.fixture
def px(phoenix_server, demo_loaded) -> PhoenixClient:
    """A client on the session's Phoenix, with the demo slice loaded."""
    return PhoenixClient(phoenix_server.url)


def test_spans_follow_insertion_order_without_gaps_or_repeats(px, demo_loaded) -> None:
    project = PROJECT_NAMES[0]
    everything = list(px.spans(project))
    paged: list[dict] = []
    cursor = None
    while True:
        page = px.span_page(project, cursor=cursor, limit=7)
        paged += page.spans
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    ids = [s["id"] for s in paged]
    assert len(ids) == len(set(ids)) == len(everything)
    total = sum(len(list(px.spans(p))) for p in PROJECT_NAMES)
    assert total == demo_loaded.total_spans


def test_span_filters(px, demo_loaded) -> None:
    project = PROJECT_NAMES[0]
    llm = list(px.spans(project, SpanQuery(span_kinds=["LLM"])))
    assert llm and all(s["span_kind"] == "LLM" for s in llm)
    assert sum(len(list(px.spans(p, SpanQuery(span_kinds=["LLM"])))) for p in PROJECT_NAMES) == (
        demo_loaded.llm_spans
    )
    versions = Counter(s["attributes"][VERSION] for s in llm)
    for version, count in versions.items():
        only = list(px.spans(project, SpanQuery(span_kinds=["LLM"], attributes={VERSION: version})))
        assert len(only) == count
    errors = list(px.spans(project, SpanQuery(status_codes=["ERROR"])))
    assert errors and all(s["status_code"] == "ERROR" for s in errors)
    roots = list(px.spans(project, SpanQuery(parent_id_null=True)))
    assert roots and all(s["parent_id"] is None for s in roots)

    starts = sorted(datetime.fromisoformat(s["start_time"]) for s in llm)
    middle = starts[len(starts) // 2]
    before = list(px.spans(project, SpanQuery(span_kinds=["LLM"], end=middle)))
    after = list(px.spans(project, SpanQuery(span_kinds=["LLM"], start=middle)))
    assert len(before) + len(after) == len(llm)


def test_traces_and_annotations_in_chunks(px) -> None:
    project = PROJECT_NAMES[0]
    spans = list(px.spans(project))
    assert len(list(px.traces(project))) == len({s["context"]["trace_id"] for s in spans})
    span_ids = [s["context"]["span_id"] for s in spans]
    whole = {a["id"] for a in px.span_annotations(project, span_ids)}
    chunked = {a["id"] for a in px.span_annotations(project, span_ids, chunk=7)}
    assert whole and whole == chunked
    with pytest.raises(ValueError, match="1 to 1000"):
        list(px.span_annotations(project, span_ids, chunk=1001))


def test_datasets_experiments_and_runs_with_evaluations(px, demo_loaded) -> None:
    dataset = next(d for d in px.datasets() if d["name"] == DATASET_NAME)
    experiments = px.experiments(dataset["id"])
    assert len(experiments) >= 2
    runs = px.experiment_runs_with_evaluations(experiments[0]["id"])
    assert runs and all(run["annotations"] for run in runs)


def test_prompts_versions_and_tags(px) -> None:
    prompts = px.prompts()
    assert len(prompts) >= 4
    versions = px.prompt_versions(prompts[0]["name"])
    assert len(versions) >= 2
    tags = {t["name"] for v in versions for t in px.prompt_version_tags(v["id"])}
    assert "production" in tags


def test_a_name_stays_one_path_segment(px) -> None:
    """Unencoded, `?` started a query and `../users?x=` asked Phoenix for /v1/users."""
    with pytest.raises(PhoenixHTTPError) as missing:
        px.project("no-such?x=")
    assert missing.value.status == 404
    assert "no-such?x=" in missing.value.detail
    # Phoenix routes on the decoded path: no API route takes a name with "/", and the UI page
    # it falls back to is not JSON.
    with pytest.raises(PhoenixHTTPError, match="not valid JSON"):
        px.project("../users?x=")


def test_graphql_aggregates_match_rest(px) -> None:
    project = px.project(PROJECT_NAMES[0])
    llm = list(px.spans(project["name"], SpanQuery(span_kinds=["LLM"])))
    aggregates = px.project_aggregates(project["id"], filter_condition="span_kind == 'LLM'")
    assert aggregates.record_count == len(llm)
    tokens = sum(s["attributes"].get("llm.token_count.total", 0) for s in llm)
    assert aggregates.token_count_total == tokens
    assert aggregates.p50_ms is not None and aggregates.p50_ms <= aggregates.p99_ms
    assert "correctness" in aggregates.annotation_names
    summary = px.annotation_summary(project["id"], "correctness")
    assert summary is not None
    scores = [
        a["result"]["score"]
        for a in px.span_annotations(project["name"], [s["context"]["span_id"] for s in llm])
        if a["name"] == "correctness"
    ]
    assert summary.mean_score == pytest.approx(sum(scores) / len(scores), abs=1e-9)


def test_typed_errors(px, phoenix_auth) -> None:
    with pytest.raises(PhoenixHTTPError) as missing:
        px.project("no-such-project")
    assert missing.value.status == 404
    assert "no-such-project" in missing.value.detail
    with pytest.raises(PhoenixAuthError) as refused:
        PhoenixClient(phoenix_auth.server.url).projects()
    assert refused.value.status == 401
    with pytest.raises(PhoenixUnavailable):
        PhoenixClient(f"http://127.0.0.1:{free_port()}", retries=0).projects()
    keyed = PhoenixClient(phoenix_auth.server.url, api_key=phoenix_auth.keys.viewer_key)
    assert any(p["name"] == "default" for p in keyed.projects())


class _RateLimited(BaseHTTPRequestHandler):
    """Answer 429 with Retry-After the first time, then 200; record when each request came."""

    seen: ClassVar[list[tuple[str, float]]] = []

    def _answer(self) -> None:
        self.seen.append((self.command, time.monotonic()))
        if len(self.seen) == 1 or self.command == "POST":
            self.send_response(429)
            self.send_header("Retry-After", "1")
            body = b'{"detail": "slow down"}'
        else:
            self.send_response(200)
            body = b'{"data": [], "next_cursor": null}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def test_idempotent_calls_retry_after_429_honouring_retry_after() -> None:
    """A local server that rate-limits: this checks our retry policy, not Phoenix."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RateLimited)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = PhoenixClient(f"http://127.0.0.1:{server.server_address[1]}")
        assert client.projects() == []
        (_, first), (_, second) = _RateLimited.seen[:2]
        assert second - first >= 0.9
        _RateLimited.seen.clear()
        _RateLimited.seen.append(("GET", 0.0))
        with pytest.raises(PhoenixHTTPError) as exc:
            client.request("POST", "/v1/projects", json={"name": "x"})
        assert exc.value.status == 429 and exc.value.detail == "slow down"
        assert [m for m, _ in _RateLimited.seen[1:]] == ["POST"]
    finally:
        server.shutdown()


def test_span_costs_in_chunks_under_phoenixs_alias_limit(px) -> None:
    llm = [s for p in PROJECT_NAMES for s in px.spans(p, SpanQuery(span_kinds=["LLM"]))]
    assert len(llm) > 50
    costs = px.span_costs([s["id"] for s in llm])
    assert set(costs) == {s["id"] for s in llm}
    total = 0.0
    for project in PROJECT_NAMES:
        project_id = px.project(project)["id"]
        summary = px.project_aggregates(project_id, filter_condition="span_kind == 'LLM'")
        total += summary.cost_total or 0.0
    assert sum(c or 0.0 for c in costs.values()) == pytest.approx(total, abs=1e-9)
    assert total > 0


class _Targets(BaseHTTPRequestHandler):
    """Record each raw request target and answer an empty page."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        body = b'{"data": [], "next_cursor": null}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def targets_client() -> Iterator[PhoenixClient]:
    """A client on a local server that records raw targets: it checks our URLs, not Phoenix."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Targets)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Targets.seen.clear()
    try:
        yield PhoenixClient(f"http://127.0.0.1:{server.server_address[1]}", retries=0)
    finally:
        server.shutdown()


# Every method that puts a caller's id or name into a path.
PATH_CALLS: dict[str, Callable[[PhoenixClient, str], Any]] = {
    "project": lambda px, v: px.project(v),
    "span_page": lambda px, v: px.span_page(v),
    "spans": lambda px, v: list(px.spans(v)),
    "traces": lambda px, v: list(px.traces(v)),
    "span_annotations": lambda px, v: list(px.span_annotations(v, ["0" * 16])),
    "experiments": lambda px, v: px.experiments(v),
    "experiment_runs_with_evaluations": lambda px, v: px.experiment_runs_with_evaluations(v),
    "prompt_versions": lambda px, v: px.prompt_versions(v),
    "prompt_version_tags": lambda px, v: px.prompt_version_tags(v),
}
HOSTILE_SEGMENTS = [
    "../users?x=",
    "../../v1/secrets?y=",
    "a/b#c",
    "%2e%2e",
    "..%2f",
    "x y;=&@:+$,",
    "\\..\\",
    "ünï/cödé",
    "RXhwZXJpbWVudDox==",
]


@pytest.mark.parametrize("method", sorted(PATH_CALLS))
def test_every_id_is_one_percent_encoded_path_segment(targets_client, method: str) -> None:
    for value in HOSTILE_SEGMENTS:
        PATH_CALLS[method](targets_client, value)
    seen = _Targets.seen
    assert len(seen) == len(HOSTILE_SEGMENTS)
    for target, value in zip(seen, HOSTILE_SEGMENTS, strict=True):
        parts = urlsplit(target)
        segments = parts.path.split("/")
        # The value is exactly one segment, encoded with nothing left safe, and adds no query.
        assert quote(value, safe="") in segments, (value, target)
        assert [s for s in segments if unquote(s) == value] == [quote(value, safe="")]
        assert not any(s in (".", "..") for s in segments), target
        assert "x=" not in parts.query and "y=" not in parts.query, target


@pytest.mark.parametrize("method", sorted(PATH_CALLS))
def test_ids_no_encoding_can_keep_in_place_are_refused(targets_client, method: str) -> None:
    for value in ("", ".", ".."):
        with pytest.raises(PhoenixBadIdentifier):
            PATH_CALLS[method](targets_client, value)
    assert _Targets.seen == []
