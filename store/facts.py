"""Open the facts store and write facts into it: LLM spans and span and trace annotations."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

from store.transport import ChdbTransport, HttpTransport, StoreError, Transport
from store.url import StoreUrl, check_database_name, parse_store_url

TABLES = ("llm_spans", "span_annotations", "trace_annotations", "unsynced_trace_annotations")
# Every row's partition (its day) is a function of its key, so FINAL may settle each partition
# on its own, skipping those that are one merged part: the difference between 1.4 s and 0.07 s
# for count() FINAL over 10M spans.
STORE_SETTINGS: dict[str, str | int] = {"do_not_merge_across_partitions_select_final": 1}
# The fact tables that feed pre-aggregated slices (store/slices.py): the kind of slices, and the
# row field whose UTC day is the row's partition.
SLICED = {
    "llm_spans": ("spans", "start_time"),
    "span_annotations": ("annotations", "span_start_time"),
}


@dataclass(frozen=True)
class SpanRow:
    """The facts of one LLM span; None means unknown and is stored as NULL."""

    span_id: str
    trace_id: str
    project: str
    prompt_id: str | None
    template_hash: str | None
    prompt_version: str | None
    model: str | None
    start_time: datetime
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    status: str
    cost: float | None


@dataclass(frozen=True)
class SpanAnnotationRow:
    """One evaluation of an LLM span, with the span's slicing facts copied beside it.

    The copied facts (span_start_time to span_status) must be those of the span's SpanRow; when
    the sync re-links a span to another prompt it rewrites the span's annotations as well.
    """

    annotation_id: str
    span_id: str
    trace_id: str
    project: str
    name: str
    annotator_kind: str
    label: str | None
    score: float | None
    updated_at: datetime
    is_deleted: bool
    span_start_time: datetime
    prompt_id: str | None
    template_hash: str | None
    prompt_version: str | None
    model: str | None
    span_status: str


@dataclass(frozen=True)
class TraceAnnotationRow:
    """One evaluation of a whole trace, with the trace's start time in Phoenix (None: unknown).

    Phoenix summarises trace annotations over their traces' start times, so the start is kept
    for the annotation watch to compare with those summaries (services/annotation_watch.py).
    """

    annotation_id: str
    trace_id: str
    project: str
    name: str
    annotator_kind: str
    label: str | None
    score: float | None
    updated_at: datetime
    is_deleted: bool
    trace_start_time: datetime | None = None


def _columns(row_type: type) -> tuple[str, ...]:
    """Return a row type's field names, which are its table's columns."""
    return tuple(f.name for f in fields(row_type))


class FactStore:
    """The facts of one deployment: a transport bound to one database, and the writers."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._local = threading.local()  # per thread: how deep in releasing() blocks

    @property
    def database(self) -> str:
        """Return the ClickHouse database that holds the tables."""
        return self.transport.database

    def _write(
        self, table: str, row_type: type, rows: Iterable[Any], synced_at: datetime | None
    ) -> int:
        """Append rows with their synced_at version; duplicates collapse on read."""
        version = synced_at or datetime.now(UTC)
        names = _columns(row_type)
        # attrgetter, not dataclasses.astuple: astuple deep-copies every value (10x slower).
        values = attrgetter(*names)
        columns = (*names, "synced_at")
        sliced = SLICED.get(table)
        if sliced is None:
            return self.transport.insert(table, columns, ((*values(r), version) for r in rows))
        kind, day_of = sliced[0], attrgetter(sliced[1])
        days: set[date] = set()

        def tracked() -> Iterator[tuple[Any, ...]]:
            for row in rows:
                days.add(day_of(row).astimezone(UTC).date())
                yield (*values(row), version)

        try:
            return self.transport.insert(table, columns, tracked())
        finally:
            # After the rows, even when a later batch failed: a day whose slices were built
            # before this moment no longer stands for what the day holds. Today (by this
            # clock) is never built (slices.refresh builds up to the day before yesterday), and
            # a sync's writes are nearly all today's: those cost no statement more.
            today = datetime.now(UTC).date()
            self.mark_written(kind, {day for day in days if day < today})

    def mark_written(self, kind: str, days: Iterable[date]) -> None:
        """Record that facts of these UTC days were written now, by the store's own clock."""
        listed = sorted({day.isoformat() for day in days})
        if listed:
            self.transport.command(
                "INSERT INTO written_days (kind, day, written_at)"
                " SELECT {kind:String}, arrayJoin({days:Array(Date)}), now64(6, 'UTC')",
                {"kind": kind, "days": listed},
            )

    def write_spans(self, rows: Iterable[SpanRow], synced_at: datetime | None = None) -> int:
        """Write span facts; pass synced_at = when they were read from Phoenix (default now)."""
        return self._write("llm_spans", SpanRow, rows, synced_at)

    def write_span_annotations(
        self, rows: Iterable[SpanAnnotationRow], synced_at: datetime | None = None
    ) -> int:
        """Write span annotations, deleted ones with is_deleted=True so that they drop out."""
        return self._write("span_annotations", SpanAnnotationRow, rows, synced_at)

    def write_trace_annotations(
        self, rows: Iterable[TraceAnnotationRow], synced_at: datetime | None = None
    ) -> int:
        """Write trace annotations, deleted ones with is_deleted=True."""
        return self._write("trace_annotations", TraceAnnotationRow, rows, synced_at)

    def write_unsynced_trace_annotations(
        self, rows: Iterable[TraceAnnotationRow], synced_at: datetime | None = None
    ) -> int:
        """Write annotations of traces without LLM spans, which only the annotation watch reads."""
        return self._write("unsynced_trace_annotations", TraceAnnotationRow, rows, synced_at)

    @contextmanager
    def releasing(self) -> Iterator[None]:
        """Release the engine's freed memory when the outermost such block of a thread ends."""
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                self.transport.release_memory()

    def optimize(self) -> None:
        """Merge every table down to one row per key now (reads are right without it)."""
        for table in TABLES:
            self.transport.command(f"OPTIMIZE TABLE {table} FINAL")

    def settle(self, before: datetime | None = None) -> int:
        """Merge each day partition older than `before` (default: today, UTC) into one part.

        Reads stay right without this; it makes FINAL free on those days. Run it daily (the sync
        can): a closed day's partition is small, and one that is already one part is skipped.
        Returns how many partitions were merged.
        """
        cutoff = (before or datetime.now(UTC)).astimezone(UTC).date()
        parts = self.transport.query(
            """
            SELECT table, partition_id FROM system.parts
            WHERE database = currentDatabase() AND active AND table IN {tables:Array(String)}
            GROUP BY table, partition_id
            HAVING count() > 1
            """,
            {"tables": [t for t in TABLES if t != "trace_annotations"]},
        )
        merged = 0
        for table, partition_id in parts.rows:
            if not str(partition_id).isdigit() or len(str(partition_id)) != 8:
                continue
            day = datetime.strptime(str(partition_id), "%Y%m%d").date()
            if day < cutoff:
                # partition_id is eight digits, checked above; table comes from TABLES.
                self.transport.command(
                    f"OPTIMIZE TABLE {table} PARTITION ID '{partition_id}' FINAL"
                )
                merged += 1
        return merged

    def watermark(self) -> datetime | None:
        """Return the newest synced_at of any fact: it moves whenever new facts arrive."""
        result = self.transport.query(
            "SELECT greatest((SELECT max(synced_at) FROM llm_spans),"
            " (SELECT max(synced_at) FROM span_annotations),"
            " (SELECT max(synced_at) FROM trace_annotations)) AS mark"
        )
        mark = result.rows[0][0]
        return None if mark is None or mark.timestamp() <= 0 else mark

    def drop(self) -> None:
        """Delete the whole database (tests and benchmarks only)."""
        self.transport.command(f"DROP DATABASE IF EXISTS {check_database_name(self.database)}")

    def close(self) -> None:
        """Release the transport."""
        self.transport.close()

    def __enter__(self) -> FactStore:
        """Return the store for a with block."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close the store at the end of a with block."""
        self.close()


def open_store(
    url: str | StoreUrl,
    *,
    database: str | None = None,
    settings: Mapping[str, str | int] | None = None,
    migrate: bool = True,
) -> FactStore:
    """Open the store at a STORE_URL (optionally in another database) and migrate it."""
    parsed = parse_store_url(url) if isinstance(url, str) else url
    name = check_database_name(database or parsed.database)
    options = {**STORE_SETTINGS, **(settings or {})}
    transport: Transport
    if parsed.kind == "chdb":
        transport = ChdbTransport(parsed.path, name, options)
    elif parsed.kind == "http":
        transport = HttpTransport(replace(parsed, database=name), options)
    else:  # pragma: no cover - StoreUrl.kind is a Literal
        raise StoreError(f"unknown store kind {parsed.kind!r}")
    store = FactStore(transport)
    if migrate:
        from store.migrate import migrate as run_migrations

        try:
            run_migrations(store)
        except BaseException:
            store.close()
            raise
    return store
