"""Map Phoenix spans, annotations and registry versions to the sync's facts: pure, no I/O."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes

JSON = dict[str, Any]
LLM = OpenInferenceSpanKindValues.LLM.value
UNSET_STATUS = "UNSET"
UNVERSIONED = "unversioned"


@dataclass(frozen=True)
class DeclaredPrompt:
    """A prompt named by a span's attributes: its identity key, display name and link."""

    key: str
    source: str  # "prompt.id" or "attribute"
    name: str
    url: str | None = None


@dataclass(frozen=True)
class SpanFacts:
    """The facts of one LLM span that charts aggregate; None means unknown, never zero."""

    span_id: str
    trace_id: str
    project: str
    # The template as the span states it, its hash, and the version it names (if any).
    template: str | None
    template_hash: str | None
    template_version: str | None
    model: str | None
    start_time: datetime
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    status: str
    cost: float | None
    # The prompt the span names itself (OpenInference prompt.id, else the configured attribute);
    # the registry, when it knows the template, comes first (services/prompt_catalog.py).
    declared: DeclaredPrompt | None = None
    # Set by the sync once the span is linked to its template group, with the version it states.
    prompt_id: uuid.UUID | None = None
    prompt_version: str | None = None


@dataclass(frozen=True)
class AnnotationFacts:
    """Name, label and score of one span annotation, with the prompt of its span."""

    annotation_id: str
    span_id: str
    project: str
    name: str
    annotator_kind: str
    label: str | None
    score: float | None
    explanation: str | None
    updated_at: datetime
    prompt_id: uuid.UUID | None = None


@dataclass(frozen=True)
class RegistryVersion:
    """One version of a registry prompt, reduced to what links spans to it."""

    prompt_name: str
    prompt_id: str
    template: str
    template_hash: str
    version_label: str


def template_hash(template: str) -> str:
    """Identify a prompt template by the SHA-256 of its text."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def registry_text(template: JSON) -> str:
    """Flatten a registry template to the text a span's `llm.prompt_template.template` holds."""
    if template.get("type") == "string":
        return str(template.get("template", ""))
    parts: list[str] = []
    for message in template.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(c.get("text", "")) for c in content if c.get("type") == "text"]
    return "\n".join(parts)


def registry_versions(prompt: JSON, versions: list[JSON]) -> list[RegistryVersion]:
    """Reduce a registry prompt's versions (newest first) to their texts and labels."""
    found: list[RegistryVersion] = []
    # Unlabelled versions are numbered from the oldest, as Phoenix's UI numbers them.
    for index, version in enumerate(reversed(versions), start=1):
        text = registry_text(version.get("template") or {})
        if not text:
            continue
        metadata = version.get("metadata") or {}
        label = str(metadata.get("version") or f"v{index}")
        found.append(
            RegistryVersion(prompt["name"], prompt["id"], text, template_hash(text), label)
        )
    return found


def aware(moment: datetime) -> datetime:
    """Read naive times as UTC: SQLite drops the zone that PostgreSQL keeps."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_time(value: str) -> datetime:
    """Parse Phoenix's ISO 8601 time as an aware datetime."""
    return aware(datetime.fromisoformat(value))


def token_count(value: Any) -> int | None:
    """Read a token count (Phoenix sends them as strings); None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None


MAX_NAME = 200


def _text(value: Any) -> str | None:
    """Return an attribute as stripped text, None when absent, empty or not a scalar."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def attribute(attributes: JSON, path: str) -> Any:
    """Read a dotted attribute: flat as Phoenix stores it, or inside a JSON value on the way."""
    if path in attributes:
        return attributes[path]
    parts = path.split(".")
    # "metadata.prompt_name" may also sit in a JSON string or object held by "metadata".
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head not in attributes:
            continue
        value: Any = attributes[head]
        for part in parts[cut:]:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    return None
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value
    return None


def declared_prompt(attributes: JSON, name_attribute: str | None = None) -> DeclaredPrompt | None:
    """Find the prompt a span names: OpenInference `prompt.id`, else the configured attribute."""
    # Keys are capped (the column holds 600 characters); names are capped at MAX_NAME.
    prompt_id = _text(attributes.get(SpanAttributes.PROMPT_ID))
    if prompt_id is not None:
        vendor = (_text(attributes.get(SpanAttributes.PROMPT_VENDOR)) or "")[:100]
        url = (_text(attributes.get(SpanAttributes.PROMPT_URL)) or "")[:2000] or None
        return DeclaredPrompt(
            f"prompt.id:{vendor}:{prompt_id}", "prompt.id", prompt_id[:MAX_NAME], url
        )
    if name_attribute:
        name = _text(attribute(attributes, name_attribute))
        if name is not None:
            return DeclaredPrompt(
                f"attribute:{name_attribute}:{name}", "attribute", name[:MAX_NAME]
            )
    return None


def is_llm(span: JSON) -> bool:
    """Tell whether a Phoenix span is an LLM call, the only kind the facts keep."""
    return bool(span.get("span_kind") == LLM)


def span_facts(
    project: str, span: JSON, cost: float | None, name_attribute: str | None = None
) -> SpanFacts:
    """Map one Phoenix LLM span (REST shape) and its cost to its facts.

    `name_attribute` is the span attribute that names prompts (PROMPT_NAME_ATTRIBUTE), if any.
    """
    attributes = span.get("attributes") or {}
    template = attributes.get(SpanAttributes.LLM_PROMPT_TEMPLATE)
    if not isinstance(template, str) or not template:
        template = None
    version = attributes.get(SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION)
    model = attributes.get(SpanAttributes.LLM_MODEL_NAME)
    start = parse_time(span["start_time"])
    end = parse_time(span["end_time"]) if span.get("end_time") else start
    return SpanFacts(
        span_id=span["context"]["span_id"],
        trace_id=span["context"]["trace_id"],
        project=project,
        template=template,
        template_hash=template_hash(template) if template is not None else None,
        template_version=str(version) if version else None,
        model=str(model) if model is not None else None,
        start_time=start,
        latency_ms=(end - start).total_seconds() * 1000.0,
        prompt_tokens=token_count(attributes.get(SpanAttributes.LLM_TOKEN_COUNT_PROMPT)),
        completion_tokens=token_count(attributes.get(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION)),
        total_tokens=token_count(attributes.get(SpanAttributes.LLM_TOKEN_COUNT_TOTAL)),
        status=span.get("status_code") or UNSET_STATUS,
        cost=cost,
        declared=declared_prompt(attributes, name_attribute),
    )


def annotation_facts(
    project: str, annotation: JSON, prompt_id: uuid.UUID | None, now: datetime
) -> AnnotationFacts:
    """Map one Phoenix span annotation (REST shape) to its facts; `now` stands in for no time."""
    result = annotation.get("result") or {}
    updated = annotation.get("updated_at")
    return AnnotationFacts(
        annotation_id=annotation["id"],
        span_id=annotation["span_id"],
        project=project,
        name=annotation["name"],
        annotator_kind=annotation.get("annotator_kind") or "",
        label=result.get("label"),
        score=result.get("score"),
        explanation=result.get("explanation"),
        updated_at=parse_time(updated) if updated else now,
        prompt_id=prompt_id,
    )
