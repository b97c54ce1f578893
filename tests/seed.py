"""Seed an app's facts store and prompts table directly, without Phoenix or a sync."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from db.models import Prompt
from services.container import get_services
from store.facts import SpanAnnotationRow, SpanRow


@dataclass(frozen=True)
class Seeded:
    """What seed() stored: prompt ids by (name, version), and how many spans and notes."""

    prompt_ids: dict[tuple[str, str], str]
    spans: int
    annotations: int


# Two prompts share the version label "v1": their versions must never merge.
PROMPT_VERSIONS = (("alpha", "v1"), ("alpha", "v2"), ("beta", "v1"))


def seed(app: Any, spans: int = 60, now: datetime | None = None) -> Seeded:
    """Store `spans` LLM calls over the last hours across three prompt versions, plus notes.

    Every fifth call has unknown tokens and cost (NULL); every fourth failed; every call but
    the unprompted ones has a correctness score and a label.
    """
    services = get_services(app.server)
    moment = now or datetime.now(UTC)
    ids: dict[tuple[str, str], str] = {}
    with services.sessions.begin() as db:
        for name, version in PROMPT_VERSIONS:
            prompt = Prompt(
                id=uuid.uuid4(),
                name=name,
                version=version,
                template=f"{name} {version} {{question}}",
                template_hash=f"hash-{name}-{version}",
            )
            db.add(prompt)
            ids[(name, version)] = str(prompt.id)
    keys = [*PROMPT_VERSIONS, None]
    rows = []
    notes = []
    for i in range(spans):
        key = keys[i % len(keys)]
        unknown = i % 5 == 0
        row = SpanRow(
            span_id=f"span-{i:06d}",
            trace_id=f"trace-{i // 2:06d}",
            project="support-bot" if i % 2 else "sales-email",
            prompt_id=ids[key] if key else None,
            template_hash=f"hash-{key[0]}-{key[1]}" if key else None,
            prompt_version=key[1] if key else "unversioned",
            model="gpt-4o" if i % 3 else "claude",
            start_time=moment - timedelta(minutes=5 + i),
            latency_ms=100.0 + 7.25 * i,
            prompt_tokens=None if unknown else 10 + i,
            completion_tokens=None if unknown else 5,
            total_tokens=None if unknown else 15 + i,
            status="ERROR" if i % 4 == 0 else "OK",
            cost=None if unknown else 0.000123456789 * (i + 1),
        )
        rows.append(row)
        if key:
            notes.append(
                SpanAnnotationRow(
                    annotation_id=f"note-{i:06d}",
                    span_id=row.span_id,
                    trace_id=row.trace_id,
                    project=row.project,
                    name="correctness",
                    annotator_kind="LLM",
                    label="pass" if i % 3 else "fail",
                    score=(i % 7) / 6,
                    updated_at=row.start_time,
                    is_deleted=False,
                    span_start_time=row.start_time,
                    prompt_id=row.prompt_id,
                    template_hash=row.template_hash,
                    prompt_version=row.prompt_version,
                    model=row.model,
                    span_status=row.status,
                )
            )
    services.store.write_spans(rows)
    services.store.write_span_annotations(notes)
    return Seeded(ids, len(rows), len(notes))


def rest_llm_span(n: int, start: datetime | None = None, /, **attributes: Any) -> dict[str, Any]:
    """Build span n as Phoenix's REST API returns an LLM span, one second long from `start`."""
    begin = start or datetime(2026, 11, 20, 10, tzinfo=UTC)
    return {
        "context": {"span_id": f"{n:016x}", "trace_id": f"{n:032x}"},
        "span_kind": "LLM",
        "start_time": begin.isoformat(),
        "end_time": (begin + timedelta(seconds=1)).isoformat(),
        "status_code": "OK",
        "attributes": {"llm.model_name": "gpt-4o", **attributes},
    }
