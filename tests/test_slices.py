"""Slices of closed days: every aggregate read through them equals the same read of the facts.

The property tests write random facts over three days (duplicates, late spans, edited and
deleted annotations), read every aggregate from the facts alone, build the slices, and read
again: the answers must be equal (sums to the last few bits, everything else exactly). The
other tests pin the rules that keep slices right: a write after a build sends its day back to
the facts, a failed write still marks its day, partial days and fine buckets never use slices.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from store import analytics, slices, views
from store.analytics import Filters
from store.facts import FactStore, SpanAnnotationRow, SpanRow
from store.sync_queries import clear_facts

from .test_store import (  # noqa: F401
    annotation,
    chdb_dir,
    chdb_http_url,
    fresh_store,
    span,
    store_url,
)

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
FUTURE = date(2100, 1, 1)
WHOLE = Filters(project="support", start=DAY0, end=DAY0 + timedelta(days=3))


@pytest.fixture
def store(chdb_dir) -> Iterator[FactStore]:  # noqa: F811
    """A migrated chdb store of its own."""
    opened = fresh_store(f"chdb://{chdb_dir}")
    yield opened
    opened.drop()
    opened.close()


@pytest.fixture
def any_store(store_url: str) -> Iterator[FactStore]:  # noqa: F811
    """A migrated store of its own, on every backend (chdb, chdb over HTTP, a server if given)."""
    opened = fresh_store(store_url)
    yield opened
    opened.drop()
    opened.close()


def _close(a: Any, b: Any) -> bool:
    """Compare results field by field; floats to a relative 1e-12 (sums may differ in order)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    if is_dataclass(a) and is_dataclass(b) and not isinstance(a, type):
        return type(a) is type(b) and all(
            _close(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


def _everything(store: FactStore, filters: Filters, timezone: str = "UTC") -> dict[str, Any]:
    """Read every aggregate that slices serve, for one set of filters."""
    names = {"prompt-0": "zero", "prompt-1": "one"}
    return {
        "redraw": analytics.redraw(store, filters, timezone=timezone),
        "by_model": analytics.redraw(store, filters, "model", timezone=timezone),
        "hourly": analytics.time_series(
            store, filters, "version", timezone=timezone, size=timedelta(hours=1)
        ),
        "fine": analytics.time_series(store, filters, timezone=timezone, size=timedelta(minutes=5)),
        "kpis": analytics.kpis(store, filters),
        "breakdown": analytics.breakdown(store, filters, "model"),
        "top": analytics.top_prompts(store, filters, names),
        "summary": analytics.score_summary(store, filters),
        "trend": analytics.evaluation_trend(store, filters, timezone=timezone),
        "spreads": views.score_spreads(store, filters),
        "histogram": views.latency_histogram(store, filters),
        "spans": analytics.span_count(store, filters),
        "evaluations": views.evaluation_count(store, filters),
        "options": analytics.filter_options(store),
    }


def _facts(seed_spans: list[tuple[int, int, int, bool]]) -> list[SpanRow]:
    """Build spans from (day, minute, variant, error) tuples drawn by Hypothesis."""
    rows = []
    for index, (day, minute, variant, error) in enumerate(seed_spans):
        rows.append(
            span(
                index,
                start_time=DAY0 + timedelta(days=day, minutes=minute),
                prompt_id=(None, "prompt-0", "prompt-1")[variant % 3],
                template_hash=(None, "hash-0", "hash-1")[variant % 3],
                prompt_version=("v1", "v2", None)[variant % 3 if variant < 6 else 0],
                model=("gpt-4o", None, "claude")[variant % 3],
                latency_ms=10.0 + (index * 7919) % 1000 + variant / 7,
                total_tokens=None if variant == 4 else 100 + index,
                cost=None if variant == 5 else 0.001 * (1 + index % 3),
                status="ERROR" if error else "OK",
            )
        )
    return rows


def _notes(rows: list[SpanRow]) -> list[SpanAnnotationRow]:
    """Two evaluators, one of them sometimes label-only."""
    notes = []
    for index, row in enumerate(rows):
        if index % 3:
            notes.append(annotation(row, "correctness", (index % 10) / 10))
        if index % 2:
            label_only = index % 4 == 1
            notes.append(
                annotation(
                    row,
                    "review",
                    None if label_only else float(index % 5),
                    label=("pass", "fail")[index % 2 if label_only else 0],
                )
            )
    return notes


SPANS = st.lists(
    st.tuples(
        st.integers(0, 2),  # day
        st.integers(0, 1439),  # minute of the day
        st.integers(0, 6),  # prompt, version, model variant
        st.booleans(),  # error
    ),
    min_size=1,
    max_size=60,
)


# Each example costs about a second of engine work, so Hypothesis does not shrink: a failure
# shows the example as drawn (shrinking one took over five minutes).
@settings(
    max_examples=8,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    drawn=SPANS,
    later=SPANS,
    timezone=st.sampled_from(["UTC", "Asia/Kathmandu", "America/St_Johns"]),
)
def test_slices_answer_what_the_facts_answer(store: FactStore, drawn, later, timezone) -> None:
    clear_facts(store)
    rows = _facts(drawn)
    notes = _notes(rows)
    store.write_spans(rows)
    store.write_spans(rows[: len(rows) // 2])  # a page read twice
    store.write_span_annotations(notes)
    truth = _everything(store, WHOLE, timezone)
    assert slices.refresh(store, before=FUTURE) >= 1
    assert slices.covered_days(store, slices.SPAN_KIND, WHOLE, None)
    assert _close(_everything(store, WHOLE, timezone), truth)

    # Late facts land on built days: those days go back to the facts until built again.
    more = [replace(r, span_id=f"late-{r.span_id}") for r in _facts(later)]
    edited = [replace(n, score=None if n.score is None else 1 - n.score / 5) for n in notes[::3]]
    deleted = [replace(n, is_deleted=True) for n in notes[1::4]]
    store.write_spans(more)
    store.write_span_annotations([*_notes(more), *edited, *deleted])
    span_days = {r.start_time.date() for r in more}
    assert not span_days & set(slices.covered_days(store, slices.SPAN_KIND, WHOLE, None))
    note_days = {n.span_start_time.date() for n in [*_notes(more), *edited, *deleted]}
    assert not note_days & set(slices.covered_days(store, slices.ANNOTATION_KIND, WHOLE, None))
    mixed = _everything(store, WHOLE, timezone)
    slices.clear(store)
    facts_only = _everything(store, WHOLE, timezone)
    assert _close(mixed, facts_only)
    slices.refresh(store, before=FUTURE)
    assert _close(_everything(store, WHOLE, timezone), facts_only)


def test_a_write_after_a_build_sends_its_day_back_to_the_facts(any_store: FactStore) -> None:
    store = any_store
    rows = [span(i, start_time=DAY0 + timedelta(hours=i)) for i in range(30)]
    store.write_spans(rows)
    assert slices.refresh(store, before=FUTURE) == 2  # two days of spans, no annotations
    assert slices.refresh(store, before=FUTURE) == 0  # nothing changed since
    assert slices.fresh_days(store, slices.SPAN_KIND) == [DAY0.date(), DAY0.date() + timedelta(1)]
    store.write_spans([span(99, start_time=DAY0 + timedelta(hours=3))])
    assert slices.fresh_days(store, slices.SPAN_KIND) == [DAY0.date() + timedelta(1)]
    assert analytics.span_count(store, WHOLE) == 31
    assert slices.refresh(store, before=FUTURE) == 1
    assert analytics.span_count(store, WHOLE) == 31


def test_only_closed_days_are_built(store: FactStore) -> None:
    store.write_spans([span(i, start_time=DAY0 + timedelta(hours=10 * i)) for i in range(7)])
    assert slices.refresh(store, before=DAY0.date() + timedelta(days=2)) == 2
    assert len(slices.fresh_days(store, slices.SPAN_KIND)) == 2
    assert analytics.span_count(store, Filters(project="support")) == 7


def test_a_failed_write_still_marks_the_days_it_reached(store: FactStore, monkeypatch) -> None:
    store.write_spans([span(i, start_time=DAY0 + timedelta(hours=i)) for i in range(5)])
    slices.refresh(store, before=FUTURE)
    insert = store.transport.insert

    def failing(table: str, columns: Any, rows: Any) -> int:
        insert(table, columns, rows)  # the rows land, then the connection drops
        raise RuntimeError("connection lost")

    monkeypatch.setattr(store.transport, "insert", failing)
    with pytest.raises(RuntimeError):
        store.write_spans([span(50, start_time=DAY0 + timedelta(hours=2))])
    monkeypatch.undo()
    assert slices.fresh_days(store, slices.SPAN_KIND) == []
    assert analytics.span_count(store, WHOLE) == 6


def test_partial_days_and_fine_buckets_read_the_facts(store: FactStore) -> None:
    store.write_spans([span(i, start_time=DAY0 + timedelta(minutes=50 * i)) for i in range(80)])
    slices.refresh(store, before=FUTURE)
    noon = Filters(project="support", start=DAY0 + timedelta(hours=12), end=DAY0 + timedelta(2))
    assert slices.covered_days(store, slices.SPAN_KIND, noon, None) == [DAY0.date() + timedelta(1)]
    assert slices.covered_days(store, slices.SPAN_KIND, WHOLE, timedelta(minutes=5)) == []
    assert slices.covered_days(store, slices.SPAN_KIND, WHOLE, timedelta(minutes=20)) == []
    sliced = _everything(store, noon)
    slices.clear(store)
    assert _close(sliced, _everything(store, noon))


def test_clearing_the_facts_clears_the_slices(store: FactStore) -> None:
    store.write_spans([span(i, start_time=DAY0 + timedelta(hours=i)) for i in range(5)])
    slices.refresh(store, before=FUTURE)
    clear_facts(store)
    assert slices.fresh_days(store, slices.SPAN_KIND) == []
    assert analytics.span_count(store, WHOLE) == 0
    assert analytics.kpis(store, WHOLE).metrics.count == 0


def test_a_dead_build_leaves_nothing_behind(store: FactStore) -> None:
    store.write_spans([span(i, start_time=DAY0 + timedelta(hours=i)) for i in range(5)])
    store.transport.command("CREATE TABLE span_slices_build_deadbeef0000 AS span_slices")
    slices.SCRATCH_MAX_AGE, saved = timedelta(seconds=-60), slices.SCRATCH_MAX_AGE
    try:
        slices.refresh(store, before=FUTURE)
    finally:
        slices.SCRATCH_MAX_AGE = saved
    tables = store.transport.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase()"
    ).rows
    assert not [name for (name,) in tables if "_build_" in str(name)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    scores=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False, width=64),
            st.sampled_from([0.0, -0.0, 1.0, -1.0, 5e-324, -5e-324]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_score_spreads_select_exact_quartiles_of_any_floats(store: FactStore, scores) -> None:
    clear_facts(store)
    rows = [span(i, start_time=DAY0 + timedelta(minutes=i)) for i in range(len(scores))]
    store.write_spans(rows)
    store.write_span_annotations(
        annotation(row, "any", score, label=None) for row, score in zip(rows, scores, strict=True)
    )
    by_key: dict[tuple[Any, ...], list[float]] = {}
    for row, score in zip(rows, scores, strict=True):
        by_key.setdefault((row.prompt_id, row.prompt_version), []).append(score)
    spreads = views.score_spreads(store, Filters(project="support"))
    assert len(spreads) == len(by_key)
    for spread in spreads:
        values = sorted(by_key[(spread.prompt_id, spread.prompt_version)])
        n = len(values)
        expected = [values[0]]
        for q in (0.25, 0.5, 0.75):
            h = (n - 1) * q
            low = math.floor(h)
            high = min(low + 1, n - 1)
            expected.append(values[low] + (h - low) * (values[high] - values[low]))
        expected.append(values[-1])
        got = [spread.minimum, spread.q1, spread.median, spread.q3, spread.maximum]
        assert spread.scored == n
        assert all(a == b or math.isclose(a, b) for a, b in zip(got, expected, strict=True))
