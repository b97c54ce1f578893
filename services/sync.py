"""Follow Phoenix incrementally: read new spans per project in order and write their facts."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db.models import SyncState, SyncStatus, utcnow
from services.annotation_watch import AnnotationWatch, Range, trace_start_times
from services.fact_writer import (
    AnnotationBatch,
    FactWriter,
    SpanRef,
    StoreFactWriter,
    TraceRef,
    trace_annotation_facts,
    upsert,
)
from services.phoenix import (
    ANNOTATION_CHUNK,
    JSON,
    PAGE_LIMIT,
    PhoenixClient,
    SpanPage,
    SpanQuery,
)
from services.prompt_catalog import GroupSpec, PromptCatalog, registry_key
from services.span_facts import (
    LLM,
    RegistryVersion,
    annotation_facts,
    is_llm,
    parse_time,
    registry_versions,
    span_facts,
)
from store.annotation_summaries import traces_started
from store.facts import FactStore
from store.sync_queries import HeldSpan, recent_spans, synced_traces

log = logging.getLogger(__name__)
PROCESS_NAME = f"{socket.gethostname()}:{os.getpid()}"
# Annotations arrive after their spans: re-read them for spans synced this recently.
ANNOTATION_REFRESH = timedelta(hours=24)
# Spans this new are re-read on every tick (evaluations usually land within minutes)...
ANNOTATION_HOT = timedelta(minutes=10)
ANNOTATION_HOT_MAX_SPANS = 1000
# ...and older ones of the last day in turn, a slice a minute, so an idle tick's cost stays
# flat however much history there is (Phoenix's annotation lookups slow down as it grows).
ANNOTATION_SLICE_SPANS = 1000
ANNOTATION_SLICE_INTERVAL_S = 60.0
# The annotations of the spans a tick reads are read once that many spans wait, and at its end:
# a long catch-up holds few ids, and none of its spans waits for the slices to come round.
ANNOTATION_BATCH_SPANS = 10_000
REGISTRY_MAX_AGE_S = 60.0
# Only LLM spans have facts, so only they are paged: the other kinds never cross the wire.
# Phoenix finds them by scanning from the cursor, so the newest span of any kind is looked up
# this often and becomes the cursor once every LLM span before it is stored: an idle tick then
# scans at most this long a run of other spans, however long the history.
LLM_ONLY = SpanQuery(span_kinds=[LLM])
HORIZON_INTERVAL_S = 60.0


def sync_status(db: Session) -> SyncStatus:
    """Return the one status row, creating it if missing (two replicas may race to)."""
    upsert(db, SyncStatus.__table__, [{"id": 1, "watermark": 0}], key=["id"])
    return db.get_one(SyncStatus, 1)


def record_failure(sessions: sessionmaker[Session], error: Exception) -> None:
    """Store why the sync failed and when, for the pages' stale warning."""
    with sessions.begin() as db:
        status = sync_status(db)
        status.last_error = str(error)[:1000]
        status.last_error_at = utcnow()
        db.add(status)


@dataclass
class TickResult:
    """What one pass over Phoenix changed."""

    # Spans paged; only LLM spans are, so the two agree unless Phoenix ignores the kind filter.
    spans_read: int = 0
    llm_spans: int = 0
    annotations: int = 0
    projects: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """Tell whether the tick wrote anything new."""
        return bool(self.spans_read or self.annotations)


def _after(span_id: str, cursor: str | None) -> bool:
    """Tell whether a span id comes after a cursor in Phoenix's insertion order."""
    if cursor is None:
        return PhoenixClient.span_rowid(span_id) is not None
    rowid, cursor_rowid = PhoenixClient.span_rowid(span_id), PhoenixClient.span_rowid(cursor)
    return rowid is not None and cursor_rowid is not None and rowid > cursor_rowid


def _span_ref(held: HeldSpan) -> SpanRef:
    """Turn a span read back from the store into what its annotations copy."""
    return SpanRef(
        held.span_id,
        held.trace_id,
        held.project,
        held.start_time,
        uuid.UUID(held.prompt_id) if held.prompt_id else None,
        held.template_hash,
        held.prompt_version,
        held.model,
        held.status,
    )


class PendingAnnotations:
    """Spans whose annotations are still to read, by project, with what each span's copy."""

    def __init__(self) -> None:
        self.by_project: dict[str, dict[str, SpanRef]] = {}
        self.count = 0

    def add(self, span: SpanRef) -> None:
        """Queue one span (again: a span queued twice is read once)."""
        spans = self.by_project.setdefault(span.project, {})
        if span.span_id not in spans:
            self.count += 1
        spans[span.span_id] = span

    def take(self) -> dict[str, dict[str, SpanRef]]:
        """Return what is queued and start empty."""
        taken, self.by_project, self.count = self.by_project, {}, 0
        return taken


class PromptSync:
    """Read new spans per project in insertion order and write their facts and links."""

    def __init__(
        self,
        phoenix: PhoenixClient,
        sessions: sessionmaker[Session],
        store: FactStore,
        page_size: int = PAGE_LIMIT,
        writer: FactWriter | None = None,
        name_attribute: str | None = None,
    ) -> None:
        self.phoenix = phoenix
        self.sessions = sessions
        self.store = store
        self.page_size = page_size
        # Every fact goes through this one writer; cursors, prompts and status stay in SQL.
        self.writer: FactWriter = writer or StoreFactWriter(store, sessions)
        self.prompts = PromptCatalog(sessions, name_attribute)
        self._registry_read_at = float("-inf")
        # Where the last slice of older spans ended, newest first: (synced_at, span id).
        self._slice_after: tuple[datetime, str] | None = None
        self._slice_read_at = float("-inf")
        self._horizon_read_at: dict[str, float] = {}
        # Annotations of older spans, found by comparing summaries with Phoenix's.
        self.watch = AnnotationWatch(phoenix, store)

    # Registry ---------------------------------------------------------------------------------

    def load_registry(self, max_age_s: float = REGISTRY_MAX_AGE_S) -> None:
        """Map template hashes to registry prompts, and record every registry version."""
        # The registry changes rarely; reading it on every 5 s tick costs 1 + N requests.
        if time.monotonic() - self._registry_read_at < max_age_s:
            return
        registry: dict[str, RegistryVersion] = {}
        for prompt in self.phoenix.prompts():
            for version in registry_versions(prompt, self.phoenix.prompt_versions(prompt["id"])):
                registry[version.template_hash] = version
        self.prompts.registry = registry
        self._registry_read_at = time.monotonic()
        # Registry prompts are prompts too, even before any span uses them.
        self.prompts.ensure(
            {
                (v.template_hash, v.version_label, registry_key(v.prompt_id)): GroupSpec(
                    v.template, "registry", v.prompt_name, None, v.prompt_id
                )
                for v in registry.values()
            }
        )
        self.prompts.adopt_registry()

    # One pass ---------------------------------------------------------------------------------

    def tick(self) -> TickResult:
        """Read everything new in every project, then refresh recent annotations."""
        result = TickResult()
        started = utcnow()
        pending = PendingAnnotations()
        self.prompts.forget()
        # Requests for what comes next go to Phoenix from this thread while ours writes what
        # came before, so Phoenix seldom waits for our database.
        fetcher = ThreadPoolExecutor(1, "phoenix-fetch")
        try:
            self.load_registry()
            projects = self.phoenix.projects()
            for project in projects:
                result.projects.append(project["name"])
                self._follow_project(project, result, pending, fetcher)
            self._refresh_annotations(result, pending, started, fetcher, projects)
        except Exception:
            # Pages committed before the failure are in our tables: pages must redraw and the
            # caches keyed by the watermark must not keep serving what came before them.
            if result.changed:
                self._bump_watermark()
            raise
        finally:
            # A failed tick does not wait for a request whose answer it will not use.
            fetcher.shutdown(wait=False, cancel_futures=True)
        with self.sessions.begin() as db:
            status = sync_status(db)
            if result.changed:
                status.watermark = (status.watermark or 0) + 1
            status.last_success_at = utcnow()
            status.synced_by = PROCESS_NAME
            status.last_error = None
            db.add(status)
            self.prompts.touch(db)
        return result

    def record_failure(self, error: Exception) -> None:
        """Remember why the last tick failed, so pages can say since when data is stale."""
        record_failure(self.sessions, error)

    def _bump_watermark(self) -> None:
        """Tell pages that a failed tick still wrote data."""
        try:
            with self.sessions.begin() as db:
                status = sync_status(db)
                status.watermark = (status.watermark or 0) + 1
                db.add(status)
        except SQLAlchemyError as exc:
            # The tick's own failure is the one to report; this one only delays a redraw.
            log.warning("could not move the watermark after a failed tick: %s", exc)

    def _follow_project(
        self,
        project: JSON,
        result: TickResult,
        pending: PendingAnnotations,
        fetcher: ThreadPoolExecutor,
    ) -> None:
        """Page through a project's new LLM spans, writing each page's facts, then its cursor."""
        name = project["name"]
        with self.sessions() as db:
            state = db.get(SyncState, name)
            stored = state.cursor if state else None
        # Looked up before the pages, so every LLM span up to it is among them.
        horizon = self._horizon(name)
        fetched = self._fetch_page(project, stored, stored)
        while True:
            page, spans, costs = fetched
            # The next page and its costs are fetched while this one is written.
            upcoming = (
                fetcher.submit(self._fetch_page, project, page.next_cursor, None)
                if page.next_cursor
                else None
            )
            if spans:
                facts = self.prompts.link(
                    [
                        span_facts(name, span, costs.get(span["id"]), self.prompts.name_attribute)
                        for span in spans
                    ]
                )
                # Facts first, then the cursor: a failure between the two re-reads the page,
                # whose writes skip what is stored; the order another store needs too.
                self.writer.write_spans(name, facts)
                stored = spans[-1]["id"]
                self._save_cursor(name, stored, len(spans))
                result.spans_read += len(spans)
                result.llm_spans += len(facts)
                for fact in facts:
                    pending.add(SpanRef.of(fact))
                if pending.count >= ANNOTATION_BATCH_SPANS:
                    self._read_annotations(pending.take(), result, fetcher)
            if upcoming is None:
                break
            fetched = upcoming.result()
        if horizon is not None and horizon != stored and _after(horizon, stored):
            self._save_cursor(name, horizon, 0)

    def _fetch_page(
        self, project: JSON, cursor: str | None, stored: str | None
    ) -> tuple[SpanPage, list[JSON], dict[str, float | None]]:
        """Fetch the page of LLM spans at a cursor, without the one stored, and their costs."""
        page = self.phoenix.span_page(
            project["name"], LLM_ONLY, cursor=cursor, limit=self.page_size
        )
        spans = page.spans
        # Phoenix's cursor includes its own row, which the last page already stored.
        if stored and spans and spans[0]["id"] == stored:
            spans = spans[1:]
        # A Phoenix without the span kind filter sends every kind; only LLM spans have facts.
        llm = [span for span in spans if is_llm(span)]
        # Phoenix prices some models itself; REST has no cost, so ask GraphQL, once a page.
        costs = (
            self.phoenix.llm_span_costs(project["id"], [span["id"] for span in llm]) if llm else {}
        )
        return page, llm, costs

    def _horizon(self, project: str) -> str | None:
        """Return the id of the project's newest span, when it is time to look it up again."""
        read_at = self._horizon_read_at.get(project, float("-inf"))
        if time.monotonic() - read_at < HORIZON_INTERVAL_S:
            return None
        newest = self.phoenix.span_page(project, limit=1, order="desc").spans
        self._horizon_read_at[project] = time.monotonic()
        return str(newest[0]["id"]) if newest else None

    def _save_cursor(self, project: str, cursor: str, spans_read: int) -> None:
        """Record how far a project is read."""
        with self.sessions.begin() as db:
            # Created by an upsert: another replica may create the project's row meanwhile (its
            # cursor and ours may then leap-frog; a page read twice collapses in the store).
            upsert(
                db,
                SyncState.__table__,
                [{"project": project, "spans_read": 0, "updated_at": utcnow()}],
                key=["project"],
            )
            state = db.get_one(SyncState, project)
            state.cursor = cursor
            state.spans_read = (state.spans_read or 0) + spans_read
            state.updated_at = utcnow()
            db.add(state)

    def _refresh_annotations(
        self,
        result: TickResult,
        pending: PendingAnnotations,
        tick_started: datetime,
        fetcher: ThreadPoolExecutor,
        projects: Sequence[JSON] = (),
    ) -> None:
        """Read the annotations of this tick's spans, recent ones, and any whose summary moved.

        Any, that is, of spans or traces: traces whose summaries moved are read on their own.
        """
        now = utcnow()
        # A slice Phoenix failed to answer is taken again next tick, not skipped for a round.
        slice_before = (self._slice_after, self._slice_read_at)
        # Spans this tick wrote are pending already; hot are those of the ticks before.
        hot = recent_spans(self.store, now - ANNOTATION_HOT, tick_started, ANNOTATION_HOT_MAX_SPANS)
        due = time.monotonic() - self._slice_read_at >= ANNOTATION_SLICE_INTERVAL_S
        warm = self._next_slice(now) if due else []
        watched = self.watch.due()
        # After this tick's spans are stored, so they are not mistaken for missing ones.
        changed = [s for p in projects for s in self.watch.changed_spans(p)] if watched else []
        traces = [(p, self.watch.changed_traces(p)) for p in projects] if watched else []
        for span in [*hot, *warm, *changed]:
            pending.add(_span_ref(span))
        try:
            self._read_annotations(pending.take(), result, fetcher)
        except Exception:
            self._slice_after, self._slice_read_at = slice_before
            raise
        # After the spans' reads, which write trace annotations without their traces' starts.
        for project, leaves in traces:
            self._read_traces(project, leaves, result)
        # Only once read: a check that failed is made again next tick.
        if watched:
            self.watch.checked()

    def _read_annotations(
        self,
        by_project: Mapping[str, Mapping[str, SpanRef]],
        result: TickResult,
        fetcher: ThreadPoolExecutor,
    ) -> None:
        """Read the annotations of these spans and their traces, and write them, a chunk a time."""
        chunks: list[tuple[str, list[str]]] = []
        for project, spans in by_project.items():
            ids = list(spans)
            chunks += [
                (project, ids[start : start + ANNOTATION_CHUNK])
                for start in range(0, len(ids), ANNOTATION_CHUNK)
            ]
        upcoming: Future[AnnotationBatch] | None = None
        for index, (project, span_ids) in enumerate(chunks):
            spans = {span_id: by_project[project][span_id] for span_id in span_ids}
            batch = upcoming.result() if upcoming else self._fetch_annotations(project, spans)
            # The next request's answer is on its way while this one's is written.
            if index + 1 < len(chunks):
                following, ids = chunks[index + 1]
                upcoming = fetcher.submit(
                    self._fetch_annotations,
                    following,
                    {span_id: by_project[following][span_id] for span_id in ids},
                )
            else:
                upcoming = None
            # Counted per write, so a later request's failure still reports these.
            result.annotations += self.writer.write_annotations(batch)

    def _fetch_annotations(self, project: str, spans: Mapping[str, SpanRef]) -> AnnotationBatch:
        """Fetch every annotation of up to one request's worth of spans, and of their traces."""
        read_at = utcnow()
        annotations = list(self.phoenix.span_annotations(project, list(spans)))
        traces = sorted({span.trace_id for span in spans.values()})
        trace_annotations = list(self.phoenix.trace_annotations(project, traces))
        return AnnotationBatch(
            project=project,
            read_at=read_at,
            spans=spans,
            span_annotations=[
                annotation_facts(project, a, spans[a["span_id"]].prompt_id, read_at)
                for a in annotations
                if a.get("span_id") in spans
            ],
            trace_annotations=[
                trace_annotation_facts(project, a, read_at) for a in trace_annotations
            ],
        )

    def _read_traces(self, project_node: JSON, leaves: Sequence[Range], result: TickResult) -> None:
        """Read again all annotations of every trace started in these ranges, and write them."""
        if not leaves:
            return
        project = project_node["name"]
        starts: dict[str, datetime] = {}
        ends: dict[str, datetime] = {}
        held: set[str] = set()
        for leaf in leaves:
            # Phoenix's traces there: the ones its summaries counted.
            for trace in self.phoenix.traces(
                project, start=leaf.start, end=leaf.end, limit=PAGE_LIMIT
            ):
                starts[trace["trace_id"]] = parse_time(trace["start_time"])
                ends[trace["trace_id"]] = parse_time(trace["end_time"])
            held |= traces_started(self.store, project, leaf.start, leaf.end)
        # Held there but not listed: deleted in Phoenix, or started earlier since.
        if moved := sorted(held - starts.keys()):
            starts |= trace_start_times(self.phoenix, project_node["id"], moved)
        # By start, so that each chunk's spans lie in a short stretch of the store.
        ids = sorted(starts, key=lambda t: (starts[t], t)) + sorted(held - starts.keys())
        for first in range(0, len(ids), ANNOTATION_CHUNK):
            chunk = ids[first : first + ANNOTATION_CHUNK]
            known = [starts[t] for t in chunk if t in starts]
            known_ends = [ends[t] for t in chunk if t in ends]
            ours = synced_traces(
                self.store,
                project,
                chunk,
                min(known) if len(known) == len(chunk) else None,
                max(known_ends) if len(known_ends) == len(chunk) else None,
            )
            read_at = utcnow()
            annotations = list(self.phoenix.trace_annotations(project, chunk))
            batch = AnnotationBatch(
                project=project,
                read_at=read_at,
                spans={},
                span_annotations=[],
                trace_annotations=[
                    trace_annotation_facts(project, a, read_at) for a in annotations
                ],
                traces={t: TraceRef(t, starts.get(t), t in ours) for t in chunk},
            )
            result.annotations += self.writer.write_annotations(batch)

    def _next_slice(self, now: datetime) -> list[HeldSpan]:
        """Take the next slice of the day's older spans; after the oldest, start over."""
        # A keyset, not an offset: spans ageing out of the hot window enter at the top, which
        # would push an offset back onto rows already read, and an offset rescans what it skips.
        warm = recent_spans(
            self.store,
            now - ANNOTATION_REFRESH,
            now - ANNOTATION_HOT,
            ANNOTATION_SLICE_SPANS,
            after=self._slice_after,
        )
        self._slice_read_at = time.monotonic()
        full = len(warm) == ANNOTATION_SLICE_SPANS
        self._slice_after = (warm[-1].synced_at, warm[-1].span_id) if full else None
        return warm

    def rebuild(self) -> TickResult:
        """Forget every link, fact and cursor, then read Phoenix again from the start."""
        # Cursors first: a failure before the facts are gone re-reads them all, harmlessly.
        with self.sessions.begin() as db:
            db.execute(delete(SyncState))
        self.writer.clear()
        with self.sessions.begin() as db:
            db.execute(update(SyncStatus).values(watermark=SyncStatus.watermark + 1))
        self._registry_read_at = float("-inf")
        self._horizon_read_at.clear()
        # This tick reads every span's annotations, and their traces': comparing summaries with
        # a store still filling would only find the whole history different. Next interval.
        self.watch.checked()
        return self.tick()
