"""Summaries of the span and trace annotations we hold, computed as Phoenix computes its own.

Phoenix's `Project.spanAnnotationSummary` counts, per annotation name, the annotations with a
score or a label on spans whose start time is in a range: `count` is the number of distinct
(span, label) pairs, `meanScore` the mean over spans of each span's mean score, and each label's
fraction the sum over spans of that label's share of the span's labels, over the spans counted.
`Project.traceAnnotationSummary` is the same over traces, by the trace's start time (the
earliest start of any of its spans) and over every trace of the project, whether or not it holds
an LLM span: so ours counts the annotations of both trace annotation tables.
Comparing these with Phoenix's tells which start-time ranges gained, changed or lost annotations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from store.facts import FactStore
from store.sync_queries import SPAN_REF_COLUMNS, HeldSpan

# Phoenix and ClickHouse add float scores in different orders.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class NameSummary:
    """One annotation name's summary over a time range."""

    count: int
    mean_score: float | None
    label_fractions: Mapping[str, float] = field(default_factory=dict)

    def matches(self, other: NameSummary | None) -> bool:
        """Tell whether another summary agrees with this one, floats within a tolerance."""
        if other is None:
            return self.count == 0
        if self.count != other.count or set(self.label_fractions) != set(other.label_fractions):
            return False
        if (self.mean_score is None) != (other.mean_score is None):
            return False
        floats = [(self.mean_score, other.mean_score)] if self.mean_score is not None else []
        floats += [(v, other.label_fractions[k]) for k, v in self.label_fractions.items()]
        return all(
            math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
            for a, b in floats
            if a is not None and b is not None
        )


EMPTY = NameSummary(0, None)

_SUMMARY_SQL = """
WITH per AS (
    SELECT name, span_id AS e, label, count(label) AS lc, count(score) AS sc, sum(score) AS ss
    FROM span_annotations FINAL
    WHERE project = {project:String} AND is_deleted = 0
      AND span_start_time >= {start:DateTime64(6, 'UTC')}
      AND span_start_time < {end:DateTime64(6, 'UTC')}
      AND (score IS NOT NULL OR label IS NOT NULL)
    GROUP BY name, e, label
),
ent AS (
    SELECT name, e, sum(lc) AS tl, sum(sc) AS ts, sum(ss) AS tss FROM per GROUP BY name, e
)
SELECT l.name, l.label, l.pairs, l.frac_sum, n.mean, n.entities
FROM (
    SELECT per.name AS name, per.label AS label, count() AS pairs,
           sum(if(ent.tl > 0, per.lc / ent.tl, 0)) AS frac_sum
    FROM per INNER JOIN ent ON per.name = ent.name AND per.e = ent.e
    GROUP BY per.name, per.label
) AS l
INNER JOIN (
    SELECT name, avgOrNull(if(ts > 0, tss / ts, NULL)) AS mean, count() AS entities
    FROM ent GROUP BY name
) AS n ON l.name = n.name
"""


def _summaries(rows: list[tuple[Any, ...]]) -> dict[str, NameSummary]:
    """Fold rows of (name, label, pairs, label fraction sum, mean, entities) into summaries."""
    counts: dict[str, int] = {}
    means: dict[str, float | None] = {}
    fractions: dict[str, dict[str, float]] = {}
    for name, label, pairs, frac_sum, mean, entities in rows:
        counts[name] = counts.get(name, 0) + int(pairs)
        means[name] = None if mean is None or math.isnan(mean) else float(mean)
        if label is not None and entities:
            fractions.setdefault(name, {})[label] = float(frac_sum) / int(entities)
    return {
        name: NameSummary(counts[name], means[name], fractions.get(name, {})) for name in counts
    }


def span_annotation_summaries(
    store: FactStore, project: str, start: datetime, end: datetime
) -> dict[str, NameSummary]:
    """Summarise per name the live span annotations on spans started in [start, end)."""
    result = store.transport.query(_SUMMARY_SQL, {"project": project, "start": start, "end": end})
    return _summaries(result.rows)


# The same over traces, from both trace annotation tables; each name's row also carries the
# earliest and latest trace start it counted, which bound the watch's first range. An annotation
# whose trace's start we do not know yet lies in no range: over all time, a last row counts them.
_TRACE_WHERE = """
    project = {project:String} AND is_deleted = 0 AND (score IS NOT NULL OR label IS NOT NULL)
"""
_TRACE_RANGE = """
    AND trace_start_time >= {start:DateTime64(6, 'UTC')}
    AND trace_start_time < {end:DateTime64(6, 'UTC')}
"""
_TRACE_SUMMARY_SQL = """
WITH held AS (
    SELECT name, trace_id, label, score, trace_start_time FROM trace_annotations FINAL
    WHERE {where}
    UNION ALL
    SELECT name, trace_id, label, score, trace_start_time FROM unsynced_trace_annotations FINAL
    WHERE {where}
),
per AS (
    SELECT name, trace_id AS e, label, count(label) AS lc, count(score) AS sc, sum(score) AS ss,
           min(trace_start_time) AS t_first, max(trace_start_time) AS t_last
    FROM held
    WHERE trace_start_time IS NOT NULL
    GROUP BY name, e, label
),
ent AS (
    SELECT name, e, sum(lc) AS tl, sum(sc) AS ts, sum(ss) AS tss,
           min(t_first) AS t_first, max(t_last) AS t_last
    FROM per GROUP BY name, e
)
SELECT 0 AS is_count, 0 AS undated, l.name, l.label, l.pairs, l.frac_sum, n.mean, n.entities,
       n.t_first, n.t_last
FROM (
    SELECT per.name AS name, per.label AS label, count() AS pairs,
           sum(if(ent.tl > 0, per.lc / ent.tl, 0)) AS frac_sum
    FROM per INNER JOIN ent ON per.name = ent.name AND per.e = ent.e
    GROUP BY per.name, per.label
) AS l
INNER JOIN (
    SELECT name, avgOrNull(if(ts > 0, tss / ts, NULL)) AS mean, count() AS entities,
           min(t_first) AS t_first, max(t_last) AS t_last
    FROM ent GROUP BY name
) AS n ON l.name = n.name
"""
_UNDATED_SQL = """
UNION ALL
SELECT 1, countIf(trace_start_time IS NULL), '', NULL, 0, 0, NULL, 0, NULL, NULL FROM held
"""


@dataclass(frozen=True)
class TraceSummaries:
    """Our trace annotation summaries by name, the trace starts they span, how many lack one."""

    names: dict[str, NameSummary]
    first: datetime | None
    last: datetime | None
    undated: int = 0


def trace_annotation_summaries(
    store: FactStore, project: str, start: datetime | None = None, end: datetime | None = None
) -> TraceSummaries:
    """Summarise per name the live trace annotations on traces started in [start, end) (or any).

    Over any time, also count the annotations whose trace's start is not known yet.
    """
    bounded = start is not None and end is not None
    sql = _TRACE_SUMMARY_SQL.replace("{where}", _TRACE_WHERE + (_TRACE_RANGE if bounded else ""))
    params: dict[str, Any] = {"project": project}
    if bounded:
        params |= {"start": start, "end": end}
    else:
        sql += _UNDATED_SQL
    rows = store.transport.query(sql, params).rows
    summary_rows = [row[2:] for row in rows if not row[0]]
    undated = sum(int(row[1]) for row in rows if row[0])
    return TraceSummaries(
        _summaries([row[:6] for row in summary_rows]),
        min((row[6] for row in summary_rows), default=None),
        max((row[7] for row in summary_rows), default=None),
        undated,
    )


def traces_started(store: FactStore, project: str, start: datetime, end: datetime) -> set[str]:
    """Return the traces started in [start, end) that we hold live annotations of."""
    where = "project = {project:String} AND is_deleted = 0" + _TRACE_RANGE
    result = store.transport.query(
        f"SELECT DISTINCT trace_id FROM trace_annotations FINAL WHERE {where}"  # noqa: S608
        f" UNION DISTINCT SELECT DISTINCT trace_id FROM unsynced_trace_annotations FINAL"
        f" WHERE {where}",
        {"project": project, "start": start, "end": end},
    )
    return {row[0] for row in result.rows}


def span_start_bounds(store: FactStore, project: str) -> tuple[datetime, datetime] | None:
    """Return the earliest and latest start time of a project's stored spans, if any."""
    result = store.transport.query(
        "SELECT count(), min(start_time), max(start_time) FROM llm_spans"
        " WHERE project = {project:String}",
        {"project": project},
    )
    count, first, last = result.rows[0]
    return (first, last) if count else None


def count_spans_started(store: FactStore, project: str, start: datetime, end: datetime) -> int:
    """Count a project's stored spans started in [start, end) (a re-read page counts twice)."""
    result = store.transport.query(
        "SELECT count() FROM llm_spans WHERE project = {project:String}"
        " AND start_time >= {start:DateTime64(6, 'UTC')}"
        " AND start_time < {end:DateTime64(6, 'UTC')}",
        {"project": project, "start": start, "end": end},
    )
    return int(result.rows[0][0])


def spans_started(store: FactStore, project: str, start: datetime, end: datetime) -> list[HeldSpan]:
    """Return a project's stored spans started in [start, end)."""
    result = store.transport.query(
        f"SELECT {', '.join(SPAN_REF_COLUMNS)} FROM llm_spans FINAL"  # noqa: S608 - fixed text
        " WHERE project = {project:String}"
        " AND start_time >= {start:DateTime64(6, 'UTC')}"
        " AND start_time < {end:DateTime64(6, 'UTC')}",
        {"project": project, "start": start, "end": end},
    )
    return [HeldSpan(*row) for row in result.rows]
