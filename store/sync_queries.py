"""The small reads and resets the sync needs from the store: recent spans, held annotations.

Like every reader, these read with FINAL (a fact written twice reads once) and skip deleted
annotations. Spans are found by when they were synced, span annotations by their spans' start
times (the annotations table's sort key), so each read scans little however large the store
grows; trace annotations, far fewer, by project and trace id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from store import slices
from store.facts import TABLES, FactStore, TraceAnnotationRow

SPAN_REF_COLUMNS = (
    "span_id",
    "trace_id",
    "project",
    "start_time",
    "prompt_id",
    "template_hash",
    "prompt_version",
    "model",
    "status",
    "synced_at",
)


@dataclass(frozen=True)
class HeldSpan:
    """A stored span's identity and the slicing facts its annotations copy."""

    span_id: str
    trace_id: str
    project: str
    start_time: datetime
    prompt_id: str | None
    template_hash: str | None
    prompt_version: str | None
    model: str | None
    status: str
    synced_at: datetime


@dataclass(frozen=True)
class HeldAnnotation:
    """What the store holds of one live annotation: enough to spot an edit or a re-link."""

    annotation_id: str
    target_id: str  # the span id, or the trace id of a trace annotation
    name: str
    annotator_kind: str
    label: str | None
    score: float | None
    # The span facts a span annotation copies; (trace start,) for a trace annotation.
    copied: tuple[Any, ...]


def _head(row: tuple[Any, ...]) -> tuple[str, str, str, str, str | None, float | None]:
    """Return the first six columns of an annotation row: id, target, name, kind, label, score."""
    return row[0], row[1], row[2], row[3], row[4], row[5]


def recent_spans(
    store: FactStore,
    synced_from: datetime,
    synced_before: datetime,
    limit: int,
    after: tuple[datetime, str] | None = None,
) -> list[HeldSpan]:
    """Return spans synced in [from, before), newest synced first, past a (synced_at, id) key."""
    clauses = [
        "synced_at >= {synced_from:DateTime64(6, 'UTC')}",
        "synced_at < {synced_before:DateTime64(6, 'UTC')}",
    ]
    params: dict[str, Any] = {
        "synced_from": synced_from,
        "synced_before": synced_before,
        "limit": limit,
    }
    if after is not None:
        clauses.append(
            "(synced_at, span_id) < ({after_at:DateTime64(6, 'UTC')}, {after_id:String})"
        )
        params["after_at"], params["after_id"] = after
    result = store.transport.query(
        f"SELECT {', '.join(SPAN_REF_COLUMNS)} FROM llm_spans FINAL"  # noqa: S608 - fixed text
        f" WHERE {' AND '.join(clauses)}"
        " ORDER BY synced_at DESC, span_id DESC LIMIT {limit:UInt32}",
        params,
    )
    return [HeldSpan(*row) for row in result.rows]


def held_span_annotations(
    store: FactStore,
    project: str,
    span_ids: Sequence[str],
    first_start: datetime,
    last_start: datetime,
) -> list[HeldAnnotation]:
    """Return the live annotations held for these spans, which started in [first, last]."""
    if not span_ids:
        return []
    result = store.transport.query(
        """
        SELECT annotation_id, span_id, name, annotator_kind, label, score,
               span_start_time, prompt_id, template_hash, prompt_version, model, span_status
        FROM span_annotations FINAL
        WHERE project = {project:String}
          AND span_start_time >= {first:DateTime64(6, 'UTC')}
          AND span_start_time <= {last:DateTime64(6, 'UTC')}
          AND span_id IN {span_ids:Array(String)}
          AND is_deleted = 0
        """,
        {"project": project, "first": first_start, "last": last_start, "span_ids": list(span_ids)},
    )
    return [HeldAnnotation(*_head(row), tuple(row[6:])) for row in result.rows]


# Trace annotations: of traces we hold LLM spans of, and of the others (which only the watch reads).
TRACE_ANNOTATIONS = "trace_annotations"
UNSYNCED_TRACE_ANNOTATIONS = "unsynced_trace_annotations"
_TRACE_TABLES = frozenset({TRACE_ANNOTATIONS, UNSYNCED_TRACE_ANNOTATIONS})


def held_trace_annotations(
    store: FactStore, project: str, trace_ids: Sequence[str], table: str = TRACE_ANNOTATIONS
) -> list[HeldAnnotation]:
    """Return the live annotations held for these traces, each with its trace's start time."""
    if not trace_ids:
        return []
    if table not in _TRACE_TABLES:
        raise ValueError(f"not a trace annotation table: {table!r}")
    result = store.transport.query(
        f"""
        SELECT annotation_id, trace_id, name, annotator_kind, label, score, trace_start_time
        FROM {table} FINAL
        WHERE project = {{project:String}} AND trace_id IN {{trace_ids:Array(String)}}
          AND is_deleted = 0
        """,  # noqa: S608 - the table is one of two fixed names, checked above
        {"project": project, "trace_ids": list(trace_ids)},
    )
    return [HeldAnnotation(*_head(row), (row[6],)) for row in result.rows]


def undated_trace_annotations(
    store: FactStore, project: str, table: str, limit: int
) -> list[TraceAnnotationRow]:
    """Return up to `limit` live scored or labelled trace annotations whose trace start is NULL."""
    if table not in _TRACE_TABLES:
        raise ValueError(f"not a trace annotation table: {table!r}")
    result = store.transport.query(
        f"""
        SELECT annotation_id, trace_id, project, name, annotator_kind, label, score, updated_at
        FROM {table} FINAL
        WHERE project = {{project:String}} AND is_deleted = 0 AND trace_start_time IS NULL
          AND (score IS NOT NULL OR label IS NOT NULL)
        LIMIT {{limit:UInt32}}
        """,  # noqa: S608 - the table is one of two fixed names, checked above
        {"project": project, "limit": limit},
    )
    return [
        TraceAnnotationRow(
            annotation_id=row[0],
            trace_id=row[1],
            project=row[2],
            name=row[3],
            annotator_kind=row[4],
            label=row[5],
            score=row[6],
            updated_at=row[7],
            is_deleted=False,
        )
        for row in result.rows
    ]


def synced_traces(
    store: FactStore,
    project: str,
    trace_ids: Sequence[str],
    first_start: datetime | None,
    last_end: datetime | None,
) -> set[str]:
    """Return which of these traces hold LLM spans we store, all started in [first, last]."""
    if not trace_ids:
        return set()
    # A span starts within its trace, so known trace bounds keep the scan to their days.
    clauses = ["project = {project:String}", "trace_id IN {trace_ids:Array(String)}"]
    params: dict[str, Any] = {"project": project, "trace_ids": list(trace_ids)}
    if first_start is not None:
        clauses.append("start_time >= {first:DateTime64(6, 'UTC')}")
        params["first"] = first_start
    if last_end is not None:
        clauses.append("start_time <= {last:DateTime64(6, 'UTC')}")
        params["last"] = last_end
    result = store.transport.query(
        f"SELECT DISTINCT trace_id FROM llm_spans WHERE {' AND '.join(clauses)}",  # noqa: S608
        params,
    )
    return {row[0] for row in result.rows}


def clear_facts(store: FactStore) -> None:
    """Delete every fact (a rebuild reads them all from Phoenix again), slices first."""
    slices.clear(store)
    for table in TABLES:
        store.transport.command(f"TRUNCATE TABLE IF EXISTS {table}")
