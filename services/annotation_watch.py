"""Find the spans and traces, of any age, whose annotations changed in Phoenix since we read them.

Phoenix cannot list annotations by time, but it summarises them per name over a start-time
range: `Project.spanAnnotationSummary` over spans' start times, `Project.traceAnnotationSummary`
over traces' start times (`Trace.start_time`, the earliest start of any span of the trace: see
`_get_stmt` in phoenix/server/api/dataloaders/annotation_summaries.py, which takes no span filter
for traces, so it counts every trace of the project, LLM spans or not). Once a minute per project
the watch compares Phoenix's summaries over the whole start-time range of what we hold with the
same summaries of our store; a range that differs is halved until each part holds few spans
(ours) or traces (Phoenix's `traceCount`, asked beside each range's summaries). Those spans'
annotations are then read again, and so are those of every trace that started in those ranges
(listed by Phoenix's REST traces, which filter the same start time, [start, end)).

So that our trace summaries count what Phoenix's count, the store keeps Phoenix's trace start
beside each trace annotation, and keeps the annotations of traces without LLM spans too, in a
table of their own that no page reads. The spans' reads write a trace annotation with no start
when the store knows none for its trace; the next check asks Phoenix for it before comparing.
An idle check is two GraphQL requests for spans and two for traces, a project.

Phoenix caches these summaries for an hour per (project, name, kind, range, filter). An insert
or edit invalidates its project, name and kind (phoenix/server/dml_event_handler.py), but a
delete does not: its handler finds the project by joining the annotation rows it has just
deleted, finds none, and clears nothing. So each check moves its range's start back by a
different sub-second amount (before our first span, or before Phoenix's first trace and ours, so
it counts the same spans or traces) and Phoenix never answers it from its cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from services.phoenix import JSON, PhoenixClient
from services.span_facts import parse_time
from store.annotation_summaries import (
    EMPTY,
    NameSummary,
    count_spans_started,
    span_annotation_summaries,
    span_start_bounds,
    spans_started,
    trace_annotation_summaries,
)
from store.facts import FactStore
from store.sync_queries import (
    TRACE_ANNOTATIONS,
    UNSYNCED_TRACE_ANNOTATIONS,
    HeldSpan,
    undated_trace_annotations,
)

CHECK_INTERVAL_S = 60.0
# We hold only LLM spans, so Phoenix summarises only those.
LLM_FILTER = "span_kind == 'LLM'"
# Phoenix refuses a document with more aliases than this.
MAX_ALIASES = 50
# A differing range is re-read whole once it holds this few of our spans (or is this narrow).
LEAF_SPANS = 1000
LEAF_WIDTH = timedelta(seconds=1)
# A differing trace range is re-read whole (one page of Phoenix's traces) once it holds this few.
LEAF_TRACES = 1000
# At most this many trace ranges are re-read a check, newest first, and the rest at the next:
# a store whose every trace start is unknown (as after migration 3) heals over a few checks
# instead of holding up one tick for all of its history.
MAX_TRACE_LEAVES = 16
# Trace annotations the spans' reads wrote without their trace's start get it from Phoenix at
# the next check, this many a check (one GraphQL request per MAX_ALIASES traces).
MAX_DATED = 1000
# Ranges end past the newest span: Phoenix's end is exclusive.
_PAST = timedelta(microseconds=1)

NAMES_QUERY = """
query AnnotationNames($id: ID!) {
  node(id: $id) { ... on Project { spanAnnotationNames } }
}
"""
# startTime: the first trace start, floored to the minute; endTime: the last one plus a minute,
# floored (phoenix/datetime_utils.py right_open_time_range): together they cover every trace.
TRACE_NAMES_QUERY = """
query TraceAnnotationNames($id: ID!) {
  node(id: $id) { ... on Project { traceAnnotationNames startTime endTime } }
}
"""


@dataclass(frozen=True)
class Range:
    """A span or trace start-time range [start, end) and the annotation names to compare over it."""

    start: datetime
    end: datetime
    names: tuple[str, ...]

    def halves(self) -> list[Range]:
        """Split the range in two at its middle."""
        middle = self.start + (self.end - self.start) / 2
        return [Range(self.start, middle, self.names), Range(middle, self.end, self.names)]


@dataclass(frozen=True)
class _Kind:
    """What differs between comparing span and trace annotations."""

    # Phoenix's summary field and its extra arguments.
    summary: str
    arguments: str
    # Asked beside each range's summaries: how many of Phoenix's entities it holds.
    count: str | None
    # Our summaries over a range.
    ours: Callable[[Range], dict[str, NameSummary]]
    # Whether a differing range is small enough to re-read whole, given Phoenix's count.
    small: Callable[[Range, int | None], bool]


def _time_range(part: Range) -> str:
    """Write a range as a GraphQL TimeRange literal."""
    return (
        f"timeRange: {{start: {json.dumps(part.start.isoformat())},"
        f" end: {json.dumps(part.end.isoformat())}}}"
    )


def _jitter() -> timedelta:
    """Return a different sub-second amount each time, to keep Phoenix's cache out of a check."""
    return timedelta(microseconds=1 + time.time_ns() // 1000 % 1_000_000)


def _optional_time(value: str | None) -> datetime | None:
    """Read one of Phoenix's GraphQL times, which may be null."""
    return parse_time(value) if value else None


def _summary(node: JSON | None) -> NameSummary:
    """Read one of Phoenix's summaries; none means no annotation of that name."""
    if node is None:
        return EMPTY
    return NameSummary(
        int(node["count"]),
        node["meanScore"],
        {f["label"]: float(f["fraction"]) for f in node["labelFractions"]},
    )


def trace_start_times(
    phoenix: PhoenixClient, project_id: str, trace_ids: Sequence[str]
) -> dict[str, datetime]:
    """Ask Phoenix when each of these traces started; one it does not hold is left out."""
    ids = list(dict.fromkeys(trace_ids))
    found: dict[str, datetime] = {}
    for first in range(0, len(ids), MAX_ALIASES):
        chunk = ids[first : first + MAX_ALIASES]
        params = "".join(f", $t{n}: ID!" for n in range(len(chunk)))
        fields = " ".join(f"t{n}: trace(traceId: $t{n}) {{ startTime }}" for n in range(len(chunk)))
        query = (
            f"query TraceStarts($id: ID!{params}) {{ node(id: $id) {{ ... on Project {{ "
            + fields
            + " } } }"
        )
        variables = {"id": project_id, **{f"t{n}": t for n, t in enumerate(chunk)}}
        node: dict[str, Any] = phoenix.graphql(query, variables)["node"]
        for n, trace_id in enumerate(chunk):
            trace = node.get(f"t{n}")
            if trace and trace.get("startTime"):
                found[trace_id] = parse_time(trace["startTime"])
    return found


class AnnotationWatch:
    """Compare annotation summaries with Phoenix's once a minute; find changed spans and traces."""

    def __init__(
        self, phoenix: PhoenixClient, store: FactStore, interval_s: float = CHECK_INTERVAL_S
    ) -> None:
        self.phoenix = phoenix
        self.store = store
        self.interval_s = interval_s
        self._checked_at = float("-inf")

    def due(self) -> bool:
        """Tell whether a check is due."""
        return time.monotonic() - self._checked_at >= self.interval_s

    def checked(self) -> None:
        """Record that every project was checked."""
        self._checked_at = time.monotonic()

    def changed_spans(self, project: JSON) -> list[HeldSpan]:
        """Return our spans of a project that lie in start-time ranges whose summaries differ."""
        name = project["name"]
        bounds = span_start_bounds(self.store, name)
        if bounds is None:
            return []
        theirs = self.phoenix.graphql(NAMES_QUERY, {"id": project["id"]})["node"]
        start = bounds[0] - _jitter()
        ours = span_annotation_summaries(self.store, name, start, bounds[1] + _PAST)
        names = sorted({*(theirs.get("spanAnnotationNames") or []), *ours})
        if not names:
            return []
        kind = _Kind(
            summary="spanAnnotationSummary",
            arguments=f", filterCondition: {json.dumps(LLM_FILTER)}",
            count=None,
            ours=lambda part: span_annotation_summaries(self.store, name, part.start, part.end),
            small=lambda part, _count: (
                count_spans_started(self.store, name, part.start, part.end) <= LEAF_SPANS
            ),
        )
        leaves = self._bisect(project, Range(start, bounds[1] + _PAST, tuple(names)), ours, kind)
        spans: dict[str, HeldSpan] = {}
        for leaf in leaves:
            for span in spans_started(self.store, name, leaf.start, leaf.end):
                spans[span.span_id] = span
        return list(spans.values())

    def changed_traces(self, project: JSON) -> list[Range]:
        """Return the trace start-time ranges whose trace annotation summaries differ from ours."""
        name = project["name"]
        theirs = self.phoenix.graphql(TRACE_NAMES_QUERY, {"id": project["id"]})["node"]
        # Everything we hold: the first range covers it, so its summaries need no bounds.
        ours = trace_annotation_summaries(self.store, name)
        if ours.undated:
            self._date(project)
            ours = trace_annotation_summaries(self.store, name)
        names = sorted({*(theirs.get("traceAnnotationNames") or []), *ours.names})
        firsts = [t for t in (ours.first, _optional_time(theirs.get("startTime"))) if t]
        lasts = [t for t in (ours.last, _optional_time(theirs.get("endTime"))) if t]
        if not names or not firsts or not lasts:
            return []
        kind = _Kind(
            summary="traceAnnotationSummary",
            arguments="",
            count="traceCount",
            ours=lambda part: (
                trace_annotation_summaries(self.store, name, part.start, part.end).names
            ),
            small=lambda _part, count: count is not None and count <= LEAF_TRACES,
        )
        root = Range(min(firsts) - _jitter(), max(lasts) + _PAST, tuple(names))
        return self._bisect(project, root, ours.names, kind, MAX_TRACE_LEAVES)

    def _date(self, project: JSON) -> None:
        """Give trace annotations held without their trace's start time Phoenix's, and keep them.

        The spans' reads write a new trace annotation with no start when the store knows none
        for its trace. One whose trace Phoenix no longer holds in this project is deleted: its
        annotations went with it.
        """
        writers = {
            TRACE_ANNOTATIONS: self.store.write_trace_annotations,
            UNSYNCED_TRACE_ANNOTATIONS: self.store.write_unsynced_trace_annotations,
        }
        for table, write in writers.items():
            rows = undated_trace_annotations(self.store, project["name"], table, MAX_DATED)
            if not rows:
                continue
            starts = trace_start_times(self.phoenix, project["id"], [r.trace_id for r in rows])
            # Versioned now: the rows keep what they held, so the newest version must be these.
            write(
                [
                    replace(r, trace_start_time=starts[r.trace_id])
                    if r.trace_id in starts
                    else replace(r, is_deleted=True)
                    for r in rows
                ],
                datetime.now(UTC),
            )

    def _bisect(
        self,
        project: JSON,
        root: Range,
        ours: dict[str, NameSummary],
        kind: _Kind,
        max_leaves: int | None = None,
    ) -> list[Range]:
        """Halve the ranges whose summaries differ until each is small; return those parts."""
        ranges = [root]
        known = {root: ours}
        leaves: list[Range] = []
        while ranges:
            differing = self._differing(project, ranges, known, kind)
            ranges = []
            for part, count in differing:
                narrow = part.end - part.start <= LEAF_WIDTH
                if narrow or kind.small(part, count):
                    leaves.append(part)
                else:
                    ranges += part.halves()
            if max_leaves is not None:
                # The newest ranges go on (two halves for each part still wanted); whatever is
                # left out still differs at the next check, which finds it then.
                leaves = leaves[-max_leaves:]
                room = max_leaves - len(leaves)
                ranges = ranges[max(0, len(ranges) - 2 * room) :] if room else []
            known = {}
        return leaves

    def _differing(
        self,
        project: JSON,
        ranges: Sequence[Range],
        known: dict[Range, dict[str, NameSummary]],
        kind: _Kind,
    ) -> list[tuple[Range, int | None]]:
        """Return the ranges where some name's summary differs, narrowed to those names."""
        theirs, counts = self._phoenix_summaries(project["id"], ranges, kind)
        differing = []
        for index, part in enumerate(ranges):
            ours = known.get(part)
            if ours is None:
                ours = kind.ours(part)
            names = tuple(
                n for n in part.names if not theirs[(index, n)].matches(ours.get(n, EMPTY))
            )
            if names:
                differing.append((Range(part.start, part.end, names), counts.get(index)))
        return differing

    def _phoenix_summaries(
        self, project_id: str, ranges: Sequence[Range], kind: _Kind
    ) -> tuple[dict[tuple[int, str], NameSummary], dict[int, int]]:
        """Ask Phoenix for each range's summaries (and count), at most MAX_ALIASES a request."""
        wanted: list[tuple[int, str | None]] = []
        for index, part in enumerate(ranges):
            wanted += [(index, n) for n in part.names]
            if kind.count is not None:
                wanted.append((index, None))
        found: dict[tuple[int, str], NameSummary] = {}
        counts: dict[int, int] = {}
        for first in range(0, len(wanted), MAX_ALIASES):
            chunk = wanted[first : first + MAX_ALIASES]
            fields = []
            for alias, (index, n) in enumerate(chunk):
                part = ranges[index]
                if n is None:
                    fields.append(f"a{alias}: {kind.count}({_time_range(part)})")
                    continue
                fields.append(
                    f"a{alias}: {kind.summary}(annotationName: {json.dumps(n)},"
                    f" {_time_range(part)}{kind.arguments})"
                    " { count meanScore labelFractions { label fraction } }"
                )
            query = (
                "query Summaries($id: ID!) { node(id: $id) { ... on Project { "
                + " ".join(fields)
                + " } } }"
            )
            node: dict[str, Any] = self.phoenix.graphql(query, {"id": project_id})["node"]
            for alias, (index, n) in enumerate(chunk):
                if n is None:
                    counts[index] = int(node[f"a{alias}"])
                else:
                    found[(index, n)] = _summary(node[f"a{alias}"])
        return found, counts
