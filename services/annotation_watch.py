"""Find the spans, of any age, whose annotations changed in Phoenix since we read them.

Phoenix cannot list annotations by time, but it summarises them per name over a span start-time
range (`Project.spanAnnotationSummary`). Once a minute per project the watch compares Phoenix's
summaries over the whole start-time range of our spans with the same summaries of our store;
a range that differs is halved until each part holds few of our spans, and those spans'
annotations are then read again. An idle check is two GraphQL requests and one store query.

Phoenix caches these summaries for an hour per (project, name, kind, range, filter). An insert
or edit invalidates its project, name and kind (phoenix/server/dml_event_handler.py), but a
delete does not: its handler finds the project by joining the annotation rows it has just
deleted, finds none, and clears nothing. So each check moves its range's start back by a
different sub-second amount (before our first span, so it counts the same spans) and Phoenix
never answers it from its cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.phoenix import JSON, PhoenixClient
from store.annotation_summaries import (
    EMPTY,
    NameSummary,
    count_spans_started,
    span_annotation_summaries,
    span_start_bounds,
    spans_started,
)
from store.facts import FactStore
from store.sync_queries import HeldSpan

CHECK_INTERVAL_S = 60.0
# We hold only LLM spans, so Phoenix summarises only those.
LLM_FILTER = "span_kind == 'LLM'"
# Phoenix refuses a document with more aliases than this.
MAX_ALIASES = 50
# A differing range is re-read whole once it holds this few of our spans (or is this narrow).
LEAF_SPANS = 1000
LEAF_WIDTH = timedelta(seconds=1)
# Ranges end past the newest span: Phoenix's end is exclusive.
_PAST = timedelta(microseconds=1)

NAMES_QUERY = """
query AnnotationNames($id: ID!) {
  node(id: $id) { ... on Project { spanAnnotationNames } }
}
"""


@dataclass(frozen=True)
class Range:
    """A span start-time range [start, end) and the annotation names to compare over it."""

    start: datetime
    end: datetime
    names: tuple[str, ...]

    def halves(self) -> list[Range]:
        """Split the range in two at its middle."""
        middle = self.start + (self.end - self.start) / 2
        return [Range(self.start, middle, self.names), Range(middle, self.end, self.names)]


def _summary(node: JSON | None) -> NameSummary:
    """Read one of Phoenix's summaries; none means no annotation of that name."""
    if node is None:
        return EMPTY
    return NameSummary(
        int(node["count"]),
        node["meanScore"],
        {f["label"]: float(f["fraction"]) for f in node["labelFractions"]},
    )


class AnnotationWatch:
    """Compare annotation summaries with Phoenix's once a minute and find the changed spans."""

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
        start = bounds[0] - timedelta(microseconds=1 + time.time_ns() // 1000 % 1_000_000)
        ours = span_annotation_summaries(self.store, name, start, bounds[1] + _PAST)
        names = sorted({*(theirs.get("spanAnnotationNames") or []), *ours})
        if not names:
            return []
        ranges = [Range(start, bounds[1] + _PAST, tuple(names))]
        known = {ranges[0]: ours}
        leaves: list[Range] = []
        while ranges:
            differing = self._differing(project, ranges, known)
            ranges = []
            for part in differing:
                narrow = part.end - part.start <= LEAF_WIDTH
                if (
                    narrow
                    or count_spans_started(self.store, name, part.start, part.end) <= LEAF_SPANS
                ):
                    leaves.append(part)
                else:
                    ranges += part.halves()
            known = {}
        spans: dict[str, HeldSpan] = {}
        for leaf in leaves:
            for span in spans_started(self.store, name, leaf.start, leaf.end):
                spans[span.span_id] = span
        return list(spans.values())

    def _differing(
        self,
        project: JSON,
        ranges: Sequence[Range],
        known: dict[Range, dict[str, NameSummary]],
    ) -> list[Range]:
        """Return the ranges where some name's summary differs, narrowed to those names."""
        theirs = self._phoenix_summaries(project["id"], ranges)
        differing = []
        for index, part in enumerate(ranges):
            ours = known.get(part)
            if ours is None:
                ours = span_annotation_summaries(self.store, project["name"], part.start, part.end)
            names = tuple(
                n for n in part.names if not theirs[(index, n)].matches(ours.get(n, EMPTY))
            )
            if names:
                differing.append(Range(part.start, part.end, names))
        return differing

    def _phoenix_summaries(
        self, project_id: str, ranges: Sequence[Range]
    ) -> dict[tuple[int, str], NameSummary]:
        """Ask Phoenix for each range's summaries, at most MAX_ALIASES to a request."""
        wanted = [(index, n) for index, part in enumerate(ranges) for n in part.names]
        found: dict[tuple[int, str], NameSummary] = {}
        for first in range(0, len(wanted), MAX_ALIASES):
            chunk = wanted[first : first + MAX_ALIASES]
            fields = []
            for alias, (index, n) in enumerate(chunk):
                part = ranges[index]
                fields.append(
                    f"a{alias}: spanAnnotationSummary(annotationName: {json.dumps(n)},"
                    f" timeRange: {{start: {json.dumps(part.start.isoformat())},"
                    f" end: {json.dumps(part.end.isoformat())}}},"
                    f" filterCondition: {json.dumps(LLM_FILTER)})"
                    " { count meanScore labelFractions { label fraction } }"
                )
            query = (
                "query Summaries($id: ID!) { node(id: $id) { ... on Project { "
                + " ".join(fields)
                + " } } }"
            )
            node: dict[str, Any] = self.phoenix.graphql(query, {"id": project_id})["node"]
            for alias, key in enumerate(chunk):
                found[key] = _summary(node[f"a{alias}"])
        return found
