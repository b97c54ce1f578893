"""The store's schema, as numbered migrations whose every statement is safe to run twice.

Two processes may migrate at once (two replicas starting together): each statement is
idempotent (IF NOT EXISTS), and the version rows live in a ReplacingMergeTree keyed by version,
so a version recorded twice reads once. A new migration appends here; it never edits an old one.

Why the tables look as they do:

* ClickHouse has no unique keys. Each table is a ReplacingMergeTree whose ORDER BY identifies a
  row, with `synced_at` (when the sync read the row from Phoenix) as the version: re-reading a
  page, or two replicas writing the same page, leaves one row per key once merged, and readers
  use FINAL so that unmerged duplicates never count twice. Annotations also carry `is_deleted`:
  the newest row of a deleted annotation says so, and FINAL drops it.
* Columns that a key or partition uses must never change for a row (project, start_time, ids),
  or a new version would land beside the old one instead of replacing it.
* Partitions are days of the span's start time, not months: FINAL is nearly free on a partition
  that is one merged part (measured at 10M spans: count() FINAL 1.4 s over unmerged parts, 66 ms
  merged), and a closed day settles into one part (background merges, or FactStore.settle())
  while a month would keep merging new parts all month long. The store reads with
  do_not_merge_across_partitions_select_final, which is right because a key never moves between
  partitions.
* Every time is DateTime64(6, 'UTC'): the zone is part of the type, so a server whose default
  or session time zone is not UTC reads and writes the same instants.
* Unknown token counts and costs are NULL, never 0, so means can skip them.
* Span annotations repeat the slicing facts of their span (prompt, version, model, status,
  start time): every evaluator aggregate is then one scan of one table; joining 10M spans at
  query time would need a hash table of every span id (gigabytes). The writer copies them from
  the span (see FactStore.write_span_annotations).
* Projects, statuses, models and versions are LowCardinality: few distinct values, and the
  GROUP BYs on them run over dictionary codes. Start times are sorted within a part, so they
  are stored as deltas; token counts are small integers (T64). Both are read by every chart:
  at 10M spans these codecs cut what a cold redraw reads from disk (figures in bench/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a name, and idempotent statements."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""

FACTS = Migration(
    version=1,
    name="facts",
    statements=(
        """
        CREATE TABLE IF NOT EXISTS llm_spans (
            span_id String,
            trace_id String,
            project LowCardinality(String),
            prompt_id LowCardinality(Nullable(String)),
            template_hash LowCardinality(Nullable(String)),
            prompt_version LowCardinality(Nullable(String)),
            model LowCardinality(Nullable(String)),
            start_time DateTime64(6, 'UTC') CODEC(Delta, LZ4),
            latency_ms Float64,
            prompt_tokens Nullable(UInt32) CODEC(T64, LZ4),
            completion_tokens Nullable(UInt32) CODEC(T64, LZ4),
            total_tokens Nullable(UInt64) CODEC(T64, LZ4),
            status LowCardinality(String),
            cost Nullable(Float64),
            synced_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(synced_at)
        PARTITION BY toDate(start_time)
        ORDER BY (project, start_time, span_id)
        """,
        """
        CREATE TABLE IF NOT EXISTS span_annotations (
            annotation_id String,
            span_id String,
            trace_id String,
            project LowCardinality(String),
            name LowCardinality(String),
            annotator_kind LowCardinality(String),
            label LowCardinality(Nullable(String)),
            score Nullable(Float64),
            updated_at DateTime64(6, 'UTC'),
            is_deleted UInt8,
            span_start_time DateTime64(6, 'UTC') CODEC(Delta, LZ4),
            prompt_id LowCardinality(Nullable(String)),
            template_hash LowCardinality(Nullable(String)),
            prompt_version LowCardinality(Nullable(String)),
            model LowCardinality(Nullable(String)),
            span_status LowCardinality(String),
            synced_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(synced_at, is_deleted)
        PARTITION BY toDate(span_start_time)
        ORDER BY (project, span_start_time, annotation_id)
        """,
        """
        CREATE TABLE IF NOT EXISTS trace_annotations (
            annotation_id String,
            trace_id String,
            project LowCardinality(String),
            name LowCardinality(String),
            annotator_kind LowCardinality(String),
            label LowCardinality(Nullable(String)),
            score Nullable(Float64),
            updated_at DateTime64(6, 'UTC'),
            is_deleted UInt8,
            synced_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(synced_at, is_deleted)
        ORDER BY (project, annotation_id)
        """,
    ),
)

# Pre-aggregated 15-minute slices of closed days (store/slices.py says how they are kept right).
# A slice row holds everything an aggregate needs from its calls: counts, sums with how many
# values were known, and the exact quantile state (every latency value, as ClickHouse's
# -State keeps it), so any grouping of slices merges into the same exact answer as the rows.
SLICES = Migration(
    version=2,
    name="slices",
    statements=(
        """
        CREATE TABLE IF NOT EXISTS span_slices (
            project LowCardinality(String),
            slice DateTime('UTC'),
            prompt_id LowCardinality(Nullable(String)),
            template_hash LowCardinality(Nullable(String)),
            prompt_version LowCardinality(Nullable(String)),
            model LowCardinality(Nullable(String)),
            status LowCardinality(String),
            n_part UInt64,
            errors_part UInt64,
            latency_part AggregateFunction(quantilesExactInclusive(0.5, 0.95, 0.99), Float64),
            latency_min_part Float64,
            latency_max_part Float64,
            tokens_part Nullable(UInt64),
            tokens_known_part UInt64,
            cost_part Nullable(Float64),
            cost_known_part UInt64
        ) ENGINE = MergeTree
        PARTITION BY toDate(slice)
        ORDER BY (project, slice)
        """,
        """
        CREATE TABLE IF NOT EXISTS annotation_slices (
            project LowCardinality(String),
            slice DateTime('UTC'),
            name LowCardinality(String),
            label LowCardinality(Nullable(String)),
            prompt_id LowCardinality(Nullable(String)),
            template_hash LowCardinality(Nullable(String)),
            prompt_version LowCardinality(Nullable(String)),
            model LowCardinality(Nullable(String)),
            span_status LowCardinality(String),
            annotations_part UInt64,
            scored_part UInt64,
            score_sum_part Float64,
            scores_part AggregateFunction(
                quantilesExactInclusive(0, 0.25, 0.5, 0.75, 1), Nullable(Float64)
            )
        ) ENGINE = MergeTree
        PARTITION BY toDate(slice)
        ORDER BY (project, slice)
        """,
        # When each day's slices were built, and when each day's facts were last written: a
        # day's slices are used only while no write came after their build.
        """
        CREATE TABLE IF NOT EXISTS slice_days (
            kind LowCardinality(String),
            day Date,
            built_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(built_at)
        ORDER BY (kind, day)
        """,
        """
        CREATE TABLE IF NOT EXISTS written_days (
            kind LowCardinality(String),
            day Date,
            written_at DateTime64(6, 'UTC')
        ) ENGINE = ReplacingMergeTree(written_at)
        ORDER BY (kind, day)
        """,
    ),
)

# Phoenix summarises trace annotations over a range of their traces' start times
# (services/annotation_watch.py compares those summaries with ours), so each trace annotation
# keeps its trace's start as Phoenix has it: NULL until read, and outside the sort key, since a
# late span that started earlier moves a trace's start. Annotations of traces that hold no LLM
# span live beside them in their own table: the pages never read them, but Phoenix's summaries
# count them, so the comparison must too.
TRACE_STARTS = Migration(
    version=3,
    name="trace_starts",
    statements=(
        """
        ALTER TABLE trace_annotations
        ADD COLUMN IF NOT EXISTS trace_start_time Nullable(DateTime64(6, 'UTC'))
        """,
        # The same columns, key and engine as trace_annotations, now that it has the start.
        "CREATE TABLE IF NOT EXISTS unsynced_trace_annotations AS trace_annotations",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (FACTS, SLICES, TRACE_STARTS)
