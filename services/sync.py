"""Follow Phoenix incrementally: link spans to prompt versions and keep the facts charts need."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from openinference.semconv.trace import OpenInferenceSpanKindValues, SpanAttributes
from redis.exceptions import RedisError
from sqlalchemy import Table, delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    AnnotationFact,
    Prompt,
    PromptEvaluation,
    PromptTrace,
    SpanFact,
    SyncState,
    SyncStatus,
    utcnow,
)
from services.cache import REDIS_SOCKET_TIMEOUT_S, RedisOutage, redis_label
from services.phoenix import JSON, PhoenixClient, PhoenixError
from settings import Settings

log = logging.getLogger(__name__)
# Newest synced first, served by the synced_at index (which ends in the row id, in SQLite too).
NEWEST_SYNCED = (SpanFact.synced_at.desc(), SpanFact.id.desc())
LLM = OpenInferenceSpanKindValues.LLM.value
PROCESS_NAME = f"{socket.gethostname()}:{os.getpid()}"
UNVERSIONED = "unversioned"
# Annotations arrive after their spans: re-read them for spans synced this recently.
ANNOTATION_REFRESH = timedelta(hours=24)
# Spans this new are re-read on every tick (evaluations usually land within minutes)...
ANNOTATION_HOT = timedelta(minutes=10)
ANNOTATION_HOT_MAX_SPANS = 1000
# ...and older ones of the last day in turn, a slice a minute, so an idle tick's cost stays
# flat however much history there is (Phoenix's annotation lookups slow down as it grows).
ANNOTATION_SLICE_SPANS = 1000
ANNOTATION_SLICE_INTERVAL_S = 60.0
REGISTRY_MAX_AGE_S = 60.0


def record_failure(sessions: sessionmaker[Session], error: Exception) -> None:
    """Store why the sync failed and when, for the pages' stale warning."""
    with sessions.begin() as db:
        status = db.get(SyncStatus, 1) or SyncStatus(id=1, watermark=0)
        status.last_error = str(error)[:1000]
        status.last_error_at = utcnow()
        db.add(status)


def template_hash(template: str) -> str:
    """Identify a prompt template by the SHA-256 of its text."""
    return hashlib.sha256(template.encode("utf-8")).hexdigest()


def _aware(moment: datetime) -> datetime:
    """Read naive times as UTC: SQLite drops the zone that PostgreSQL keeps."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parse_time(value: str) -> datetime:
    return _aware(datetime.fromisoformat(value))


def _as_int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


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


@dataclass(frozen=True)
class RegistryEntry:
    """A Phoenix registry prompt version, found by its template hash."""

    prompt_name: str
    prompt_id: str
    version_label: str


@dataclass
class TickResult:
    """What one pass over Phoenix changed."""

    spans_read: int = 0
    llm_spans: int = 0
    annotations: int = 0
    projects: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Tell whether the tick wrote anything new."""
        return bool(self.spans_read or self.annotations)


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
    statement = _insert(session, table).values(list(rows))
    if update_columns:
        statement = statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: statement.excluded[column] for column in update_columns},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(key))
    session.execute(statement)


class PromptSync:
    """Read new spans per project in insertion order and record links and facts."""

    def __init__(
        self, phoenix: PhoenixClient, sessions: sessionmaker[Session], page_size: int = 1000
    ) -> None:
        self.phoenix = phoenix
        self.sessions = sessions
        self.page_size = page_size
        self._registry: dict[str, RegistryEntry] = {}
        self._registry_read_at = float("-inf")
        # Where the last slice of older spans ended, newest first: (synced_at, id).
        self._slice_after: tuple[datetime, int] | None = None
        self._slice_read_at = float("-inf")

    # Registry ---------------------------------------------------------------------------------

    def load_registry(self, max_age_s: float = REGISTRY_MAX_AGE_S) -> None:
        """Map template hashes to registry prompts, and record every registry version."""
        # The registry changes rarely; reading it on every 5 s tick costs 1 + N requests.
        if time.monotonic() - self._registry_read_at < max_age_s:
            return
        registry: dict[str, RegistryEntry] = {}
        texts: dict[str, str] = {}
        for prompt in self.phoenix.prompts():
            versions = self.phoenix.prompt_versions(prompt["id"])
            for index, version in enumerate(reversed(versions), start=1):
                text = registry_text(version.get("template") or {})
                if not text:
                    continue
                metadata = version.get("metadata") or {}
                label = str(metadata.get("version") or f"v{index}")
                registry[template_hash(text)] = RegistryEntry(prompt["name"], prompt["id"], label)
                texts[template_hash(text)] = text
        self._registry = registry
        self._registry_read_at = time.monotonic()
        # Registry prompts are prompts too, even before any span uses them.
        with self.sessions.begin() as db:
            for digest, entry in registry.items():
                self._prompt_id(db, texts[digest], entry.version_label)

    # One pass ---------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Read everything new in every project, then refresh recent annotations."""
        result = TickResult()
        try:
            self.load_registry()
            for project in self.phoenix.projects():
                name = project["name"]
                result.projects.append(name)
                self._follow_project(name, result)
            self._refresh_annotations(result)
        except Exception:
            # Pages committed before the failure are in our tables: pages must redraw and the
            # caches keyed by the watermark must not keep serving what came before them.
            if result.changed:
                self._bump_watermark()
            raise
        with self.sessions.begin() as db:
            status = db.get(SyncStatus, 1) or SyncStatus(id=1, watermark=0)
            if result.changed:
                status.watermark = (status.watermark or 0) + 1
            status.last_success_at = utcnow()
            status.synced_by = PROCESS_NAME
            status.last_error = None
            db.add(status)
        return result

    def record_failure(self, error: Exception) -> None:
        """Remember why the last tick failed, so pages can say since when data is stale."""
        record_failure(self.sessions, error)

    def _bump_watermark(self) -> None:
        """Tell pages that a failed tick still wrote data."""
        try:
            with self.sessions.begin() as db:
                status = db.get(SyncStatus, 1) or SyncStatus(id=1, watermark=0)
                status.watermark = (status.watermark or 0) + 1
                db.add(status)
        except SQLAlchemyError as exc:
            # The tick's own failure is the one to report; this one only delays a redraw.
            log.warning("could not move the watermark after a failed tick: %s", exc)

    def _follow_project(self, project: str, result: TickResult) -> None:
        """Page through a project's new spans; each page commits with its cursor."""
        with self.sessions() as db:
            state = db.get(SyncState, project)
            cursor = state.cursor if state else None
        while True:
            page = self.phoenix.span_page(project, cursor=cursor, limit=self.page_size)
            spans = page.spans
            # Phoenix's cursor includes its own row, which the last page already stored.
            if cursor and spans and spans[0]["id"] == cursor:
                spans = spans[1:]
            if not spans:
                return
            cursor = spans[-1]["id"]
            with self.sessions.begin() as db:
                result.llm_spans += self._store_spans(db, project, spans)
                state = db.get(SyncState, project) or SyncState(project=project, spans_read=0)
                state.cursor = cursor
                state.spans_read = (state.spans_read or 0) + len(spans)
                state.updated_at = utcnow()
                db.add(state)
            result.spans_read += len(spans)
            if not page.next_cursor:
                return

    def _prompt_id(self, db: Session, template: str, version: str | None) -> tuple[Any, str]:
        """Find or create the prompt row for a template and version; return its id and label."""
        digest = template_hash(template)
        entry = self._registry.get(digest)
        label = version or (entry.version_label if entry else None) or UNVERSIONED
        now = utcnow()
        prompt = db.scalar(
            select(Prompt).where(Prompt.template_hash == digest, Prompt.version == label)
        )
        if prompt is None:
            upsert(
                db,
                Prompt.__table__,
                [
                    {
                        "id": uuid.uuid4(),
                        "name": entry.prompt_name if entry else f"template-{digest[:8]}",
                        "version": label,
                        "template": template,
                        "template_hash": digest,
                        "phoenix_prompt_id": entry.prompt_id if entry else None,
                        "first_seen_at": now,
                        "last_seen_at": now,
                    }
                ],
                key=["template_hash", "version"],
            )
            prompt = db.scalar(
                select(Prompt).where(Prompt.template_hash == digest, Prompt.version == label)
            )
            assert prompt is not None
        else:
            prompt.last_seen_at = now
            if entry and not prompt.phoenix_prompt_id:
                prompt.phoenix_prompt_id = entry.prompt_id
                prompt.name = entry.prompt_name
        return prompt.id, label

    def _store_spans(self, db: Session, project: str, spans: Sequence[JSON]) -> int:
        """Record facts for the LLM spans of one page and link their traces to prompts."""
        facts: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        # Phoenix prices some models itself; REST has no cost, so ask GraphQL for this page.
        costs = self.phoenix.span_costs([s["id"] for s in spans if s.get("span_kind") == LLM])
        prompt_ids: dict[tuple[str, str | None], tuple[Any, str]] = {}
        for span in spans:
            if span.get("span_kind") != LLM:
                continue
            attributes = span.get("attributes") or {}
            template = attributes.get(SpanAttributes.LLM_PROMPT_TEMPLATE)
            version = attributes.get(SpanAttributes.LLM_PROMPT_TEMPLATE_VERSION)
            prompt_id, label = None, None
            if isinstance(template, str) and template:
                cache_key = (template, version)
                if cache_key not in prompt_ids:
                    prompt_ids[cache_key] = self._prompt_id(db, template, version)
                prompt_id, label = prompt_ids[cache_key]
            start = _parse_time(span["start_time"])
            end = _parse_time(span["end_time"]) if span.get("end_time") else start
            trace_id = span["context"]["trace_id"]
            facts.append(
                {
                    "phoenix_span_id": span["context"]["span_id"],
                    "phoenix_trace_id": trace_id,
                    "project": project,
                    "prompt_id": prompt_id,
                    "prompt_version": label,
                    "model": attributes.get(SpanAttributes.LLM_MODEL_NAME),
                    "start_time": start,
                    "latency_ms": (end - start).total_seconds() * 1000.0,
                    "prompt_tokens": _as_int(attributes.get(SpanAttributes.LLM_TOKEN_COUNT_PROMPT)),
                    "completion_tokens": _as_int(
                        attributes.get(SpanAttributes.LLM_TOKEN_COUNT_COMPLETION)
                    ),
                    "total_tokens": _as_int(attributes.get(SpanAttributes.LLM_TOKEN_COUNT_TOTAL)),
                    "status": span.get("status_code") or "UNSET",
                    "cost": costs.get(span["id"]),
                    "synced_at": utcnow(),
                }
            )
            if prompt_id is not None:
                links.append(
                    {
                        "prompt_id": prompt_id,
                        "phoenix_trace_id": trace_id,
                        "project": project,
                        "created_at": utcnow(),
                    }
                )
        upsert(db, SpanFact.__table__, facts, key=["phoenix_span_id"])
        upsert(db, PromptTrace.__table__, links, key=["phoenix_trace_id"])
        return len(facts)

    def _refresh_annotations(self, result: TickResult) -> None:
        """Re-read annotations of recently synced LLM spans and upsert them with their links."""
        now = utcnow()
        columns = (SpanFact.project, SpanFact.phoenix_span_id, SpanFact.prompt_id)
        # A slice Phoenix failed to answer is taken again next tick, not skipped for a round.
        slice_before = (self._slice_after, self._slice_read_at)
        with self.sessions() as db:
            hot = db.execute(
                select(*columns)
                .where(SpanFact.synced_at >= now - ANNOTATION_HOT)
                # By the indexed column first: ordered by id alone, SQLite walks every span
                # (15 ms at 50k) to find that none is hot; this way it reads only the hot ones.
                .order_by(*NEWEST_SYNCED)
                .limit(ANNOTATION_HOT_MAX_SPANS)
            ).all()
            due = time.monotonic() - self._slice_read_at >= ANNOTATION_SLICE_INTERVAL_S
            warm = self._next_slice(db, columns, now) if due else []
        rows = [*hot, *warm]
        by_project: dict[str, dict[str, Any]] = {}
        for project, span_id, prompt_id in rows:
            by_project.setdefault(project, {})[span_id] = prompt_id
        try:
            for project, prompts_by_span in by_project.items():
                annotations = list(self.phoenix.span_annotations(project, prompts_by_span))
                with self.sessions.begin() as db:
                    # Counted per commit, so a later project's failure still reports these.
                    result.annotations += self._store_annotations(
                        db, project, annotations, prompts_by_span
                    )
        except Exception:
            self._slice_after, self._slice_read_at = slice_before
            raise

    def _next_slice(self, db: Session, columns: tuple[Any, ...], now: datetime) -> list[Any]:
        """Take the next slice of the day's older spans; after the oldest, start over."""
        # A keyset, not an offset: spans ageing out of the hot window enter at the top, which
        # would push an offset back onto rows already read, and an offset rescans what it skips.
        older = [
            SpanFact.synced_at >= now - ANNOTATION_REFRESH,
            SpanFact.synced_at < now - ANNOTATION_HOT,
        ]
        if self._slice_after is not None:
            older.append(tuple_(SpanFact.synced_at, SpanFact.id) < tuple_(*self._slice_after))
        warm = db.execute(
            select(*columns, SpanFact.synced_at, SpanFact.id)
            .where(*older)
            .order_by(*NEWEST_SYNCED)
            .limit(ANNOTATION_SLICE_SPANS)
        ).all()
        self._slice_read_at = time.monotonic()
        full = len(warm) == ANNOTATION_SLICE_SPANS
        self._slice_after = (warm[-1].synced_at, warm[-1].id) if full else None
        return [row[: len(columns)] for row in warm]

    def _store_annotations(
        self,
        db: Session,
        project: str,
        annotations: Iterable[JSON],
        prompts_by_span: dict[str, Any],
    ) -> int:
        """Upsert annotation facts; count the ones that are new or changed."""
        rows = []
        for a in annotations:
            result = a.get("result") or {}
            rows.append(
                {
                    "phoenix_annotation_id": a["id"],
                    "phoenix_span_id": a["span_id"],
                    "project": project,
                    "name": a["name"],
                    "annotator_kind": a.get("annotator_kind") or "",
                    "label": result.get("label"),
                    "score": result.get("score"),
                    "explanation": result.get("explanation"),
                    "updated_at": _parse_time(a["updated_at"]) if a.get("updated_at") else utcnow(),
                }
            )
        if not rows:
            return 0
        # Phoenix's updated_at has whole seconds, so compare contents to spot an edit.
        compared = ("name", "label", "score", "explanation")
        known = {
            row.phoenix_annotation_id: tuple(getattr(row, c) for c in compared)
            for row in db.execute(
                select(
                    AnnotationFact.phoenix_annotation_id,
                    *[getattr(AnnotationFact, c) for c in compared],
                ).where(
                    AnnotationFact.phoenix_annotation_id.in_(
                        [r["phoenix_annotation_id"] for r in rows]
                    )
                )
            )
        }
        fresh = [
            r
            for r in rows
            if known.get(r["phoenix_annotation_id"]) != tuple(r[c] for c in compared)
        ]
        upsert(
            db,
            AnnotationFact.__table__,
            fresh,
            key=["phoenix_annotation_id"],
            update_columns=["label", "score", "explanation", "updated_at", "name"],
        )
        links = [
            {
                "prompt_id": prompts_by_span[r["phoenix_span_id"]],
                "phoenix_eval_id": r["phoenix_annotation_id"],
                "created_at": utcnow(),
            }
            for r in rows
            if prompts_by_span.get(r["phoenix_span_id"]) is not None
        ]
        upsert(db, PromptEvaluation.__table__, links, key=["phoenix_eval_id"])
        return len(fresh)

    def rebuild(self) -> TickResult:
        """Forget every link, fact and cursor, then read Phoenix again from the start."""
        with self.sessions.begin() as db:
            for model in (PromptEvaluation, PromptTrace, AnnotationFact, SpanFact, SyncState):
                db.execute(delete(model))
            db.execute(update(SyncStatus).values(watermark=SyncStatus.watermark + 1))
        self._registry_read_at = float("-inf")
        return self.tick()


# Locking and the worker ---------------------------------------------------------------------


class SyncLock:
    """Hold the right to sync for one deployment: in Redis when configured, else in-process.

    While Redis is down the process lock stands in, so each replica may sync on its own;
    the sync's upserts make that safe, only wasteful, until Redis answers again.
    """

    _process_lock = threading.Lock()

    def __init__(self, redis_url: str, name: str = "dashboard:sync-lock", ttl_s: int = 30):
        self._owned = False
        self._redis_lock: Any = None
        self.outage = RedisOutage(
            redis_label(redis_url) if redis_url else "-", "the sync lock is this process's own"
        )
        if redis_url:
            import redis

            client = redis.Redis.from_url(
                redis_url,
                socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
                socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            )
            self._redis_lock = client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)

    def acquire(self) -> bool:
        """Take the lock without waiting, or renew it if we hold it already."""
        if self._redis_lock is not None and self.outage.should_try():
            try:
                held = self._acquire_redis()
            except RedisError as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                self._release_process()
                return held
        if not self._owned:
            self._owned = self._process_lock.acquire(blocking=False)
        return self._owned

    def _acquire_redis(self) -> bool:
        if self._redis_lock.owned():
            self._redis_lock.reacquire()
            return True
        return bool(self._redis_lock.acquire(blocking=False))

    def _release_process(self) -> None:
        if self._owned:
            self._owned = False
            self._process_lock.release()

    def release(self) -> None:
        """Give the lock up if we hold it."""
        if self._redis_lock is not None:
            try:
                if self._redis_lock.owned():
                    self._redis_lock.release()
            except RedisError as exc:
                # Its expiry frees it anyway.
                log.info("could not release the Redis sync lock: %s", type(exc).__name__)
        self._release_process()


class SyncWorker:
    """Run ticks forever, backing off while Phoenix is unreachable."""

    def __init__(
        self, sync: PromptSync, lock: SyncLock, interval_s: float, max_backoff_s: float = 60
    ):
        self.sync = sync
        self.lock = lock
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.delays: list[float] = []  # the waits between ticks, for logs and tests

    def run_once(self) -> TickResult | None:
        """Tick if this process holds the deployment's lock."""
        if not self.lock.acquire():
            return None
        return self.sync.tick()

    def run(self) -> None:
        """Loop until stopped."""
        delay = self.interval_s
        while not self._stop.is_set():
            try:
                result = self.run_once()
                delay = self.interval_s
                if result and result.changed:
                    log.info(
                        "sync read %d spans, %d annotations", result.spans_read, result.annotations
                    )
            except PhoenixError as exc:
                self.sync.record_failure(exc)
                delay = self._backoff(delay)
                log.warning("sync failed, retrying in %.0f s: %s", delay, exc)
            except DBAPIError as exc:
                # A restarting database: each page commits with its cursor, so a cut
                # transaction rolls back both and the next tick re-reads that page.
                delay = self._backoff(delay)
                log.warning(
                    "sync failed on the database, retrying in %.0f s: %s",
                    delay,
                    str(exc.orig or exc).strip().splitlines()[0],
                )
            except Exception:  # keep the worker alive; the log has the traceback
                log.exception("sync tick crashed")
                delay = self._backoff(delay)
            self.delays.append(delay)
            self._stop.wait(delay)
        self.lock.release()

    def _backoff(self, delay: float) -> float:
        """Double the wait after a failure, between the interval and the cap."""
        return min(self.max_backoff_s, max(self.interval_s, delay * 2))

    def start(self) -> None:
        """Run in a daemon thread."""
        self.thread = threading.Thread(target=self.run, name="phoenix-sync", daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        """Ask the loop to end and wait for it."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout_s)


def lock_ttl(settings: Settings) -> int:
    """Hold the lock long enough to survive a slow tick, short enough for a quick takeover."""
    return max(10, 3 * settings.sync_interval_s)


def start_worker_on_first_request(server: Flask, sync: PromptSync, settings: Settings) -> None:
    """Start this process's sync worker when it serves its first request, never in CLI runs."""
    started = threading.Lock()
    workers: list[SyncWorker] = []

    def ensure_started() -> None:
        if workers:
            return
        with started:
            if not workers:
                worker = SyncWorker(
                    sync,
                    SyncLock(settings.redis_url, ttl_s=lock_ttl(settings)),
                    settings.sync_interval_s,
                )
                worker.start()
                workers.append(worker)
                server.extensions["sync_worker"] = worker

    server.before_request(ensure_started)
