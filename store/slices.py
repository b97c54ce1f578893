"""Pre-aggregated 15-minute slices of closed days, kept exactly equal to the facts they sum.

Why: at 10M spans a cold analytics redraw spent most of its time grouping rows (per bucket and
version, per version, in total), and every new span made the next redraw cold again. Closed days
do not change, so their groups are computed once: a slice row holds, for one 15-minute slice and
one (project, prompt, version, model, status), the counts, the sums with how many values were
known, and the exact quantile state (every latency value, as ClickHouse's -State keeps it).
Merging slice rows gives the same exact answer as the facts they came from, for any grouping.

How they stay right:

* A day's slices are rebuilt whole from the facts (read with FINAL; deleted annotations left
  out) into a scratch table and swapped in with REPLACE PARTITION, which is atomic: a reader
  sees the day's old slices or its new ones, never half of either.
* Every write of facts records its days in `written_days`, by the store's clock, after its rows
  are in (FactStore.mark_written). A build reads the same clock before it reads the facts. A
  day's slices are used only while the day's last write is older than its last build: a write
  that raced a build (its rows landed after the build began to read) has a later time, so the
  day is read from the facts until the next build. Both times are taken by the server the
  statement runs on: one chdb process or one server has one clock. Servers behind one address
  (a cluster) must keep their clocks within CLOCK_MARGIN of each other.
* Only days before yesterday (UTC) are built, and writes to today mark nothing (most of a
  sync's writes: no extra statement); the sync builds after each tick (refresh), on the one
  replica that holds its lock. Today, days not yet built and days written since are read from
  the facts, in the same query (a UNION ALL of slices and facts), so an answer is always whole.
* A query uses a day's slices only when its window covers the day whole; the days at the
  window's edges are read from the facts. Buckets must be whole multiples of 15 minutes: every
  time zone's offset is a multiple of 15 minutes, so a bucket on any zone's clock is a union of
  whole slices.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from store.facts import FactStore
from store.filters import (
    ANNOTATION_SLICES,
    ANNOTATIONS,
    SPAN_SLICES,
    SPANS,
    Filters,
    prompt_sql,
    version_sql,
    where,
)

log = logging.getLogger(__name__)

SLICE = timedelta(minutes=15)
CLOCK_MARGIN = timedelta(0)
# A scratch table this old is a build that died; a live build takes seconds.
SCRATCH_MAX_AGE = timedelta(hours=1)
SPAN_QUANTILES = (0.5, 0.95, 0.99)
SCORE_QUANTILES = (0, 0.25, 0.5, 0.75, 1)


@dataclass(frozen=True)
class Kind:
    """One kind of slices: the facts they sum and how."""

    name: str
    facts: str
    table: str
    start: str  # the facts' time column; its UTC day is their partition
    dimensions: tuple[str, ...]
    parts: tuple[tuple[str, str], ...]  # (column, aggregate over the facts)
    live: str  # what a fact must satisfy to count


def quantile_list(values: Sequence[float]) -> str:
    """Render quantile levels as the SQL parameter list of a quantiles function."""
    return ", ".join(str(v) for v in values)


SPAN_KIND = Kind(
    name="spans",
    facts="llm_spans",
    table="span_slices",
    start="start_time",
    dimensions=("project", "prompt_id", "template_hash", "prompt_version", "model", "status"),
    parts=(
        ("n_part", "count()"),
        ("errors_part", "countIf(status = 'ERROR')"),
        (
            "latency_part",
            f"quantilesExactInclusiveState({quantile_list(SPAN_QUANTILES)})(latency_ms)",
        ),
        ("latency_min_part", "min(latency_ms)"),
        ("latency_max_part", "max(latency_ms)"),
        ("tokens_part", "sum(total_tokens)"),
        ("tokens_known_part", "count(total_tokens)"),
        ("cost_part", "sum(cost)"),
        ("cost_known_part", "count(cost)"),
    ),
    live="1",
)
ANNOTATION_KIND = Kind(
    name="annotations",
    facts="span_annotations",
    table="annotation_slices",
    start="span_start_time",
    dimensions=(
        "project",
        "name",
        "label",
        "prompt_id",
        "template_hash",
        "prompt_version",
        "model",
        "span_status",
    ),
    parts=(
        ("annotations_part", "count()"),
        ("scored_part", "count(score)"),
        ("score_sum_part", "sum(ifNull(score, 0))"),
        ("scores_part", f"quantilesExactInclusiveState({quantile_list(SCORE_QUANTILES)})(score)"),
    ),
    live="is_deleted = 0",
)
KINDS = (SPAN_KIND, ANNOTATION_KIND)


def slice_sql(kind: Kind, grain: timedelta) -> str:
    """Return the expression of a fact's slice of `grain` (whole minutes), as a UTC DateTime."""
    minutes = int(grain / timedelta(minutes=1))
    return f"toDateTime(toStartOfInterval({kind.start}, INTERVAL {minutes} MINUTE), 'UTC')"


# Building -------------------------------------------------------------------------------------


def fresh_days(store: FactStore, kind: Kind) -> list[date]:
    """Return the days whose slices stand for their facts: built, and not written since."""
    margin_us = int(CLOCK_MARGIN / timedelta(microseconds=1))
    rows = store.transport.query(
        f"""
        SELECT b.day FROM (
            SELECT day, max(built_at) AS built FROM slice_days
            WHERE kind = {{kind:String}} GROUP BY day
        ) AS b
        LEFT JOIN (
            SELECT day, max(written_at) AS written FROM written_days
            WHERE kind = {{kind:String}} GROUP BY day
        ) AS w USING (day)
        WHERE w.written + toIntervalMicrosecond({margin_us}) < b.built
        ORDER BY b.day
        """,  # noqa: S608 - an integer
        {"kind": kind.name},
    ).rows
    return [row[0] for row in rows]


def partition_days(store: FactStore, table: str) -> list[date]:
    """Return the UTC days a day-partitioned table holds rows of (its active partitions)."""
    rows = store.transport.query(
        """
        SELECT DISTINCT partition_id FROM system.parts
        WHERE database = currentDatabase() AND table = {table:String} AND active
        """,
        {"table": table},
    ).rows
    days = []
    for (partition_id,) in rows:
        text = str(partition_id)
        if len(text) == 8 and text.isdigit():
            days.append(datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC).date())
    return sorted(days)


def stale_days(store: FactStore, kind: Kind, before: date) -> list[date]:
    """Return the days before `before` that hold facts but no fresh slices."""
    fresh = set(fresh_days(store, kind))
    return [day for day in partition_days(store, kind.facts) if day < before and day not in fresh]


def build_day(store: FactStore, kind: Kind, day: date) -> None:
    """Rebuild one day's slices from its facts and swap them in at once."""
    built_at = store.transport.query("SELECT now64(6, 'UTC')").rows[0][0]
    scratch = f"{kind.table}_build_{secrets.token_hex(6)}"
    start = datetime.combine(day, time(), UTC)
    columns = ", ".join([*kind.dimensions, *(c for c, _ in kind.parts)])
    select = ", ".join([*kind.dimensions, *(f"{agg} AS {c}" for c, agg in kind.parts)])
    # The table names are constants and the partition id is a date's digits.
    store.transport.command(f"CREATE TABLE {scratch} AS {kind.table}")
    try:
        store.transport.command(
            f"""
            INSERT INTO {scratch} (slice, {columns})
            SELECT {slice_sql(kind, SLICE)} AS slice, {select}
            FROM {kind.facts} FINAL
            WHERE {kind.start} >= {{start:DateTime64(6, 'UTC')}}
                AND {kind.start} < {{end:DateTime64(6, 'UTC')}} AND {kind.live}
            GROUP BY slice, {", ".join(kind.dimensions)}
            """,  # noqa: S608
            {"start": start, "end": start + timedelta(days=1)},
        )
        built = store.transport.query(f"SELECT count() FROM {scratch}").rows[0][0]  # noqa: S608
        partition = f"PARTITION ID '{day:%Y%m%d}'"
        if built:
            store.transport.command(f"ALTER TABLE {kind.table} REPLACE {partition} FROM {scratch}")
        else:
            store.transport.command(f"ALTER TABLE {kind.table} DROP {partition}")
    finally:
        store.transport.command(f"DROP TABLE IF EXISTS {scratch}")
    store.transport.insert("slice_days", ("kind", "day", "built_at"), [(kind.name, day, built_at)])


def _drop_dead_scratch(store: FactStore) -> None:
    """Drop the scratch tables of builds that died (a build holds the sync lock)."""
    rows = store.transport.query(
        """
        SELECT name FROM system.tables
        WHERE database = currentDatabase()
            AND (startsWith(name, 'span_slices_build_')
                 OR startsWith(name, 'annotation_slices_build_'))
            AND metadata_modification_time < now() - toIntervalSecond({age:Int64})
        """,
        {"age": int(SCRATCH_MAX_AGE.total_seconds())},
    ).rows
    for (name,) in rows:
        if str(name).replace("_", "").isalnum():
            store.transport.command(f"DROP TABLE IF EXISTS {name}")


# Days this close to today are not built: writers skip marking today's writes (nearly all a
# sync's), which is safe while no builder's clock is a day ahead of a writer's.
BUILD_LAG = timedelta(days=1)


def refresh(store: FactStore, before: date | None = None) -> int:
    """Build the slices of every day before `before` (default: yesterday, UTC) that needs it.

    Returns how many (kind, day) builds ran. Call it from one process at a time (the sync
    worker, under its lock): two builders would both be right, but would do the work twice.
    """
    cutoff = before or (datetime.now(UTC) - BUILD_LAG).date()
    _drop_dead_scratch(store)
    built = 0
    for kind in KINDS:
        for day in stale_days(store, kind, cutoff):
            build_day(store, kind, day)
            built += 1
    if built:
        log.info("slices: %d day(s) built", built)
    return built


def clear(store: FactStore) -> None:
    """Forget every slice and every build (before the facts go)."""
    for table in ("slice_days", "span_slices", "annotation_slices", "written_days"):
        store.transport.command(f"TRUNCATE TABLE IF EXISTS {table}")


# Reading ----------------------------------------------------------------------------------------


def usable(bucket: timedelta | None) -> bool:
    """Tell whether buckets of this size (None: no buckets) are unions of whole slices."""
    return bucket is None or (bucket >= SLICE and bucket % SLICE == timedelta(0))


def covered_days(
    store: FactStore, kind: Kind, filters: Filters, bucket: timedelta | None
) -> list[date]:
    """Return the days a query may read from slices: fresh, and inside the window whole."""
    if not usable(bucket):
        return []
    days = []
    for day in fresh_days(store, kind):
        start = datetime.combine(day, time(), UTC)
        if filters.start is not None and start < filters.start:
            continue
        if filters.end is not None and start + timedelta(days=1) > filters.end:
            continue
        days.append(day)
    return days


def source(
    kind: Kind,
    filters: Filters,
    keys: Sequence[str],
    days: Sequence[date],
    *,
    fact_slice: str | None = None,
    extra: str = "1",
) -> tuple[str, dict[str, Any]]:
    """Return SQL of partial aggregates per (slice, keys): slices of `days`, facts for the rest.

    Each row has the keys (and `slice`, a UTC DateTime, when `fact_slice` is set: the facts'
    slice expression, which must be slice_sql(kind, SLICE) when `days` is not empty),
    `prompt_hash` when `prompt_id` is a key, and the kind's part columns, whose -Merge or sum
    gives the answer. `extra` is one more condition on columns that both tables have.
    """
    part_names = [c for c, _ in kind.parts]
    if filters.prompt_map is not None and "prompt_version" in keys and "prompt_id" not in keys:
        # A label is the group's: the map needs the group to find it.
        keys = [*keys, "prompt_id"]
    with_hash = "prompt_id" in keys
    fact_where, params = where(filters, SPANS if kind is SPAN_KIND else ANNOTATIONS)
    fact_keys = list(keys)
    fact_select = list(keys)
    if fact_slice is not None:
        fact_select.insert(0, f"{fact_slice} AS slice")
        fact_keys.insert(0, "slice")
    if with_hash:
        fact_select.append("any(template_hash) AS prompt_hash")
    fact_select += [f"{agg} AS {c}" for c, agg in kind.parts]
    day_list = [day.isoformat() for day in days]
    skip = f" AND toDate({kind.start}) NOT IN {{slice_days:Array(Date)}}" if day_list else ""
    facts = f"""
        SELECT {", ".join(fact_select)}
        FROM {kind.facts} FINAL
        WHERE {fact_where} AND {kind.live} AND {extra}{skip}
        {"GROUP BY " + ", ".join(fact_keys) if fact_keys else ""}
    """  # noqa: S608
    if not day_list:
        return _mapped(facts, params, filters, fact_select_names(fact_slice, keys, kind))
    params["slice_days"] = day_list
    slice_where, _same = where(filters, SPAN_SLICES if kind is SPAN_KIND else ANNOTATION_SLICES)
    slice_select = ["slice"] if fact_slice is not None else []
    slice_select += list(keys)
    if with_hash:
        slice_select.append("template_hash AS prompt_hash")
    slice_select += part_names
    slices = f"""
        SELECT {", ".join(slice_select)}
        FROM {kind.table}
        WHERE {slice_where} AND {extra} AND toDate(slice) IN {{slice_days:Array(Date)}}
    """  # noqa: S608
    return _mapped(
        f"{slices} UNION ALL {facts}", params, filters, fact_select_names(fact_slice, keys, kind)
    )


def fact_select_names(fact_slice: str | None, keys: Sequence[str], kind: Kind) -> list[str]:
    """Return the column names a source's rows have, in order."""
    names = ["slice"] if fact_slice is not None else []
    names += list(keys)
    if "prompt_id" in keys:
        names.append("prompt_hash")
    return names + [c for c, _ in kind.parts]


def _mapped(
    sql: str, params: dict[str, Any], filters: Filters, names: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """Show groups as the filters' prompt map says: its prompt id and version label.

    Applied to the partial aggregates (a few rows per group and slice), never to the facts
    themselves, so the engine still groups the facts by their dictionary codes.
    """
    if filters.prompt_map is None or not {"prompt_id", "prompt_version"} & set(names):
        return sql, params
    # The inner SELECT renames the facts' group id, so no alias of the outer one can shadow it.
    inner = ["prompt_id AS group_id" if n == "prompt_id" else n for n in names]
    mapped = {"prompt_id": prompt_sql("group_id"), "prompt_version": version_sql("group_id")}
    outer = [f"{mapped[n]} AS {n}" if n in mapped else n for n in names]
    sql = f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM ({sql}))"  # noqa: S608
    return sql, {**params, **filters.prompt_map.params()}


SPAN_MERGE = f"""
    sum(n_part) AS n,
    sum(errors_part) AS errors,
    quantilesExactInclusiveMerge({quantile_list(SPAN_QUANTILES)})(latency_part) AS latency,
    sum(tokens_part) AS tokens,
    sum(tokens_known_part) AS tokens_known,
    sum(cost_part) AS cost_total,
    sum(cost_known_part) AS cost_known
"""
SCORE_MERGE = """
    sum(score_sum_part) AS score_sum,
    sum(scored_part) AS scored,
    sum(annotations_part) AS annotations
"""
