"""Test sets made the way real spans are: OpenInference over OTLP, annotations over REST.

A test plans its data as `PlannedSpan`s and `PlannedAnnotation`s, sends them to a real Phoenix
with `send_spans` and `post_annotations` (each waits until Phoenix's REST API lists what was
sent), lets the dashboard sync, and checks what the dashboard serves against an independent
computation over the same plan (plain Python / numpy, never the code under test).

Every span goes out as a one-span trace of kind LLM through the OpenTelemetry SDK and its
OTLP/HTTP exporter, to `<url>/v1/traces`, with the ids, start and end times of the plan. Ids
are chosen by the plan (`planned_ids` derives them from a key), so the same plan gives the same
ids on every run.

Phoenix keeps times to the microsecond (and computes a latency from them): plan start times and
latencies in whole milliseconds for comparisons to be exact. Phoenix prices a span from its own
model price table: a made-up model name has no cost, which the dashboard must show as unknown.

    span = PlannedSpan.planned(
        "my-project", "faq-1", start=t0, latency_ms=812, model="acme-unpriced",
        template="Answer {question}", version="v1", metadata={"prompt_name": "faq"},
        prompt_tokens=120, completion_tokens=40, total_tokens=160,
    )
    send_spans(phoenix.url, [span])
    post_annotations(phoenix.url, [PlannedAnnotation.on(span, "correctness", "LLM", score=1.0)])
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests
from openinference.semconv.resource import ResourceAttributes
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from opentelemetry import trace as trace_api
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Status, StatusCode
from opentelemetry.util.types import AttributeValue

from devtools.demo_data import CountingExporter

__all__ = [
    "AnnotatorKind",
    "PlannedAnnotation",
    "PlannedSpan",
    "SpanStatus",
    "planned_ids",
    "post_annotations",
    "register_prompt",
    "send_spans",
]

JSON = dict[str, Any]
SpanStatus = Literal["OK", "ERROR"]
AnnotatorKind = Literal["LLM", "CODE", "HUMAN"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HTTP_TIMEOUT = (5.0, 60.0)
_PAGE_LIMIT = 1000
# Span ids travel in the query string: a hundred keep the request line short.
_ID_CHUNK = 100
_ANNOTATION_CHUNK = 500
_POLL_S = 0.2


def planned_ids(key: str) -> tuple[str, str]:
    """Derive a (trace id, span id) pair, 32 and 16 hex digits, from a key: same key, same ids."""
    digest = hashlib.sha256(f"otlp-sets:{key}".encode()).hexdigest()
    trace_id, span_id = digest[:32], digest[32:48]
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:  # OTel's invalid ids; never in practice
        raise ValueError(f"key {key!r} gives an invalid id; choose another")
    return trace_id, span_id


@dataclass(frozen=True)
class PlannedSpan:
    """One LLM call as a test plans it; every attribute left None is not sent at all.

    `metadata` is sent as the JSON string OpenInference's `metadata` attribute holds (a mapping
    is dumped for you); `attributes` adds any other OpenInference (or custom) attribute and wins
    over the named fields.
    """

    project: str
    trace_id: str
    span_id: str
    start: datetime
    latency_ms: float
    status: SpanStatus = "OK"
    model: str | None = None
    name: str = "ChatCompletion"
    template: str | None = None  # llm.prompt_template.template
    version: str | None = None  # llm.prompt_template.version
    variables: Mapping[str, str] | None = None  # llm.prompt_template.variables (as JSON)
    prompt_id: str | None = None  # prompt.id
    prompt_vendor: str | None = None  # prompt.vendor
    prompt_url: str | None = None  # prompt.url
    metadata: str | Mapping[str, Any] | None = None  # metadata (a JSON string)
    prompt_tokens: int | None = None  # llm.token_count.prompt
    completion_tokens: int | None = None  # llm.token_count.completion
    total_tokens: int | None = None  # llm.token_count.total
    input_value: str | None = None
    output_value: str | None = None
    error_message: str = "planned failure"
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.trace_id) != 32 or len(self.span_id) != 16:
            raise ValueError("trace ids are 32 hex digits and span ids 16")
        for value in (self.trace_id, self.span_id):
            int(value, 16)  # hex digits, or ValueError
        if self.start.tzinfo is None:
            raise ValueError("plan start times with a time zone")
        if not self.latency_ms >= 0:
            raise ValueError("a latency is a non-negative number of milliseconds")

    @classmethod
    def planned(
        cls, project: str, key: str, *, start: datetime, latency_ms: float, **fields: Any
    ) -> PlannedSpan:
        """Plan a span whose ids derive from (project, key); other fields by keyword."""
        trace_id, span_id = planned_ids(f"{project}:{key}")
        return cls(project, trace_id, span_id, start, latency_ms, **fields)

    @property
    def end(self) -> datetime:
        """When the call ended: its start plus its latency (to the microsecond)."""
        return self.start + timedelta(milliseconds=self.latency_ms)

    @property
    def tokens_known(self) -> bool:
        """Tell whether the span states its total token count."""
        return self.total_tokens is not None

    def otel_attributes(self) -> dict[str, AttributeValue]:
        """Return the span's attributes as sent: OpenInference names, absent values left out."""
        metadata = self.metadata
        if metadata is not None and not isinstance(metadata, str):
            metadata = json.dumps(dict(metadata), sort_keys=True)
        variables = json.dumps(dict(self.variables)) if self.variables is not None else None
        named: dict[str, AttributeValue | None] = {
            SpanAttributes.OPENINFERENCE_SPAN_KIND: OpenInferenceSpanKindValues.LLM.value,
            SpanAttributes.LLM_MODEL_NAME: self.model,
            SpanAttributes.LLM_PROMPT_TEMPLATE: self.template,
            SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION: self.version,
            SpanAttributes.LLM_PROMPT_TEMPLATE_VARIABLES: variables,
            SpanAttributes.PROMPT_ID: self.prompt_id,
            SpanAttributes.PROMPT_VENDOR: self.prompt_vendor,
            SpanAttributes.PROMPT_URL: self.prompt_url,
            SpanAttributes.METADATA: metadata,
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: self.prompt_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: self.completion_tokens,
            SpanAttributes.LLM_TOKEN_COUNT_TOTAL: self.total_tokens,
            SpanAttributes.INPUT_VALUE: self.input_value,
            SpanAttributes.OUTPUT_VALUE: self.output_value if self.status == "OK" else None,
        }
        sent = {key: value for key, value in named.items() if value is not None}
        return {**sent, **self.attributes}


@dataclass(frozen=True)
class PlannedAnnotation:
    """One span annotation (an evaluation) as a test plans it: a label, a score, or both.

    Phoenix keeps one annotation per (span, name, identifier): a second one with the same three
    replaces the first, so `post_annotations` refuses a plan that repeats them.
    """

    project: str
    span_id: str
    name: str
    annotator_kind: AnnotatorKind
    label: str | None = None
    score: float | None = None
    explanation: str | None = None
    identifier: str = ""
    metadata: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.label is None and self.score is None:
            raise ValueError("an annotation needs a label, a score, or both")

    @classmethod
    def on(
        cls,
        span: PlannedSpan,
        name: str,
        annotator_kind: AnnotatorKind,
        *,
        label: str | None = None,
        score: float | None = None,
        **fields: Any,
    ) -> PlannedAnnotation:
        """Plan an annotation of a planned span."""
        return cls(span.project, span.span_id, name, annotator_kind, label, score, **fields)

    @property
    def key(self) -> tuple[str, str, str]:
        """What Phoenix identifies the annotation by: (span id, name, identifier)."""
        return self.span_id, self.name, self.identifier

    def body(self) -> JSON:
        """Return the annotation as `POST /v1/span_annotations` takes it."""
        result: JSON = {"label": self.label, "score": self.score}
        if self.explanation is not None:
            result["explanation"] = self.explanation
        return {
            "span_id": self.span_id,
            "name": self.name,
            "annotator_kind": self.annotator_kind,
            "result": result,
            "metadata": dict(self.metadata or {}),
            "identifier": self.identifier,
        }


# Sending spans ----------------------------------------------------------------------------------


class _PlannedIds(IdGenerator):
    """Hand the SDK the ids the plan chose for the next span (a root span: trace id first)."""

    def __init__(self) -> None:
        self.trace_id = trace_api.INVALID_TRACE_ID
        self.span_id = trace_api.INVALID_SPAN_ID

    def set(self, span: PlannedSpan) -> None:
        """Make the next span the SDK starts get this planned span's ids."""
        self.trace_id, self.span_id = int(span.trace_id, 16), int(span.span_id, 16)

    def generate_span_id(self) -> int:
        """Return the planned span id."""
        return self.span_id

    def generate_trace_id(self) -> int:
        """Return the planned trace id."""
        return self.trace_id


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _check_unique(keys: Iterable[tuple[str, ...]], what: str) -> None:
    seen: set[tuple[str, ...]] = set()
    for key in keys:
        if key in seen:
            raise ValueError(f"the plan repeats {what} {key}")
        seen.add(key)


def send_spans(
    phoenix_url: str,
    spans: Sequence[PlannedSpan],
    *,
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> dict[str, JSON]:
    """Send each span as a one-span LLM trace over OTLP/HTTP; wait until Phoenix lists them all.

    Returns Phoenix's own record of each span (its REST shape), by span id.
    """
    _check_unique(((s.span_id,) for s in spans), "span id")
    _check_unique(((s.trace_id,) for s in spans), "trace id")
    url = phoenix_url.rstrip("/")
    by_project: dict[str, list[PlannedSpan]] = {}
    for span in spans:
        by_project.setdefault(span.project, []).append(span)
    for project, planned in by_project.items():
        ids = _PlannedIds()
        provider = TracerProvider(
            resource=Resource.create({ResourceAttributes.PROJECT_NAME: project}), id_generator=ids
        )
        exporter = CountingExporter(
            OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=_headers(api_key), timeout=30)
        )
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=max(2048, len(planned) + 64),
                max_export_batch_size=512,
                schedule_delay_millis=200,
            )
        )
        tracer = provider.get_tracer("tests.otlp_sets")
        try:
            for span in planned:
                ids.set(span)
                otel = tracer.start_span(
                    span.name, start_time=_ns(span.start), attributes=span.otel_attributes()
                )
                if span.status == "ERROR":
                    otel.record_exception(RuntimeError(span.error_message), timestamp=_ns(span.end))
                    otel.set_status(Status(StatusCode.ERROR, span.error_message))
                else:
                    otel.set_status(Status(StatusCode.OK))
                otel.end(end_time=_ns(span.end))
            if not provider.force_flush(timeout_millis=int(timeout_s * 1000)):
                raise RuntimeError(f"timed out sending spans of {project!r} over OTLP")
        finally:
            provider.shutdown()
        if exporter.failed or exporter.exported != len(planned):
            raise RuntimeError(
                f"OTLP export to {url}/v1/traces accepted {exporter.exported} of "
                f"{len(planned)} spans of {project!r}"
            )
    return _wait_for_spans(url, by_project, api_key, timeout_s)


def _get(url: str, params: Any, api_key: str | None) -> requests.Response:
    return requests.get(url, params=params, headers=_headers(api_key), timeout=_HTTP_TIMEOUT)


def _wait_for_spans(
    url: str, by_project: Mapping[str, Sequence[PlannedSpan]], api_key: str | None, timeout_s: float
) -> dict[str, JSON]:
    """Poll each project's REST span list until every planned span is there."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, JSON] = {}
    while True:
        missing: dict[str, int] = {}
        for project, planned in by_project.items():
            wanted = [s.span_id for s in planned if s.span_id not in found]
            for start in range(0, len(wanted), _ID_CHUNK):
                params = [("span_id", i) for i in wanted[start : start + _ID_CHUNK]]
                params.append(("limit", str(_PAGE_LIMIT)))
                response = _get(f"{url}/v1/projects/{project}/spans", params, api_key)
                if response.status_code == 404:  # the project is not created yet
                    break
                response.raise_for_status()
                for item in response.json()["data"]:
                    found[item["context"]["span_id"]] = item
            if left := sum(1 for s in planned if s.span_id not in found):
                missing[project] = left
        if not missing:
            return {s.span_id: found[s.span_id] for p in by_project.values() for s in p}
        if time.monotonic() > deadline:
            raise RuntimeError(f"Phoenix did not list every span in {timeout_s:.0f}s: {missing}")
        time.sleep(_POLL_S)


# Annotations ------------------------------------------------------------------------------------


def post_annotations(
    phoenix_url: str,
    annotations: Sequence[PlannedAnnotation],
    *,
    api_key: str | None = None,
    timeout_s: float = 30.0,
) -> dict[tuple[str, str, str], JSON]:
    """Write the annotations through `POST /v1/span_annotations`, then wait until all read back.

    Returns Phoenix's record of each one (its REST shape), by (span id, name, identifier).
    """
    _check_unique((a.key for a in annotations), "annotation")
    url = phoenix_url.rstrip("/")
    for start in range(0, len(annotations), _ANNOTATION_CHUNK):
        chunk = [a.body() for a in annotations[start : start + _ANNOTATION_CHUNK]]
        response = requests.post(
            f"{url}/v1/span_annotations",
            params={"sync": "true"},
            json={"data": chunk},
            headers=_headers(api_key),
            timeout=_HTTP_TIMEOUT,
        )
        if not response.ok:
            raise RuntimeError(
                f"Phoenix refused annotations: {response.status_code} {response.text}"
            )
    wanted = {a.key: a for a in annotations}
    spans_by_project: dict[str, list[str]] = {}
    for a in annotations:
        spans_by_project.setdefault(a.project, [])
        if a.span_id not in spans_by_project[a.project]:
            spans_by_project[a.project].append(a.span_id)
    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[tuple[str, str, str], JSON] = {}
        for project, span_ids in spans_by_project.items():
            for first in range(0, len(span_ids), _ID_CHUNK):
                params: list[tuple[str, str]] = [
                    ("span_ids", i) for i in span_ids[first : first + _ID_CHUNK]
                ]
                params.append(("limit", "10000"))
                response = _get(f"{url}/v1/projects/{project}/span_annotations", params, api_key)
                response.raise_for_status()
                for item in response.json()["data"]:
                    key = (item["span_id"], item["name"], item.get("identifier") or "")
                    if key in wanted and _matches(item, wanted[key]):
                        found[key] = item
        if len(found) == len(wanted):
            return found
        if time.monotonic() > deadline:
            missing = sorted(set(wanted) - set(found))[:5]
            raise RuntimeError(f"Phoenix did not return {len(wanted) - len(found)}: {missing}")
        time.sleep(_POLL_S)


def _matches(item: JSON, planned: PlannedAnnotation) -> bool:
    """Tell whether Phoenix's record holds what was planned (not an older value)."""
    result = item.get("result") or {}
    return bool(
        result.get("label") == planned.label
        and result.get("score") == planned.score
        and item.get("annotator_kind") == planned.annotator_kind
    )


# The prompt registry ----------------------------------------------------------------------------


def register_prompt(
    phoenix_url: str,
    name: str,
    versions: Sequence[tuple[str, str]],
    *,
    description: str = "",
    model_name: str = "gpt-4o-mini",
    api_key: str | None = None,
) -> dict[str, str]:
    """Add a prompt to Phoenix's registry, a version per (label, template) in order, oldest first.

    Each version is a chat template of one user message holding the template text, labelled
    through its metadata `{"version": label}`. Returns each label's Phoenix version id.
    """
    created: dict[str, str] = {}
    for label, template in versions:
        body = {
            "prompt": {"name": name, "description": description or f"{name} (test set)"},
            "version": {
                "description": f"{label} of {name}",
                "metadata": {"version": label},
                "model_provider": "OPENAI",
                "model_name": model_name,
                "template": {"type": "chat", "messages": [{"role": "user", "content": template}]},
                "template_type": "CHAT",
                "template_format": "F_STRING",
                "invocation_parameters": {"type": "openai", "openai": {"temperature": 0.0}},
            },
        }
        response = requests.post(
            f"{phoenix_url.rstrip('/')}/v1/prompts",
            json=body,
            headers=_headers(api_key),
            timeout=_HTTP_TIMEOUT,
        )
        if not response.ok:
            raise RuntimeError(f"Phoenix refused prompt {name!r}: {response.text}")
        created[label] = str(response.json()["data"]["id"])
    return created
