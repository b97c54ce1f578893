"""Write the sync's facts: one narrow interface, on the facts store or on our SQL tables."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from db.models import AnnotationFact, PromptEvaluation, PromptTrace, SpanFact, utcnow
from services.span_facts import AnnotationFacts, SpanFacts, parse_time
from store.facts import FactStore, SpanAnnotationRow, SpanRow, TraceAnnotationRow
from store.sync_queries import (
    UNSYNCED_TRACE_ANNOTATIONS,
    HeldAnnotation,
    clear_facts,
    held_span_annotations,
    held_trace_annotations,
)

JSON = dict[str, Any]

# Rows per statement where a statement lists keys (IN ...): far below SQLite's 32,766 variables.
KEYS_PER_STATEMENT = 500
# What an annotation edit can change; Phoenix's updated_at has whole seconds, so the contents
# are compared to spot an edit.
ANNOTATION_CONTENTS = ("name", "label", "score", "explanation")


@dataclass(frozen=True)
class SpanRef:
    """A stored span as its annotations see it: the slicing facts they carry beside them."""

    span_id: str
    trace_id: str
    project: str
    start_time: datetime
    prompt_id: uuid.UUID | None
    template_hash: str | None
    prompt_version: str | None
    model: str | None
    status: str

    @classmethod
    def of(cls, facts: SpanFacts) -> SpanRef:
        """Take the reference of a span the sync has just mapped."""
        return cls(
            facts.span_id,
            facts.trace_id,
            facts.project,
            facts.start_time,
            facts.prompt_id,
            facts.template_hash,
            facts.prompt_version,
            facts.model,
            facts.status,
        )


@dataclass(frozen=True)
class TraceRef:
    """A trace whose annotations a batch holds all of, as the annotation watch read it."""

    trace_id: str
    start_time: datetime | None  # Phoenix's (the earliest start of its spans); None: not read
    synced: bool  # whether we store an LLM span of it


@dataclass(frozen=True)
class TraceAnnotationFacts:
    """Name, label and score of one trace annotation."""

    annotation_id: str
    trace_id: str
    project: str
    name: str
    annotator_kind: str
    label: str | None
    score: float | None
    updated_at: datetime


def trace_annotation_facts(project: str, annotation: JSON, now: datetime) -> TraceAnnotationFacts:
    """Map one Phoenix trace annotation (REST shape); `now` stands in for no time."""
    result = annotation.get("result") or {}
    updated = annotation.get("updated_at")
    return TraceAnnotationFacts(
        annotation_id=annotation["id"],
        trace_id=annotation["trace_id"],
        project=project,
        name=annotation["name"],
        annotator_kind=annotation.get("annotator_kind") or "",
        label=result.get("label"),
        score=result.get("score"),
        updated_at=parse_time(updated) if updated else now,
    )


@dataclass(frozen=True)
class AnnotationBatch:
    """Every annotation Phoenix held, when read_at it was asked, for some spans and traces.

    Complete for those spans, their traces and `traces` (which the annotation watch reads on
    their own): an annotation stored for one of them that is not here was deleted in Phoenix.
    """

    project: str
    read_at: datetime
    spans: Mapping[str, SpanRef]
    span_annotations: Sequence[AnnotationFacts]
    trace_annotations: Sequence[TraceAnnotationFacts] = field(default=())
    traces: Mapping[str, TraceRef] = field(default_factory=dict)


class FactWriter(Protocol):
    """Where the sync puts facts; each write is safe to repeat (a re-read page changes nothing)."""

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        """Store the facts of a page of LLM spans and link their traces to their prompts."""

    def write_annotations(self, batch: AnnotationBatch) -> int:
        """Store a batch's annotations and prompt links; return how many are new or changed."""

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
        # No key: skip a row that conflicts with any unique constraint.
        statement = statement.on_conflict_do_nothing(index_elements=list(key) or None)
    # One statement with the rows as parameters (executemany): SQLAlchemy compiles it once and
    # batches the rows, where a VALUES list of N rows compiled N x 15 bind parameters each time.
    session.execute(statement, list(rows))


class SqlFactWriter:
    """Write facts and prompt links into the dashboard's SQL tables, a few statements a batch.

    The app writes to the store (StoreFactWriter); this stays for the SQL fact tables of
    deployments from before it, until a migration drops them.
    """

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

    def write_annotations(self, batch: AnnotationBatch) -> int:
        """Upsert span annotation facts and link them to their span's prompt; count new or changed.

        The SQL tables keep neither trace annotations nor deletions (the store does).
        """
        # The last copy of an annotation wins, and PostgreSQL refuses one twice in a statement.
        latest = {f.annotation_id: f for f in batch.span_annotations}
        if not latest:
            return 0
        fresh_count = 0
        now = utcnow()
        ordered = list(latest.values())
        with self.sessions.begin() as db:
            for start in range(0, len(ordered), KEYS_PER_STATEMENT):
                chunk = ordered[start : start + KEYS_PER_STATEMENT]
                known = {
                    row[0]: tuple(row[1:])
                    for row in db.execute(
                        select(
                            AnnotationFact.phoenix_annotation_id,
                            *[getattr(AnnotationFact, c) for c in ANNOTATION_CONTENTS],
                        ).where(
                            AnnotationFact.phoenix_annotation_id.in_(
                                [f.annotation_id for f in chunk]
                            )
                        )
                    )
                }
                fresh = [
                    f
                    for f in chunk
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
                        for f in chunk
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


def _text(value: uuid.UUID | None) -> str | None:
    """Return a prompt row id as the store keeps it: its text, or NULL."""
    return None if value is None else str(value)


def _span_row(project: str, f: SpanFacts) -> SpanRow:
    """Map a span's facts to the store's row; unknown counts and costs stay NULL."""
    return SpanRow(
        span_id=f.span_id,
        trace_id=f.trace_id,
        project=project,
        prompt_id=_text(f.prompt_id),
        template_hash=f.template_hash,
        prompt_version=f.prompt_version,
        model=f.model,
        start_time=f.start_time,
        latency_ms=f.latency_ms,
        prompt_tokens=f.prompt_tokens,
        completion_tokens=f.completion_tokens,
        total_tokens=f.total_tokens,
        status=f.status,
        cost=f.cost,
    )


def _copied(span: SpanRef) -> tuple[Any, ...]:
    """Return the span facts an annotation row copies, in HeldAnnotation.copied's order."""
    return (
        span.start_time,
        _text(span.prompt_id),
        span.template_hash,
        span.prompt_version,
        span.model,
        span.status,
    )


def _same_instant(a: Any, b: Any) -> bool:
    """Compare copied facts, times as instants (the store returns them aware, in UTC)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.timestamp() == b.timestamp()
    return bool(a == b)


class StoreFactWriter:
    """Write facts into the facts store, and the prompt links into our SQL tables as before.

    The store keeps every version of a row and reads the newest (FINAL), so a re-read page or
    two replicas writing at once never count twice; annotations that Phoenix no longer holds
    for a span (or trace) that was re-read are written again as deleted. A trace annotation keeps
    its trace's start time in Phoenix: from the watch's reads, else from what the store holds of
    the trace, else none (NULL), which the annotation watch's next check asks Phoenix for.
    """

    def __init__(self, store: FactStore, sessions: sessionmaker[Session]) -> None:
        self.store = store
        self.sessions = sessions

    def write_spans(self, project: str, facts: Sequence[SpanFacts]) -> None:
        """Write the span facts of one page, then link their traces to their prompts."""
        if not facts:
            return
        self.store.write_spans(_span_row(project, f) for f in facts)
        now = utcnow()
        # A trace links to the prompt of its first prompted LLM span.
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
            upsert(db, PromptTrace.__table__, list(links.values()), key=["phoenix_trace_id"])

    def write_annotations(self, batch: AnnotationBatch) -> int:
        """Write what is new, changed or deleted among a batch's annotations; count it."""
        spans = batch.spans
        # The last copy of an annotation wins; one of a span we were not given cannot be sliced.
        latest = {f.annotation_id: f for f in batch.span_annotations if f.span_id in spans}
        fresh_spans, gone_spans = self._span_changes(batch, latest)
        trace_rows, unsynced_rows = self._trace_changes(batch)
        # Versioned by when Phoenix was asked: a replica that read it later wins either way.
        self.store.write_span_annotations(
            [
                *(self._span_row(f, spans[f.span_id], deleted=False) for f in fresh_spans),
                *(self._span_row(f, spans[f.span_id], deleted=True) for f in gone_spans),
            ],
            synced_at=batch.read_at,
        )
        self.store.write_trace_annotations(trace_rows, synced_at=batch.read_at)
        if unsynced_rows:
            self.store.write_unsynced_trace_annotations(unsynced_rows, synced_at=batch.read_at)
        self._link(latest.values(), [f.annotation_id for f in gone_spans])
        # The annotations of traces without our spans change no page, so they are not counted.
        return len(fresh_spans) + len(gone_spans) + len(trace_rows)

    def _span_changes(
        self, batch: AnnotationBatch, latest: Mapping[str, AnnotationFacts]
    ) -> tuple[list[AnnotationFacts], list[AnnotationFacts]]:
        """Return the span annotations that are new or changed, and those deleted in Phoenix."""
        if not batch.spans:
            return [], []
        starts = [span.start_time for span in batch.spans.values()]
        held = {
            h.annotation_id: h
            for h in held_span_annotations(
                self.store, batch.project, list(batch.spans), min(starts), max(starts)
            )
        }
        fresh = [
            f
            for f in latest.values()
            if not self._unchanged(held.get(f.annotation_id), f, batch.spans[f.span_id])
        ]
        gone = [
            AnnotationFacts(
                annotation_id=h.annotation_id,
                span_id=h.target_id,
                project=batch.project,
                name=h.name,
                annotator_kind=h.annotator_kind,
                label=h.label,
                score=h.score,
                explanation=None,
                updated_at=batch.read_at,
            )
            for h in held.values()
            if h.annotation_id not in latest and h.target_id in batch.spans
        ]
        return fresh, gone

    @staticmethod
    def _unchanged(held: HeldAnnotation | None, f: AnnotationFacts, span: SpanRef) -> bool:
        """Tell whether the store already holds this annotation as it is, on this span as it is."""
        if held is None:
            return False
        mine = (f.span_id, f.name, f.annotator_kind, f.label, f.score)
        theirs = (held.target_id, held.name, held.annotator_kind, held.label, held.score)
        return mine == theirs and all(
            _same_instant(a, b) for a, b in zip(_copied(span), held.copied, strict=True)
        )

    def _trace_changes(
        self, batch: AnnotationBatch
    ) -> tuple[list[TraceAnnotationRow], list[TraceAnnotationRow]]:
        """Return the new, changed and deleted trace annotation rows: ours, and the others'."""
        refs = {s.trace_id: TraceRef(s.trace_id, None, synced=True) for s in batch.spans.values()}
        refs.update(batch.traces)
        if not refs:
            return [], []
        latest = {f.annotation_id: f for f in batch.trace_annotations if f.trace_id in refs}
        ours = sorted(t for t, ref in refs.items() if ref.synced)
        rows = self._trace_rows(
            batch,
            refs,
            {a: f for a, f in latest.items() if refs[f.trace_id].synced},
            held_trace_annotations(self.store, batch.project, ours),
        )
        if not batch.traces:
            return rows, []
        # Only the watch reads traces on their own, and only it compares the other table: there
        # a trace that has become ours (its LLM spans came after its annotation) is deleted too.
        others = self._trace_rows(
            batch,
            refs,
            {a: f for a, f in latest.items() if not refs[f.trace_id].synced},
            held_trace_annotations(
                self.store, batch.project, sorted(refs), table=UNSYNCED_TRACE_ANNOTATIONS
            ),
        )
        return rows, others

    def _trace_rows(
        self,
        batch: AnnotationBatch,
        refs: Mapping[str, TraceRef],
        latest: Mapping[str, TraceAnnotationFacts],
        held_rows: Sequence[HeldAnnotation],
    ) -> list[TraceAnnotationRow]:
        """Return the rows one table needs: annotations new or changed, and held ones gone."""
        held = {h.annotation_id: h for h in held_rows}
        held_starts = {h.target_id: h.copied[0] for h in held_rows if h.copied[0] is not None}
        fresh = []
        for f in latest.values():
            h = held.get(f.annotation_id)
            read = refs[f.trace_id].start_time
            mine = (f.trace_id, f.name, f.annotator_kind, f.label, f.score)
            if (
                h is None
                or mine != (h.target_id, h.name, h.annotator_kind, h.label, h.score)
                # A start read now that the store lacks or has otherwise (a later, earlier span).
                or (read is not None and not _same_instant(read, h.copied[0]))
            ):
                fresh.append(f)
        rows = [
            self._trace_row(
                f, refs[f.trace_id].start_time or held_starts.get(f.trace_id), deleted=False
            )
            for f in fresh
        ]
        rows += [
            TraceAnnotationRow(
                annotation_id=h.annotation_id,
                trace_id=h.target_id,
                project=batch.project,
                name=h.name,
                annotator_kind=h.annotator_kind,
                label=h.label,
                score=h.score,
                updated_at=batch.read_at,
                is_deleted=True,
                trace_start_time=h.copied[0],
            )
            for h in held.values()
            if h.annotation_id not in latest
        ]
        return rows

    @staticmethod
    def _span_row(f: AnnotationFacts, span: SpanRef, *, deleted: bool) -> SpanAnnotationRow:
        """Map a span annotation to the store's row, with its span's slicing facts beside it."""
        return SpanAnnotationRow(
            annotation_id=f.annotation_id,
            span_id=f.span_id,
            trace_id=span.trace_id,
            project=span.project,
            name=f.name,
            annotator_kind=f.annotator_kind,
            label=f.label,
            score=f.score,
            updated_at=f.updated_at,
            is_deleted=deleted,
            span_start_time=span.start_time,
            prompt_id=_text(span.prompt_id),
            template_hash=span.template_hash,
            prompt_version=span.prompt_version,
            model=span.model,
            span_status=span.status,
        )

    @staticmethod
    def _trace_row(
        f: TraceAnnotationFacts, trace_start: datetime | None, *, deleted: bool
    ) -> TraceAnnotationRow:
        """Map a trace annotation to the store's row, with its trace's start time."""
        return TraceAnnotationRow(
            annotation_id=f.annotation_id,
            trace_id=f.trace_id,
            project=f.project,
            name=f.name,
            annotator_kind=f.annotator_kind,
            label=f.label,
            score=f.score,
            updated_at=f.updated_at,
            is_deleted=deleted,
            trace_start_time=trace_start,
        )

    def _link(self, annotations: Any, deleted: Sequence[str]) -> None:
        """Link annotations to their span's prompt, and unlink deleted ones."""
        now = utcnow()
        rows = [
            {"prompt_id": f.prompt_id, "phoenix_eval_id": f.annotation_id, "created_at": now}
            for f in annotations
            if f.prompt_id is not None
        ]
        if not rows and not deleted:
            return
        with self.sessions.begin() as db:
            for start in range(0, len(rows), KEYS_PER_STATEMENT):
                upsert(
                    db,
                    PromptEvaluation.__table__,
                    rows[start : start + KEYS_PER_STATEMENT],
                    key=["phoenix_eval_id"],
                )
            for start in range(0, len(deleted), KEYS_PER_STATEMENT):
                db.execute(
                    delete(PromptEvaluation).where(
                        PromptEvaluation.phoenix_eval_id.in_(
                            deleted[start : start + KEYS_PER_STATEMENT]
                        )
                    )
                )

    def clear(self) -> None:
        """Delete every fact in the store, and every link (and old SQL fact) in our database."""
        clear_facts(self.store)
        with self.sessions.begin() as db:
            # The SQL facts of a deployment from before the store go too: the store has them.
            for model in (PromptEvaluation, PromptTrace, AnnotationFact, SpanFact):
                db.execute(delete(model))
