"""Mapping Phoenix spans and annotations to facts: pure functions, no Phoenix, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from openinference.semconv.trace import SpanAttributes

from services.span_facts import (
    annotation_facts,
    is_llm,
    registry_text,
    registry_versions,
    span_facts,
    template_hash,
    token_count,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _span(**attributes: object) -> dict[str, object]:
    return {
        "id": "U3Bhbjox",
        "context": {"trace_id": "t" * 32, "span_id": "s" * 16},
        "span_kind": "LLM",
        "start_time": "2026-01-02T03:04:05.000000+00:00",
        "end_time": "2026-01-02T03:04:06.250000+00:00",
        "status_code": "ERROR",
        "attributes": attributes,
    }


def test_a_span_maps_to_its_facts_with_unknown_token_counts_left_unknown() -> None:
    span = _span(
        **{
            SpanAttributes.LLM_PROMPT_TEMPLATE: "Hello {name}",
            SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION: "v3",
            SpanAttributes.LLM_MODEL_NAME: "gpt-4o",
            # Phoenix sends counts as strings; a missing one is not a zero.
            SpanAttributes.LLM_TOKEN_COUNT_PROMPT: "139",
            SpanAttributes.LLM_TOKEN_COUNT_COMPLETION: "0",
        }
    )
    facts = span_facts("support-bot", span, cost=0.25)
    assert (facts.span_id, facts.trace_id, facts.project) == ("s" * 16, "t" * 32, "support-bot")
    assert facts.template == "Hello {name}" and facts.template_hash == template_hash("Hello {name}")
    assert (facts.template_version, facts.model, facts.status) == ("v3", "gpt-4o", "ERROR")
    assert facts.latency_ms == 1250.0 and facts.start_time == datetime(
        2026, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert (facts.prompt_tokens, facts.completion_tokens, facts.total_tokens) == (139, 0, None)
    assert facts.cost == 0.25 and facts.prompt_id is None and facts.prompt_version is None


def test_a_bare_span_has_no_template_and_an_unset_status() -> None:
    span = _span()
    del span["end_time"]
    span["status_code"] = None
    facts = span_facts("p", span, cost=None)
    assert facts.template is None and facts.template_hash is None
    assert (facts.latency_ms, facts.status, facts.cost) == (0.0, "UNSET", None)
    assert is_llm(span) and not is_llm({**span, "span_kind": "CHAIN"})


def test_token_counts_read_numbers_and_refuse_the_rest() -> None:
    assert [token_count(v) for v in (12, "12", 12.0, "12.0", 0)] == [12, 12, 12, 12, 0]
    assert [token_count(v) for v in (None, "", "many", True, float("nan"), [1])] == [None] * 6


def test_an_annotation_maps_to_its_facts_with_its_spans_prompt() -> None:
    prompt = uuid.uuid4()
    annotation = {
        "id": "U3BhbkFubm90YXRpb246Mg==",
        "span_id": "s" * 16,
        "name": "correctness",
        "annotator_kind": "LLM",
        "result": {"label": "correct", "score": 1.0, "explanation": "fine"},
        "updated_at": "2026-01-02T03:04:05+00:00",
    }
    facts = annotation_facts("p", annotation, prompt, NOW)
    assert (facts.name, facts.label, facts.score, facts.explanation) == (
        "correctness",
        "correct",
        1.0,
        "fine",
    )
    assert facts.prompt_id == prompt and facts.updated_at == NOW
    bare = annotation_facts("p", {**annotation, "result": None, "updated_at": None}, None, NOW)
    assert (bare.label, bare.score, bare.updated_at, bare.prompt_id) == (None, None, NOW, None)


def test_registry_versions_are_flattened_and_labelled_from_the_oldest() -> None:
    chat = {
        "type": "chat",
        "messages": [{"content": "Be brief."}, {"content": [{"type": "text", "text": "Q: {q}"}]}],
    }
    assert registry_text(chat) == "Be brief.\nQ: {q}"
    versions = [  # newest first, as Phoenix lists them
        {"template": {"type": "string", "template": "new"}, "metadata": {"version": "v9"}},
        {"template": {"type": "string", "template": ""}},
        {"template": {"type": "string", "template": "old"}},
    ]
    found = registry_versions({"name": "answer", "id": "UHJvbXB0OjE="}, versions)
    assert [(v.template, v.version_label) for v in found] == [("old", "v1"), ("new", "v9")]
    assert found[0].template_hash == template_hash("old") and found[0].prompt_name == "answer"
