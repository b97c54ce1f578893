"""Numbers analysts can trust: what the dashboard serves, checked against the planned data.

The test sets are made the way real spans are (tests/otlp_sets.py): OpenInference attributes
sent over OTLP to the session's real Phoenix, prompts in its registry and annotations through
its REST API. One sync (with the worker's upkeep: settled parts, slices of closed days) reads
them into a fresh store; the tests then download the CSV exports as a logged-in analyst, the
whole HTTP path, and read the store's own aggregates where a page has no export. Every expected
number is computed here, in plain Python and numpy, from the plan: never by the code under test.

Each test owns its project; spans are spread over the last three days, so closed days are read
from slices and the rest from the facts, whatever the time of day.
"""

from __future__ import annotations

import csv
import io
import math
import random
import re
import statistics
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from flask.testing import FlaskClient

from components.kpis import create_kpi_cards
from devtools.phoenix import PhoenixServer
from services import prompt_filters, tables
from services.container import Services
from services.filters import parse_query
from store import analytics as store_analytics

from .conftest import synced_phoenix_app
from .otlp_sets import (
    PlannedAnnotation,
    PlannedSpan,
    post_annotations,
    register_prompt,
    send_spans,
)

pytestmark = pytest.mark.integration

VERSIONS_PROJECT = "trust-versions"
UNKNOWN_PROJECT = "trust-unknown"
EVALUATORS_PROJECT = "trust-evaluators"
# In no price table, Phoenix's included: its calls have no cost, which is unknown, not $0.
UNPRICED_MODEL = "acme-inhouse-llm-0"
# Phoenix 20.26.1's price of gpt-4o per input and output token (its model_cost_manifest.json).
PRICED_MODEL = "gpt-4o"
PRICES = {PRICED_MODEL: (2.5e-6, 1e-5)}
# What an unknown value must never be written as in a CSV cell.
NOT_EMPTY_UNKNOWNS = {"nan", "NaN", "None", "null", "NULL", "inf", "-inf", "<NA>"}
REL = 1e-12  # exports keep 15 significant digits


# The plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    """Calls of one (prompt, version) in one project, and which of them fail or lack tokens."""

    project: str
    prompt: str  # its registry name
    version: str
    template: str
    calls: int
    errors: frozenset[int] = frozenset()
    no_tokens: frozenset[int] = frozenset()
    priced: frozenset[int] = frozenset()  # calls made to PRICED_MODEL, the rest to UNPRICED_MODEL


# (a) Two prompts with different templates both label a version `v1`; the second also has `v2`.
FAQ_PROMPT = "trust-faq-answer"
TICKET_PROMPT = "trust-ticket-summary"
TEMPLATES = {
    (FAQ_PROMPT, "v1"): "Answer the customer's FAQ question {question} from {article}.",
    (FAQ_PROMPT, "v2"): "Answer {question} from {article} in two sentences, citing it.",
    (TICKET_PROMPT, "v1"): "Summarize the support ticket {ticket} for the triage queue.",
    (TICKET_PROMPT, "v2"): "Summarize {ticket} as problem, impact and next step, one line each.",
    # (b) and (c): one prompt each, two versions.
    ("trust-unknown-answer", "v1"): "Reply to {message} politely.",
    ("trust-unknown-answer", "v2"): "Reply to {message} politely, and quote the order number.",
    ("trust-unknown-answer", "v3"): "Reply to {message}; say when the order will arrive.",
    ("trust-eval-answer", "v1"): "Explain {topic} to a new customer.",
    (
        "trust-eval-answer",
        "v2",
    ): "Explain {topic} to a new customer in plain words, with an example.",
}
GROUPS = (
    Group(
        VERSIONS_PROJECT,
        FAQ_PROMPT,
        "v1",
        TEMPLATES[FAQ_PROMPT, "v1"],
        9,
        frozenset({2, 7}),
        frozenset({4}),
    ),
    Group(
        VERSIONS_PROJECT,
        TICKET_PROMPT,
        "v1",
        TEMPLATES[TICKET_PROMPT, "v1"],
        7,
        frozenset({3}),
        frozenset({0, 5}),
    ),
    Group(VERSIONS_PROJECT, TICKET_PROMPT, "v2", TEMPLATES[TICKET_PROMPT, "v2"], 6),
    Group(
        UNKNOWN_PROJECT,
        "trust-unknown-answer",
        "v1",
        TEMPLATES["trust-unknown-answer", "v1"],
        12,
        frozenset({1, 6, 11}),
        frozenset({0, 3, 4, 9}),
    ),
    Group(
        UNKNOWN_PROJECT,
        "trust-unknown-answer",
        "v2",
        TEMPLATES["trust-unknown-answer", "v2"],
        10,
        frozenset({5}),
        frozenset({2, 7, 8}),
        priced=frozenset({0, 2, 4, 6, 8}),  # one of them without tokens: no cost either
    ),
    # Not one call states its tokens: a sum of nothing is unknown, not 0.
    Group(
        UNKNOWN_PROJECT,
        "trust-unknown-answer",
        "v3",
        TEMPLATES["trust-unknown-answer", "v3"],
        3,
        no_tokens=frozenset({0, 1, 2}),
    ),
    Group(
        EVALUATORS_PROJECT,
        "trust-eval-answer",
        "v1",
        TEMPLATES["trust-eval-answer", "v1"],
        10,
        frozenset({3}),
    ),
    Group(
        EVALUATORS_PROJECT,
        "trust-eval-answer",
        "v2",
        TEMPLATES["trust-eval-answer", "v2"],
        8,
    ),
)
# Evaluators on different scales, and one that only labels.
CORRECTNESS, HELPFULNESS, HUMAN_REVIEW = "correctness", "helpfulness", "human_review"
SCORED = (CORRECTNESS, HELPFULNESS)
EVALUATORS = (*SCORED, HUMAN_REVIEW)


@dataclass(frozen=True)
class Call:
    """A planned span with the prompt and version it was planned under."""

    span: PlannedSpan
    prompt: str
    version: str


@dataclass(frozen=True)
class Plan:
    """Everything sent to Phoenix, and what each span was planned as."""

    calls: tuple[Call, ...]
    annotations: tuple[PlannedAnnotation, ...]

    def of(self, project: str) -> list[Call]:
        """Return the calls of one project."""
        return [c for c in self.calls if c.span.project == project]

    def annotations_of(self, project: str) -> list[PlannedAnnotation]:
        """Return the annotations of one project's spans."""
        return [a for a in self.annotations if a.project == project]


def _plan(anchor: datetime) -> Plan:
    """Plan every span and annotation; only the times depend on `anchor`, ids and values never."""
    calls: list[Call] = []
    step = {project: 0 for project in (VERSIONS_PROJECT, UNKNOWN_PROJECT, EVALUATORS_PROJECT)}
    for group in GROUPS:
        rng = random.Random(f"trust:{group.project}:{group.prompt}:{group.version}")
        for i in range(group.calls):
            # Whole milliseconds, a long tail: the percentile methods disagree on these.
            if rng.random() < 0.7:
                latency = float(rng.randint(90, 1500))
            else:
                latency = float(rng.randint(1500, 12_000))
            prompt_tokens, completion_tokens = rng.randint(40, 900), rng.randint(5, 400)
            known = i not in group.no_tokens
            # Every 3 h 17 min back over about three days: some in closed days (their slices),
            # some in today's and yesterday's facts.
            start = anchor - step[group.project] * timedelta(hours=3, minutes=17)
            step[group.project] += 1
            span = PlannedSpan.planned(
                group.project,
                f"{group.prompt}:{group.version}:{i}",
                start=start,
                latency_ms=latency,
                status="ERROR" if i in group.errors else "OK",
                model=PRICED_MODEL if i in group.priced else UNPRICED_MODEL,
                template=group.template,
                version=group.version,
                variables={"question": f"question {i}"},
                metadata={"prompt_name": group.prompt},
                prompt_tokens=prompt_tokens if known else None,
                completion_tokens=completion_tokens if known else None,
                total_tokens=prompt_tokens + completion_tokens if known else None,
                input_value=f"input {i}",
                output_value=f"output {i}",
            )
            calls.append(Call(span, group.prompt, group.version))
    return Plan(tuple(calls), tuple(_plan_annotations(calls)))


def _plan_annotations(calls: Sequence[Call]) -> Iterator[PlannedAnnotation]:
    """Score (0..1 and 1..5) and label the evaluators project's calls, some of each left out."""
    rng = random.Random("trust:annotations")
    index: Counter[str] = Counter()
    for call in calls:
        if call.span.project != EVALUATORS_PROJECT:
            continue
        i = index[call.version]
        index[call.version] += 1
        if i % 5 != 4:
            score = rng.choice((0.0, 0.25, 0.5, 0.75, 1.0))
            label = "correct" if score >= 0.5 else "incorrect"
            yield PlannedAnnotation.on(call.span, CORRECTNESS, "LLM", label=label, score=score)
        if i % 2 == 0:
            yield PlannedAnnotation.on(
                call.span, HELPFULNESS, "LLM", score=float(rng.randint(1, 5))
            )
        if (call.version == "v1" and i % 3 == 0) or (call.version == "v2" and i % 4 == 1):
            label = rng.choice(("approve", "reject", "needs_changes"))
            yield PlannedAnnotation.on(call.span, HUMAN_REVIEW, "HUMAN", label=label)


# The independent computation --------------------------------------------------------------------


def percentiles(latencies: Sequence[float]) -> list[float]:
    """p50, p95 and p99 by linear interpolation between order statistics (numpy's default)."""
    return [float(v) for v in np.percentile(np.array(latencies, dtype=float), [50, 95, 99])]


@dataclass(frozen=True)
class Expected:
    """The metrics of a set of planned calls."""

    count: int
    errors: int
    p50: float
    p95: float
    p99: float
    tokens: int | None  # the sum of the known totals; None when none is known
    tokens_unknown: int
    tokens_mean: float | None
    cost: float | None  # the sum of the known costs; None when none is known
    cost_unknown: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.count


def cost(span: PlannedSpan) -> float | None:
    """What Phoenix charges for a call: a priced model's token prices, else unknown."""
    if span.model not in PRICES or span.prompt_tokens is None or span.completion_tokens is None:
        return None
    per_input, per_output = PRICES[span.model]
    return span.prompt_tokens * per_input + span.completion_tokens * per_output


def expect(calls: Sequence[Call]) -> Expected:
    """Compute the metrics of calls from the plan alone."""
    known = [c.span.total_tokens for c in calls if c.span.total_tokens is not None]
    costs = [v for v in (cost(c.span) for c in calls) if v is not None]
    p50, p95, p99 = percentiles([c.span.latency_ms for c in calls])
    return Expected(
        count=len(calls),
        errors=sum(c.span.status == "ERROR" for c in calls),
        p50=p50,
        p95=p95,
        p99=p99,
        tokens=sum(known) if known else None,
        tokens_unknown=len(calls) - len(known),
        tokens_mean=statistics.fmean(known) if known else None,
        cost=math.fsum(costs) if costs else None,
        cost_unknown=len(calls) - len(costs),
    )


def by_version(calls: Sequence[Call]) -> dict[tuple[str, str], list[Call]]:
    """Group planned calls by (prompt, version)."""
    groups: dict[tuple[str, str], list[Call]] = {}
    for call in calls:
        groups.setdefault((call.prompt, call.version), []).append(call)
    return groups


@dataclass(frozen=True)
class EvaluatorExpected:
    """One evaluator over some calls: its annotations, scores and label counts."""

    annotations: int
    scores: list[float] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None


def expect_evaluators(
    annotations: Sequence[PlannedAnnotation], span_ids: set[str]
) -> dict[str, EvaluatorExpected]:
    """Per evaluator name: what the plan annotated on these spans."""
    found: dict[str, EvaluatorExpected] = {}
    for a in annotations:
        if a.span_id not in span_ids:
            continue
        was = found.get(a.name, EvaluatorExpected(0))
        scores = [*was.scores, *([a.score] if a.score is not None else [])]
        labels = Counter(was.labels)
        if a.label is not None:
            labels[a.label] += 1
        found[a.name] = EvaluatorExpected(was.annotations + 1, scores, labels)
    return found


# The served numbers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """The synced app, a logged-in analyst's client, and the plan it was synced from."""

    app: Any
    client: FlaskClient
    services: Services
    plan: Plan


@pytest.fixture(scope="module")
def served(
    phoenix_server: PhoenixServer,
    migrated_sqlite_template: Path,
    chdb_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    """Send the plan to the session's Phoenix, sync it once into a fresh store, log in."""
    anchor = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    plan = _plan(anchor)
    for prompt in sorted({name for name, _version in TEMPLATES}):
        versions = [(v, text) for (name, v), text in TEMPLATES.items() if name == prompt]
        register_prompt(phoenix_server.url, prompt, versions)
    send_spans(phoenix_server.url, [c.span for c in plan.calls])
    post_annotations(phoenix_server.url, plan.annotations)

    with synced_phoenix_app(
        phoenix_server.url,
        migrated_sqlite_template,
        chdb_dir,
        tmp_path_factory.mktemp("trust"),
    ) as synced:
        yield Served(synced.app, synced.client, synced.services, plan)


def export(served: Served, table: str, **query: str) -> tuple[list[str], list[dict[str, str]]]:
    """Download a table's CSV export as the logged-in analyst: its header and its rows."""
    response = served.client.get(f"/api/export/analytics/{table}.csv?{urlencode(query)}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = response.get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header, body = rows[0], rows[1:]
    for row in body:
        # Unknown is an empty cell, never a spelled-out missing value.
        assert not NOT_EMPTY_UNKNOWNS & set(row), (table, row)
    return header, [dict(zip(header, row, strict=True)) for row in body]


def number(cell: str) -> float | None:
    """Read a numeric CSV cell; an empty cell is unknown."""
    return None if cell == "" else float(cell)


def assert_number(cell: str, expected: float | None, what: object) -> None:
    """A cell holds the expected number (to the 15 digits exports keep), or is empty if None."""
    if expected is None:
        assert cell == "", (what, cell)
    else:
        assert cell != "", (what, "empty")
        assert float(cell) == pytest.approx(expected, rel=REL, abs=1e-12), (what, cell)


def assert_cost(cell: str, expected: float | None, what: object) -> None:
    """A cost cell holds the expected cost (Phoenix computes it in its own order), or is empty."""
    if expected is None:
        assert cell == "", (what, cell)
    else:
        assert cell != "" and float(cell) == pytest.approx(expected, rel=1e-9), (what, cell)


def assert_metrics(row: Mapping[str, str], want: Expected, what: object) -> None:
    """A versions-export row holds the expected count, errors, latency and tokens."""
    assert int(row["count"]) == want.count, what
    assert_number(row["error_rate"], want.error_rate, (what, "error_rate"))
    assert_number(row["p50_ms"], want.p50, (what, "p50"))
    assert_number(row["p95_ms"], want.p95, (what, "p95"))
    assert_number(row["p99_ms"], want.p99, (what, "p99"))
    assert row["tokens"] == ("" if want.tokens is None else str(want.tokens)), what
    assert int(row["tokens_unknown"]) == want.tokens_unknown, what
    assert_cost(row["cost"], want.cost, (what, "cost"))
    assert int(row["cost_unknown"]) == want.cost_unknown, what


def store_filters(served: Served, **query: str) -> store_analytics.Filters:
    """The store filters the pages resolve from a URL query."""
    state, problems = parse_query(query)
    assert problems == []
    with served.services.sessions() as db:
        return prompt_filters.resolve(db, state)


def comparison_side(served: Served, project: str, prompt: str, version: str) -> str:
    """The a=/b= value the analytics page offers for one (prompt, version) of a project."""
    filters = store_filters(served, project=project)
    with served.services.sessions() as db:
        names = prompt_filters.prompt_names(db)
    rows = store_analytics.breakdown(served.services.store, filters, "version")
    sides = [
        tables.version_value(r.key.prompt_id, r.key.prompt_version)
        for r in rows
        if names.name(r.key.prompt_id, r.key.template_hash) == prompt
        and r.key.prompt_version == version
    ]
    assert len(sides) == 1, (prompt, version, sides)
    return sides[0]


def comparison(served: Served, project: str, a: str, b: str) -> dict[str, dict[str, str]]:
    """Download the comparison export of two sides, by metric."""
    _header, rows = export(served, "comparison", project=project, a=a, b=b)
    by_metric = {row["metric"]: row for row in rows}
    assert len(by_metric) == len(rows), "a metric is listed twice"
    return by_metric


# (a) Versions are (prompt, version) ------------------------------------------------------------


def test_planned_latencies_tell_the_percentile_methods_apart(served: Served) -> None:
    """The checks below would catch nearest-rank or lower/higher percentiles, not only bugs."""
    for calls in by_version(served.plan.calls).values():
        latencies = np.array([c.span.latency_ms for c in calls])
        linear = np.percentile(latencies, 95)
        assert all(
            np.percentile(latencies, 95, method=m) != linear
            for m in ("lower", "higher", "nearest", "inverted_cdf")
        )


def test_versions_are_per_prompt_and_their_metrics_are_exact(served: Served) -> None:
    plan = by_version(served.plan.of(VERSIONS_PROJECT))
    header, rows = export(served, "versions", project=VERSIONS_PROJECT)
    assert header[:11] == [c.id for c in tables.VERSION_COLUMNS]
    found = {(r["prompt"], r["prompt_version"]): r for r in rows}
    assert len(found) == len(rows), "one (prompt, version) is split over several rows"
    # Two prompts label a version v1: two rows, never one row mixing both prompts' calls.
    assert (
        set(found)
        == set(plan)
        == {
            (FAQ_PROMPT, "v1"),
            (TICKET_PROMPT, "v1"),
            (TICKET_PROMPT, "v2"),
        }
    )
    assert sorted(r["prompt"] for r in rows if r["prompt_version"] == "v1") == [
        FAQ_PROMPT,
        TICKET_PROMPT,
    ]
    for key, calls in plan.items():
        assert_metrics(found[key], expect(calls), key)
        # Made-up model: Phoenix prices none of these calls.
        assert found[key]["cost"] == ""
        assert int(found[key]["cost_unknown"]) == len(calls)

    # Narrowed to one prompt by name: only its rows, with the same numbers.
    _header, ticket = export(served, "versions", project=VERSIONS_PROJECT, prompt=TICKET_PROMPT)
    assert {(r["prompt"], r["prompt_version"]) for r in ticket} == {
        (TICKET_PROMPT, "v1"),
        (TICKET_PROMPT, "v2"),
    }
    for row in ticket:
        assert row == found[row["prompt"], row["prompt_version"]]
    # Narrowed to a version label: both prompts' v1, each on its own.
    _header, v1 = export(served, "versions", project=VERSIONS_PROJECT, versions="v1")
    assert {(r["prompt"], r["prompt_version"]): r for r in v1} == {
        key: row for key, row in found.items() if key[1] == "v1"
    }


def test_top_prompts_merge_a_prompts_versions_and_nothing_else(served: Served) -> None:
    plan = served.plan.of(VERSIONS_PROJECT)
    _header, rows = export(served, "top-prompts", project=VERSIONS_PROJECT)
    found = {r["prompt"]: r for r in rows}
    assert set(found) == {FAQ_PROMPT, TICKET_PROMPT}
    for name, row in found.items():
        want = expect([c for c in plan if c.prompt == name])
        assert int(row["calls"]) == want.count, name
        assert_number(row["error_rate"], want.error_rate, name)
        assert_number(row["p95_ms"], want.p95, name)
        assert row["cost"] == ""
    assert [r["prompt"] for r in rows] == [TICKET_PROMPT, FAQ_PROMPT]  # busiest first


def test_comparing_two_prompts_v1_keeps_each_prompts_calls(served: Served) -> None:
    plan = by_version(served.plan.of(VERSIONS_PROJECT))
    a = comparison_side(served, VERSIONS_PROJECT, FAQ_PROMPT, "v1")
    b = comparison_side(served, VERSIONS_PROJECT, TICKET_PROMPT, "v1")
    want_a, want_b = expect(plan[FAQ_PROMPT, "v1"]), expect(plan[TICKET_PROMPT, "v1"])
    rows = comparison(served, VERSIONS_PROJECT, a, b)
    for metric, value_a, value_b in (
        ("p50 latency (ms)", want_a.p50, want_b.p50),
        ("p95 latency (ms)", want_a.p95, want_b.p95),
        ("tokens per call", want_a.tokens_mean, want_b.tokens_mean),
        ("error rate", want_a.error_rate, want_b.error_rate),
    ):
        row = rows[metric]
        # Each n is what its value is over: tokens per call over calls with known tokens.
        known = metric == "tokens per call"
        n_a = want_a.count - (want_a.tokens_unknown if known else 0)
        n_b = want_b.count - (want_b.tokens_unknown if known else 0)
        assert (int(row["n_a"]), int(row["n_b"])) == (n_a, n_b), metric
        assert_number(row["a"], value_a, (metric, "a"))
        assert_number(row["b"], value_b, (metric, "b"))
        assert value_a is not None and value_b is not None
        assert_number(row["delta"], value_b - value_a, (metric, "delta"))


def test_filters_narrow_the_numbers_exactly(served: Served) -> None:
    """A custom window is half-open [start, end); status and model keep exactly their calls."""
    calls = sorted(served.plan.of(VERSIONS_PROJECT), key=lambda c: c.span.start)
    # Bounds on two calls' own start times, the window's edges inside days (read from facts).
    start, end = calls[4].span.start, calls[15].span.start
    inside = [c for c in calls if start <= c.span.start < end]
    assert 0 < len(inside) < len(calls)
    window = {"range": "custom", "start": start.isoformat(), "end": end.isoformat()}
    for query, kept in (
        (window, inside),
        ({"status": "ERROR"}, [c for c in calls if c.span.status == "ERROR"]),
        ({"status": "OK", **window}, [c for c in inside if c.span.status == "OK"]),
    ):
        _header, rows = export(served, "versions", project=VERSIONS_PROJECT, **query)
        plan = by_version(kept)
        found = {(r["prompt"], r["prompt_version"]): r for r in rows}
        assert set(found) == set(plan), query
        for key, group in plan.items():
            assert_metrics(found[key], expect(group), (query, key))

    unknown = served.plan.of(UNKNOWN_PROJECT)
    _header, rows = export(served, "versions", project=UNKNOWN_PROJECT, model=PRICED_MODEL)
    plan = by_version([c for c in unknown if c.span.model == PRICED_MODEL])
    assert {(r["prompt"], r["prompt_version"]) for r in rows} == set(plan)
    for row in rows:
        assert_metrics(row, expect(plan[row["prompt"], row["prompt_version"]]), row)


# (b) Unknown is not zero ----------------------------------------------------------------------


def test_unknown_tokens_and_cost_are_counted_apart_never_as_zero(served: Served) -> None:
    calls = served.plan.of(UNKNOWN_PROJECT)
    plan = by_version(calls)
    prompt = "trust-unknown-answer"
    # The set has teeth: every version lacks some tokens and some cost, one lacks all tokens,
    # one has known costs beside unknown ones.
    assert all(expect(group).tokens_unknown for group in plan.values())
    assert all(expect(group).cost_unknown for group in plan.values())
    assert expect(plan[prompt, "v3"]).tokens is None
    assert expect(plan[prompt, "v2"]).cost is not None
    _header, rows = export(served, "versions", project=UNKNOWN_PROJECT)
    found = {(r["prompt"], r["prompt_version"]): r for r in rows}
    assert set(found) == set(plan)
    for key, group in plan.items():
        # Tokens and cost: sums of the known values, the unknown counted beside them;
        # nothing known at all is an empty cell, not 0.
        assert_metrics(found[key], expect(group), key)

    # The headline numbers: tokens over known values, the unknown counted beside them.
    store = served.services.store
    kpis = store_analytics.kpis(store, store_filters(served, project=UNKNOWN_PROJECT))
    overall = expect(calls)
    assert overall.tokens is not None and overall.tokens_mean is not None
    assert overall.cost is not None
    m = kpis.metrics
    assert (m.count, m.errors) == (overall.count, overall.errors)
    assert (m.tokens, m.tokens_unknown) == (overall.tokens, overall.tokens_unknown)
    assert m.tokens_mean == pytest.approx(overall.tokens_mean, rel=REL)
    assert m.cost == pytest.approx(overall.cost, rel=1e-9)
    assert m.cost_mean == pytest.approx(overall.cost / (overall.count - overall.cost_unknown))
    assert m.cost_unknown == overall.cost_unknown
    assert _texts(create_kpi_cards("analytics", kpis))["analytics-kpi-tokens"] == (
        f"{overall.tokens:,}"
    )
    # Where nothing is known the cards say so, with the "no data" dash rather than 0 or $0.00.
    none = store_analytics.kpis(
        store, store_filters(served, project=UNKNOWN_PROJECT, versions="v3")
    )
    assert (none.metrics.count, none.metrics.tokens, none.metrics.cost) == (3, None, None)
    assert none.metrics.tokens_mean is None and none.metrics.cost_mean is None
    cards = _texts(create_kpi_cards("analytics", none))
    assert cards["analytics-kpi-tokens"] == cards["analytics-kpi-cost"] == "\u2013"


def test_unknown_values_are_empty_cells_in_every_row_export(served: Served) -> None:
    planned = {c.span.span_id: c for c in served.plan.of(UNKNOWN_PROJECT)}
    _header, calls = export(served, "llm-calls", project=UNKNOWN_PROJECT)
    assert sorted(r["span_id"] for r in calls) == sorted(planned)
    for row in calls:
        call = planned[row["span_id"]]
        span = call.span
        assert (row["trace_id"], row["project"]) == (span.trace_id, UNKNOWN_PROJECT)
        assert (row["prompt"], row["prompt_version"]) == (call.prompt, call.version)
        assert (row["model"], row["status"]) == (span.model, span.status)
        assert_number(row["latency_ms"], span.latency_ms, span.span_id)
        assert datetime.fromisoformat(row["start_time"]) == span.start
        for column in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = getattr(span, column)
            assert row[column] == ("" if value is None else str(value)), (column, row)
        assert_cost(row["cost"], cost(span), span.span_id)
    _header, traces = export(served, "traces", project=UNKNOWN_PROJECT)
    by_trace = {c.span.trace_id: c.span for c in planned.values()}
    assert sorted(r["trace_id"] for r in traces) == sorted(by_trace)
    for row in traces:
        span = by_trace[row["trace_id"]]
        assert row["llm_calls"] == "1"
        assert row["total_tokens"] == ("" if span.total_tokens is None else str(span.total_tokens))
        assert row["tokens_unknown"] == ("0" if span.tokens_known else "1")


def test_comparison_means_tokens_over_known_calls(served: Served) -> None:
    plan = by_version(served.plan.of(UNKNOWN_PROJECT))
    prompt = "trust-unknown-answer"
    a = comparison_side(served, UNKNOWN_PROJECT, prompt, "v1")
    b = comparison_side(served, UNKNOWN_PROJECT, prompt, "v2")
    assert a.endswith(":v1") and b.endswith(":v2")
    want_a, want_b = expect(plan[prompt, "v1"]), expect(plan[prompt, "v2"])
    assert want_a.tokens_mean is not None and want_b.tokens_mean is not None
    rows = comparison(served, UNKNOWN_PROJECT, a, b)
    tokens = rows["tokens per call"]
    # Over known values only: with the unknown counted as 0 the means would be lower.
    assert_number(tokens["a"], want_a.tokens_mean, "tokens a")
    assert_number(tokens["b"], want_b.tokens_mean, "tokens b")
    assert_number(tokens["delta"], want_b.tokens_mean - want_a.tokens_mean, "tokens delta")
    # n is the calls the mean is over: those with known tokens.
    assert (int(tokens["n_a"]), int(tokens["n_b"])) == (
        want_a.count - want_a.tokens_unknown,
        want_b.count - want_b.tokens_unknown,
    )
    low, high = number(tokens["ci_low"]), number(tokens["ci_high"])
    assert low is not None and high is not None and low <= high
    error = rows["error rate"]
    assert_number(error["a"], want_a.error_rate, "error a")
    assert_number(error["b"], want_b.error_rate, "error b")
    assert_number(error["delta"], want_b.error_rate - want_a.error_rate, "error delta")
    for metric, value_a, value_b in (
        ("p50 latency (ms)", want_a.p50, want_b.p50),
        ("p95 latency (ms)", want_a.p95, want_b.p95),
    ):
        assert_number(rows[metric]["a"], value_a, (metric, "a"))
        assert_number(rows[metric]["b"], value_b, (metric, "b"))
    # Nothing evaluated these calls: no score rows.
    assert not [m for m in rows if m.startswith("mean ")]

    # Against a version whose tokens are all unknown: no mean, no delta, no interval.
    v3 = comparison_side(served, UNKNOWN_PROJECT, prompt, "v3")
    tokens = comparison(served, UNKNOWN_PROJECT, v3, b)["tokens per call"]
    assert (tokens["a"], tokens["delta"], tokens["ci_low"], tokens["ci_high"]) == ("", "", "", "")
    assert_number(tokens["b"], want_b.tokens_mean, "tokens b")


def test_a_comparison_without_an_interval_does_not_claim_a_verdict(served: Served) -> None:
    prompt = "trust-unknown-answer"
    a = comparison_side(served, UNKNOWN_PROJECT, prompt, "v3")
    b = comparison_side(served, UNKNOWN_PROJECT, prompt, "v2")
    tokens = comparison(served, UNKNOWN_PROJECT, a, b)["tokens per call"]
    assert tokens["ci_low"] == tokens["ci_high"] == ""
    # Unknown, not "no": nothing was tested, and no method is named as if it had run.
    assert tokens["significant"] == ""
    assert tokens["method"] == "no interval: a side has no values"
    assert tokens["n_a"] == "0"


# (c) Per evaluator ----------------------------------------------------------------------------


def test_each_evaluator_has_its_own_mean_per_version(served: Served) -> None:
    plan = by_version(served.plan.of(EVALUATORS_PROJECT))
    annotations = served.plan.annotations_of(EVALUATORS_PROJECT)
    header, rows = export(served, "versions", project=EVALUATORS_PROJECT)
    found = {(r["prompt"], r["prompt_version"]): r for r in rows}
    assert set(found) == set(plan)
    means = [c for c in header if c.startswith("mean_")]
    # One column per evaluator, named after it; no column averages several evaluators.
    assert {f"mean_{name}" for name in SCORED} <= set(means)
    assert set(means) <= {f"mean_{name}" for name in EVALUATORS}
    assert not [c for c in header if c in ("mean_score", "score", "mean")]
    for key, calls in plan.items():
        row = found[key]
        assert_metrics(row, expect(calls), key)
        want = expect_evaluators(annotations, {c.span.span_id for c in calls})
        for name in SCORED:
            assert want[name].mean is not None
            assert_number(row[f"mean_{name}"], want[name].mean, (key, name))
        # A label-only evaluator has no mean: an empty cell (or no column), never 0.
        if f"mean_{HUMAN_REVIEW}" in row:
            assert row[f"mean_{HUMAN_REVIEW}"] == "", key
        labelled = {(a.name, a.label) for a in annotations if a.label is not None}
        _check_counts_and_shares(header, row, want, labelled, key)


def _check_counts_and_shares(
    header: Sequence[str],
    row: Mapping[str, str],
    want: Mapping[str, EvaluatorExpected],
    labelled: set[tuple[str, str]],
    key: object,
) -> None:
    """Check the versions export's per-evaluator counts and a label-only evaluator's shares.

    * n_<evaluator>: the scored annotations behind the row's mean_<evaluator>, for each scored
      evaluator (0 for a label-only one, where the column is listed at all);
    * labelled_<evaluator>: a label-only evaluator's labelled annotations on the row;
    * share_<evaluator>_<label>: that label's count over those (0.0 where the evaluator labelled
      the row's calls but never so; an empty cell where it labelled none of them), a column for
      each of the label-only evaluator's labels, and none for a label the plan never gave.
    """
    for name in EVALUATORS:
        scored = len(want[name].scores) if name in want else 0
        if name in SCORED or f"n_{name}" in header:
            assert int(row[f"n_{name}"]) == scored, (key, name)
    counts = want[HUMAN_REVIEW].labels if HUMAN_REVIEW in want else Counter[str]()
    total = sum(counts.values())
    assert int(row[f"labelled_{HUMAN_REVIEW}"]) == total, key
    shares = {c for c in header if c.startswith("share_")}
    assert shares <= {f"share_{name}_{label}" for name, label in labelled}
    for name, label in sorted(labelled):
        if name != HUMAN_REVIEW:
            continue
        cell = row[f"share_{name}_{label}"]
        assert_number(cell, counts[label] / total if total else None, (key, name, label))


def test_evaluator_kpis_and_summaries_never_mix_scales(served: Served) -> None:
    calls = served.plan.of(EVALUATORS_PROJECT)
    annotations = served.plan.annotations_of(EVALUATORS_PROJECT)
    filters = store_filters(served, project=EVALUATORS_PROJECT)
    overall = expect_evaluators(annotations, {c.span.span_id for c in calls})

    kpis = store_analytics.kpis(served.services.store, filters)
    scores = {s.name: s for s in kpis.scores}
    assert set(scores) == set(EVALUATORS)
    for name in EVALUATORS:
        want = overall[name]
        assert scores[name].annotations == want.annotations, name
        assert scores[name].scored == len(want.scores), name
        if want.mean is None:
            assert scores[name].mean is None, name
        else:
            assert scores[name].mean == pytest.approx(want.mean, rel=REL), name
    # The score card: whichever evaluators it names, each with its own mean, never a blend.
    card = _texts(create_kpi_cards("analytics", kpis))["analytics-kpi-score"]
    shown = re.findall(r"([a-z_]+):? (\d+\.\d+)", card)
    assert shown, card
    for name, value in shown:
        mean = overall[name].mean
        assert mean is not None and value == f"{mean:.2f}", card

    # The evaluations page's summary: per evaluator and version, mean and label shares.
    plan = by_version(calls)
    summaries = store_analytics.score_summary(served.services.store, filters)
    with served.services.sessions() as db:
        names = prompt_filters.prompt_names(db)
    seen = set()
    for summary in summaries:
        prompt = names.name(summary.key.prompt_id, summary.key.template_hash)
        version = summary.key.prompt_version
        assert prompt is not None and version is not None
        key = (prompt, version)
        want = expect_evaluators(annotations, {c.span.span_id for c in plan[key]})[summary.name]
        seen.add((summary.name, key))
        assert summary.annotations == want.annotations, (summary.name, key)
        assert summary.scored == len(want.scores), (summary.name, key)
        if want.mean is None:
            assert summary.mean is None
        else:
            assert summary.mean == pytest.approx(want.mean, rel=REL), (summary.name, key)
        total = sum(want.labels.values())
        assert {s.label: s.count for s in summary.labels} == dict(want.labels)
        for share in summary.labels:
            assert share.share == pytest.approx(want.labels[share.label] / total, rel=REL)
            assert share.ci_low <= share.share <= share.ci_high
    assert seen == {
        (name, key)
        for key, group in plan.items()
        for name in expect_evaluators(annotations, {c.span.span_id for c in group})
    }


def test_evaluations_export_holds_each_annotation_as_planned(served: Served) -> None:
    planned = {(a.span_id, a.name): a for a in served.plan.annotations_of(EVALUATORS_PROJECT)}
    versions = {c.span.span_id: c for c in served.plan.of(EVALUATORS_PROJECT)}
    _header, rows = export(served, "evaluations", project=EVALUATORS_PROJECT)
    assert len(rows) == len(planned)
    for row in rows:
        a = planned[row["span_id"], row["name"]]
        call = versions[a.span_id]
        assert (row["prompt"], row["prompt_version"]) == (call.prompt, call.version)
        assert row["annotator_kind"] == a.annotator_kind
        assert row["label"] == (a.label or "")
        assert_number(row["score"], a.score, (a.span_id, a.name))


def test_comparison_compares_each_evaluator_on_its_own(served: Served) -> None:
    plan = by_version(served.plan.of(EVALUATORS_PROJECT))
    annotations = served.plan.annotations_of(EVALUATORS_PROJECT)
    prompt = "trust-eval-answer"
    a = comparison_side(served, EVALUATORS_PROJECT, prompt, "v1")
    b = comparison_side(served, EVALUATORS_PROJECT, prompt, "v2")
    rows = comparison(served, EVALUATORS_PROJECT, a, b)
    want_a = expect_evaluators(annotations, {c.span.span_id for c in plan[prompt, "v1"]})
    want_b = expect_evaluators(annotations, {c.span.span_id for c in plan[prompt, "v2"]})
    assert {f"mean {n}" for n in SCORED} <= set(rows)
    for name in SCORED:
        row = rows[f"mean {name}"]
        mean_a, mean_b = want_a[name].mean, want_b[name].mean
        assert mean_a is not None and mean_b is not None
        assert_number(row["a"], mean_a, (name, "a"))
        assert_number(row["b"], mean_b, (name, "b"))
        assert_number(row["delta"], mean_b - mean_a, (name, "delta"))
        # n is the scores each mean is over, not the calls.
        assert (int(row["n_a"]), int(row["n_b"])) == (
            len(want_a[name].scores),
            len(want_b[name].scores),
        )
    # A label-only evaluator has no mean to compare: empty cells where it is listed at all.
    if f"mean {HUMAN_REVIEW}" in rows:
        row = rows[f"mean {HUMAN_REVIEW}"]
        assert (row["a"], row["b"], row["delta"]) == ("", "", "")


# Helpers ----------------------------------------------------------------------------------------


def _texts(component: Any) -> dict[str, str]:
    """Map each component id in a Dash tree to its text (its children, when a string)."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list | tuple):
            for child in node:
                walk(child)
            return
        children = getattr(node, "children", None)
        ident = getattr(node, "id", None)
        if isinstance(ident, str) and isinstance(children, str):
            found[ident] = children
        if children is not None and not isinstance(children, str):
            walk(children)

    walk(component)
    return found
