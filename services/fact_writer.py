"""Write the sync's facts: one narrow interface, and its implementation on our SQL tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.models import AnnotationFact, PromptEvaluation, PromptTrace, SpanFact, utcnow
from services.span_facts import AnnotationFacts, SpanFacts

# Rows per statement where a statement lists keys (IN ...): far below SQLite's 32,766 variables.
KEYS_PER_STATEMENT = 500
# What an annotation edit can change; Phoenix's updated_at has whole seconds, so the contents
# are compared to spot an edit.
ANNOTATION_CONTENTS = ("name", "label", "score", "explanation")


class FactWriter(Protocol):
    """Where the sync puts facts; each write is safe to repeat (a re-read page changes nothing)."""

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        """Store the facts of a page of LLM spans and link their traces to their prompts."""

    def write_annotations(self, facts: Sequence[AnnotationFacts]) -> int:
        """Store annotation facts and their prompt links; return how many are new or changed."""

    def clear(self) -> None:
        """Forget every fact and link, before a rebuild reads Phoenix again."""


def _insert(session: Session, table: Any) -> Any:
    """Return the dialect's INSERT, which offers ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table)


def upsert(
    session: Session,
    table: Table | Any,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update_columns: Sequence[str] = (),
) -> None:
    """Insert rows, skipping (or updating) those whose key exists: safe to repeat."""
    if not rows:
        return
    statement = _insert(session, table)
    if update_columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in update_columns},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    # One statement with the rows as parameters (executemany): SQLAlchemy compiles it once and
    # batches the rows, where a VALUES list of N rows compiled N x 15 bind parameters each time.
    session.execute(statement, list(rows))


class SqlFactWriter:
    """Write facts and prompt links into the dashboard's SQL tables, a few statements a batch."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        """Insert the span facts and trace links of one page in one transaction."""
        if not facts:
            return
        now = utcnow()
        rows = [
            {
                "phoenix_span_id": f.span_id,
                "phoenix_trace_id": f.trace_id,
                "project": project,
                "prompt_id": f.prompt_id,
                "prompt_version": f.prompt_version,
                "model": f.model,
                "start_time": f.start_time,
                "latency_ms": f.latency_ms,
                # The columns are NOT NULL and keep 0 for "unknown" until the facts move to the
                # store, which keeps NULL; the mapped facts already tell the two apart.
                "prompt_tokens": f.prompt_tokens or 0,
                "completion_tokens": f.completion_tokens or 0,
                "total_tokens": f.total_tokens or 0,
                "status": f.status,
                "cost": f.cost,
                "synced_at": now,
            }
            for f in facts
        ]
        # A trace links to the prompt of its first prompted LLM span, as before batching.
        links: dict[str, dict[str, Any]] = {}
        for f in facts:
            if f.prompt_id is not None and f.trace_id not in links:
                links[f.trace_id] = {
                    "prompt_id": f.prompt_id,
                    "phoenix_trace_id": f.trace_id,
                    "project": project,
                    "created_at": now,
                }
        with self.sessions.begin() as db:
            upsert(db, SpanFact.__table__, rows, key=["phoenix_span_id"])
            upsert(db, PromptTrace.__table__, list(links.values()), key=["phoenix_trace_id"])

    def write_annotations(self, facts: Sequence[AnnotationFacts]) -> int:
        """Upsert annotation facts and link them to their span's prompt; count new or changed."""
        # The last copy of an annotation wins, and PostgreSQL refuses one twice in a statement.
        latest = {f.annotation_id: f for f in facts}
        if not latest:
            return 0
        fresh_count = 0
        now = utcnow()
        ordered = list(latest.values())
        with self.sessions.begin() as db:
            for start in range(0, len(ordered), KEYS_PER_STATEMENT):
                batch = ordered[start : start + KEYS_PER_STATEMENT]
                known = {
                    row[0]: tuple(row[1:])
                    for row in db.execute(
                        select(
                            AnnotationFact.phoenix_annotation_id,
                            *[getattr(AnnotationFact, c) for c in ANNOTATION_CONTENTS],
                        ).where(
                            AnnotationFact.phoenix_annotation_id.in_(
                                [f.annotation_id for f in batch]
                            )
                        )
                    )
                }
                fresh = [
                    f
                    for f in batch
                    if known.get(f.annotation_id)
                    != tuple(getattr(f, c) for c in ANNOTATION_CONTENTS)
                ]
                fresh_count += len(fresh)
                upsert(
                    db,
                    AnnotationFact.__table__,
                    [
                        {
                            "phoenix_annotation_id": f.annotation_id,
                            "phoenix_span_id": f.span_id,
                            "project": f.project,
                            "name": f.name,
                            "annotator_kind": f.annotator_kind,
                            "label": f.label,
                            "score": f.score,
                            "explanation": f.explanation,
                            "updated_at": f.updated_at,
                        }
                        for f in fresh
                    ],
                    key=["phoenix_annotation_id"],
                    update_columns=["label", "score", "explanation", "updated_at", "name"],
                )
                upsert(
                    db,
                    PromptEvaluation.__table__,
                    [
                        {
                            "prompt_id": f.prompt_id,
                            "phoenix_eval_id": f.annotation_id,
                            "created_at": now,
                        }
                        for f in batch
                        if f.prompt_id is not None
                    ],
                    key=["phoenix_eval_id"],
                )
        return fresh_count

    def clear(self) -> None:
        """Delete every link and fact in one transaction."""
        with self.sessions.begin() as db:
            for model in (PromptEvaluation, PromptTrace, AnnotationFact, SpanFact):
                db.execute(delete(model))
