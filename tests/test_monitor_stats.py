"""Regression monitors' statistics: exact store reads, and the always-valid intervals at work.

Three kinds of evidence:

* Exactness: the store's reads (store/monitor_queries.py) equal numpy on a seeded store with
  ties, duplicates, unknown values and deleted annotations: every order statistic by rank, and
  each metric's estimate.
* A/A replays (pure numpy, seeded): monitors whose candidate and baseline come from the SAME
  distribution, looking every 5 simulated minutes for 24 simulated hours at 10-100 calls per
  side per 5 minutes, on every kind of metric. At most 5 % may ever fire; naive fixed-sample
  95 % intervals looked at as often fire far more, which is why the method exists.
* Power: a +30 % p95 latency, a +30 % error rate, and a shift smaller than the minimum effect.

Replays check the full rule (services.monitor_stats.decide) at every look where it could fire.
It cannot fire where both sides' intervals hold the true value, which A/A sides share: firing
needs the whole difference interval on one side of 0, and c.low <= truth <= b.high makes
c.low - b.high <= 0 (test_no_fire_while_both_sides_hold_the_truth proves it on random input).
So for rates and quantiles a look is evaluated in full only where a side's interval misses the
truth, which the martingale tells cheaply: the rest are provably quiet.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services import monitor_stats as ms
from store import monitor_queries
from store.facts import FactStore, SpanAnnotationRow, SpanRow, open_store
from store.filters import Filters

from .conftest import unique_database

LOOKS = 288  # every 5 minutes for 24 hours
MONITORS = 400  # per kind of metric
MIN_SAMPLES = 100
Z95 = NormalDist().inv_cdf(0.975)
T0 = datetime(2026, 4, 1, tzinfo=UTC)
Draw = Callable[[np.random.Generator, int], np.ndarray]


# The store reads, against numpy ----------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded(chdb_dir: Path) -> Iterator[tuple[FactStore, list[SpanRow], list[SpanAnnotationRow]]]:
    """A store of 3,000 spans over two versions, their annotations, and some duplicates."""
    rng = np.random.default_rng(20260401)
    spans = []
    for i in range(3000):
        version = "v2" if i % 3 else "v1"
        known = rng.random() >= 0.05
        tokens = int(rng.integers(50, 4000))
        spans.append(
            SpanRow(
                span_id=f"s{i:05d}",
                trace_id=f"t{i // 2:05d}",
                project="monitors",
                prompt_id=f"prompt-{version}",
                template_hash=f"hash-{version}",
                prompt_version=version,
                model="gpt-4o",
                start_time=T0 + timedelta(seconds=int(rng.integers(0, 86400))),
                # Whole milliseconds: many ties, as real latencies have.
                latency_ms=float(round(rng.lognormal(6.5, 0.7))),
                prompt_tokens=None,
                completion_tokens=None,
                total_tokens=tokens if known else None,
                status="ERROR" if rng.random() < 0.06 else "OK",
                cost=float(rng.random() / 100) if rng.random() >= 0.1 else None,
            )
        )
    notes = []
    for span in spans[::2]:
        for name in ("correctness", "helpfulness"):
            score = float(rng.integers(1, 6)) if name == "helpfulness" else float(rng.random())
            notes.append(
                SpanAnnotationRow(
                    annotation_id=f"{span.span_id}-{name}",
                    span_id=span.span_id,
                    trace_id=span.trace_id,
                    project=span.project,
                    name=name,
                    annotator_kind="LLM",
                    label=("pass" if score >= 0.5 else "fail") if name == "correctness" else None,
                    score=score if rng.random() >= 0.05 else None,
                    updated_at=span.start_time,
                    is_deleted=bool(rng.random() < 0.03),
                    span_start_time=span.start_time,
                    prompt_id=span.prompt_id,
                    template_hash=span.template_hash,
                    prompt_version=span.prompt_version,
                    model=span.model,
                    span_status=span.status,
                )
            )
    store = open_store(f"chdb://{chdb_dir}", database=unique_database())
    store.write_spans(spans)
    store.write_span_annotations(notes)
    # Written again later: FINAL must count each once.
    store.write_spans(spans[:500], synced_at=datetime.now(UTC) + timedelta(seconds=1))
    yield store, spans, notes
    store.drop()
    store.close()


def _side(version: str) -> Filters:
    """Return the filters of one side: one version over the seeded day."""
    return Filters(project="monitors", versions=(version,), start=T0, end=T0 + timedelta(days=1))


def test_every_order_statistic_equals_numpy_by_rank(seeded) -> None:
    """Read every rank of a side's latencies (ties included) and match numpy's sorted array."""
    store, spans, _notes = seeded
    expected = np.sort([s.latency_ms for s in spans if s.prompt_version == "v2"])
    n, values = monitor_queries.order_statistics(
        store, _side("v2"), tuple(range(0, len(expected) + 2))
    )
    assert n == len(expected)
    assert sorted(values) == list(range(1, n + 1))  # ranks outside 1..n are left out
    assert [values[r] for r in range(1, n + 1)] == expected.tolist()
    assert len(np.unique(expected)) < n  # the data has ties


@pytest.mark.parametrize("metric", ["p50_ms", "p95_ms", "p99_ms"])
def test_quantile_sides_equal_numpy(seeded, metric: str) -> None:
    """A quantile's point value is numpy's (linear) and its bounds the order statistics."""
    store, spans, _notes = seeded
    q = ms.QUANTILE_LEVELS[metric]
    for version in ("v1", "v2"):
        values = np.sort([s.latency_ms for s in spans if s.prompt_version == version])
        got = monitor_queries.side_estimate(store, _side(version), metric, alpha=ms.SIDE_ALPHA)
        low_rank, high_rank = ms.quantile_ranks(len(values), q, ms.SIDE_ALPHA)
        assert got.n == len(values)
        assert got.value == pytest.approx(float(np.quantile(values, q)), rel=1e-12)
        assert got.low == (values[low_rank - 1] if low_rank else None)
        assert got.high == (values[high_rank - 1] if high_rank else None)


def _mean_expected(values: list[float]) -> ms.SideEstimate:
    """Build a mean's estimate from numpy's count, mean, variance and range."""
    array = np.asarray(values, dtype=float)
    return ms.mean_side(
        len(array),
        float(array.mean()),
        float(array.var(ddof=1)),
        ms.SIDE_ALPHA,
        smallest=float(array.min()),
        largest=float(array.max()),
    )


def _close(got: ms.SideEstimate, expected: ms.SideEstimate) -> None:
    """Assert two estimates agree: same n, values to 1e-12."""
    assert got.n == expected.n
    for name in ("value", "low", "high"):
        want = getattr(expected, name)
        assert getattr(got, name) == (None if want is None else pytest.approx(want, rel=1e-12))


def test_mean_and_rate_sides_equal_numpy(seeded) -> None:
    """Tokens, cost, error rate, scores and label shares equal numpy over the same rows."""
    store, spans, notes = seeded
    live = [n for n in notes if not n.is_deleted]
    for version in ("v1", "v2"):
        side = [s for s in spans if s.prompt_version == version]
        mine = [n for n in live if n.prompt_version == version]
        estimate = monitor_queries.side_estimate
        alpha = ms.SIDE_ALPHA
        tokens = [float(s.total_tokens) for s in side if s.total_tokens is not None]
        _close(
            estimate(store, _side(version), "tokens_per_call", alpha=alpha), _mean_expected(tokens)
        )
        cost = [s.cost for s in side if s.cost is not None]
        _close(estimate(store, _side(version), "cost_per_call", alpha=alpha), _mean_expected(cost))
        errors = sum(s.status == "ERROR" for s in side)
        _close(
            estimate(store, _side(version), "error_rate", alpha=alpha),
            ms.proportion_side(errors, len(side), alpha),
        )
        for name in ("correctness", "helpfulness"):
            scores = [n.score for n in mine if n.name == name and n.score is not None]
            got = estimate(store, _side(version), "score_mean", alpha=alpha, evaluator=name)
            _close(got, _mean_expected(scores))
        labelled = [n for n in mine if n.name == "correctness" and n.label is not None]
        passed = sum(n.label == "pass" for n in labelled)
        got = estimate(
            store, _side(version), "label_share", alpha=alpha, evaluator="correctness", label="pass"
        )
        _close(got, ms.proportion_side(passed, len(labelled), alpha))


def test_an_empty_side_has_no_value(seeded) -> None:
    """A side with no calls gives n = 0 and no value, for every metric."""
    store, _spans, _notes = seeded
    for metric in sorted(monitor_queries.METRICS):
        got = monitor_queries.side_estimate(
            store,
            _side("v9"),
            metric,
            alpha=ms.SIDE_ALPHA,
            evaluator="correctness",
            label="pass",
        )
        assert (got.n, got.value, got.low, got.high) == (0, None, None, None), metric


# The intervals' arithmetic ----------------------------------------------------------------------


def test_quantile_count_bounds_equal_a_full_scan() -> None:
    """The binary search finds exactly the counts a scan of every k finds."""
    c = ms.concentration(ms.SIDE_ALPHA)
    limit = math.log(1 / ms.SIDE_ALPHA)
    for n in (1, 2, 5, 37, 100, 999, 4000):
        for q in (0.5, 0.95, 0.99):
            inside = [k for k in range(n + 1) if ms.log_mixture(k, n, q, c) < limit]
            if inside:
                assert inside == list(range(inside[0], inside[-1] + 1))
                assert ms.quantile_count_bounds(n, q, ms.SIDE_ALPHA) == (inside[0], inside[-1])


def test_the_plausible_rates_are_one_interval() -> None:
    """{p: log M_n(p) < log(1/alpha)} is one run of a fine grid, for every alpha that matters.

    proportion_interval bisects from successes / n outwards, which is right only if so.
    """
    grid = np.concatenate(
        [
            np.logspace(-12, -3, 200),
            np.linspace(1e-3, 1 - 1e-3, 2000),
            1 - np.logspace(-3, -12, 200),
        ]
    )
    for n in (1, 3, 10, 100, 1000, 20000):
        for successes in sorted({0, 1, n // 20, n // 2, n - 1, n}):
            for alpha in (0.05, ms.SIDE_ALPHA, 0.01, 0.001):
                c = ms.concentration(alpha)
                values = np.array([ms.log_mixture(successes, n, p, c) for p in grid])
                inside = np.flatnonzero(values < math.log(1 / alpha))
                assert len(inside), (n, successes, alpha)
                assert inside[-1] - inside[0] + 1 == len(inside), (n, successes, alpha)
                low, high = ms.proportion_interval(successes, n, alpha)
                assert low <= grid[inside[0]] and grid[inside[-1]] <= high


def test_zero_errors_give_a_positive_upper_bound() -> None:
    """0 errors in n calls bound the rate by [0, u] with u > 0, shrinking with n."""
    bounds = [ms.proportion_interval(0, n, ms.SIDE_ALPHA) for n in (100, 1000, 10000)]
    assert all(low == 0.0 and high > 0 for low, high in bounds)
    assert bounds[0][1] > bounds[1][1] > bounds[2][1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.95, 0.99]),
)
def test_a_quantile_interval_holds_its_point_value(values: list[float], q: float) -> None:
    """low <= value <= high whenever bounded, the value being numpy's linear quantile."""
    ordered = np.sort(values)
    n = len(ordered)
    stats = {r: float(ordered[r - 1]) for r in ms.needed_ranks(n, q, ms.SIDE_ALPHA)}
    value = ms.interpolated(n, q, stats)
    assert value == pytest.approx(float(np.quantile(ordered, q)), rel=1e-12, abs=1e-12)
    side = ms.quantile_side(n, value, stats, q, ms.SIDE_ALPHA)
    assert side.low is None or side.low <= value
    assert side.high is None or value <= side.high


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 200_000), st.floats(0, 1), st.sampled_from([0.5, 0.95, 0.99]))
def test_intervals_hold_the_point_and_narrow_as_n_grows(n: int, share: float, q: float) -> None:
    """Rates, means and quantile ranks: the point is inside, and 2n is narrower than n."""
    successes = round(share * n)
    low, high = ms.proportion_interval(successes, n, ms.SIDE_ALPHA)
    wider = ms.proportion_interval(2 * successes, 2 * n, ms.SIDE_ALPHA)
    assert low <= successes / n <= high
    assert wider[1] - wider[0] < high - low
    if n >= 2:
        assert ms.mean_radius(2 * n, 1.0, ms.SIDE_ALPHA) < ms.mean_radius(n, 1.0, ms.SIDE_ALPHA)
    small = ms.quantile_count_bounds(n, q, ms.SIDE_ALPHA)
    large = ms.quantile_count_bounds(2 * n, q, ms.SIDE_ALPHA)
    assert (large[1] - large[0]) / (2 * n) <= (small[1] - small[0]) / n
    assert small[0] <= n * q + 1 and n * q - 1 <= small[1]


def _verdict(
    candidate: ms.SideEstimate,
    baseline: ms.SideEstimate,
    *,
    higher_is_bad: bool = True,
    min_effect: float = 10.0,
    unit: ms.EffectUnit = "percent",
    min_samples: int = MIN_SAMPLES,
) -> ms.Verdict:
    """Decide with the defaults of a monitor: higher is bad, 10 %, 100 values per side."""
    return ms.decide(
        candidate,
        baseline,
        higher_is_bad=higher_is_bad,
        min_effect=min_effect,
        min_effect_unit=unit,
        min_samples=min_samples,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-1e6, 1e6),
    st.lists(st.floats(0, 1e6), min_size=4, max_size=4),
    st.lists(st.floats(0, 1), min_size=2, max_size=2),
    st.booleans(),
    st.floats(0, 50),
    st.sampled_from(["percent", "absolute"]),
)
def test_no_fire_while_both_sides_hold_the_truth(
    truth: float,
    widths: list[float],
    points: list[float],
    higher_is_bad: bool,
    min_effect: float,
    unit: ms.EffectUnit,
) -> None:
    """If both intervals hold one common value, decide() does not fire (the replays rely on it)."""
    sides = []
    for index, point in enumerate(points):
        low, high = truth - widths[2 * index], truth + widths[2 * index + 1]
        value = low + point * (high - low)  # anywhere in the interval
        sides.append(ms.SideEstimate(1000, value, low, high, "m"))
    for candidate, baseline in (sides, sides[::-1]):
        verdict = _verdict(
            candidate,
            baseline,
            higher_is_bad=higher_is_bad,
            min_effect=min_effect,
            unit=unit,
            min_samples=1,
        )
        assert verdict.state != "firing"


def test_decide_needs_samples_bounds_and_the_minimum_effect() -> None:
    """Each condition of firing, on its own."""
    base = ms.SideEstimate(500, 100.0, 95.0, 105.0, "m")
    worse = ms.SideEstimate(500, 130.0, 120.0, 140.0, "m")
    verdict = _verdict(worse, base)
    assert verdict.state == "firing"
    assert (verdict.delta, verdict.low, verdict.high) == (30.0, 15.0, 45.0)
    assert verdict.relative_delta == pytest.approx(0.3)
    assert (verdict.value, verdict.reference) == (130.0, 100.0)
    assert "union bound" in verdict.method_text and "95 %" in verdict.method_text
    assert _verdict(worse, base, min_samples=501).state == "insufficient"
    assert _verdict(dataclasses.replace(worse, low=None), base).state == "insufficient"
    # Only the end that decides matters: no upper bound does not stop a rise from firing.
    assert _verdict(dataclasses.replace(worse, high=None), base).state == "firing"
    assert _verdict(worse, base, min_effect=31.0).state == "ok"
    assert _verdict(worse, base, min_effect=30.0, unit="absolute").state == "firing"
    assert _verdict(worse, base, min_effect=31.0, unit="absolute").state == "ok"
    # A fall where lower is bad; a rise is then fine.
    assert _verdict(base, worse, higher_is_bad=False).state == "firing"
    assert _verdict(worse, base, higher_is_bad=False).state == "ok"
    # Overlapping intervals do not fire, however large the point difference.
    assert _verdict(dataclasses.replace(worse, low=90.0), base).state == "ok"
    # From a baseline of exactly 0 any sure rise meets a percent minimum.
    zero = ms.SideEstimate(5000, 0.0, 0.0, 0.001, "m")
    some = ms.SideEstimate(5000, 0.02, 0.01, 0.03, "m")
    verdict = _verdict(some, zero)
    assert verdict.state == "firing" and verdict.relative_delta is None


def test_a_threshold_fires_only_when_the_whole_interval_is_past_it() -> None:
    """The point value crossing is not enough; the interval must."""
    crossing = ms.SideEstimate(300, 1200.0, 900.0, 1500.0, "m", ms.ALPHA)
    verdict = ms.threshold_verdict(crossing, 1000.0, higher_is_bad=True, min_samples=100)
    assert verdict.state == "ok" and verdict.value == 1200.0 and verdict.delta == 200.0
    sure = dataclasses.replace(crossing, low=1100.0)
    assert ms.threshold_verdict(sure, 1000.0, higher_is_bad=True, min_samples=100).state == "firing"
    assert ms.threshold_verdict(sure, 1000.0, higher_is_bad=True, min_samples=301).state == (
        "insufficient"
    )
    assert ms.threshold_verdict(sure, 2000.0, higher_is_bad=False, min_samples=1).state == "firing"
    assert "95 %" in ms.threshold_verdict(sure, 1.0, higher_is_bad=True, min_samples=1).method_text


# A/A replays ------------------------------------------------------------------------------------


def _volumes(rng: np.random.Generator, looks: int = LOOKS) -> np.ndarray:
    """Return cumulative calls per side per look: each side 10-100 calls per 5 minutes."""
    rates = rng.integers(10, 101, size=2)
    return np.cumsum(rng.poisson(rates[:, None], size=(2, looks)), axis=1)


def _prefix_means(values: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Return the mean, sample variance, smallest and largest of each prefix of `values`."""
    mean = np.cumsum(values)[counts - 1] / counts
    shift = values.mean()  # centred sums of squares keep the digits
    squares = np.cumsum((values - shift) ** 2)[counts - 1]
    variance = (squares - counts * (mean - shift) ** 2) / np.maximum(counts - 1, 1)
    smallest = np.minimum.accumulate(values)[counts - 1]
    largest = np.maximum.accumulate(values)[counts - 1]
    return [mean, variance, smallest, largest]


def _fires(candidate: ms.SideEstimate, baseline: ms.SideEstimate, higher_is_bad: bool) -> bool:
    """Apply the monitor's rule at its strictest: any sure change counts (no minimum effect)."""
    verdict = _verdict(candidate, baseline, higher_is_bad=higher_is_bad, min_effect=0.0)
    return verdict.state == "firing"


MEAN_DRAWS: list[tuple[str, Draw, bool]] = [
    ("tokens, log-normal sigma 0.8", lambda rng, k: rng.lognormal(6.0, 0.8, k), True),
    ("cost, log-normal sigma 1.2", lambda rng, k: rng.lognormal(-6.0, 1.2, k), True),
    (
        "1-5 score",
        lambda rng, k: rng.choice([1.0, 2, 3, 4, 5], size=k, p=[0.05, 0.05, 0.1, 0.3, 0.5]),
        False,
    ),
    ("0/1 score, 97 % ones", lambda rng, k: (rng.random(k) < 0.97).astype(float), False),
]


def replay_means(seed: int) -> tuple[int, int]:
    """Replay A/A monitors of tokens, costs and scores; return how many fired, and naively."""
    rng = np.random.default_rng(seed)
    fired = naive = 0
    for monitor in range(MONITORS):
        _name, draw, higher_is_bad = MEAN_DRAWS[monitor % len(MEAN_DRAWS)]
        counts = _volumes(rng)
        sides = [_prefix_means(draw(rng, int(c[-1])), c) for c in counts]
        ever = ever_naive = False
        for look in range(LOOKS):
            n = [int(c[look]) for c in counts]
            mean, variance, smallest, largest = (
                [float(side[i][look]) for side in sides] for i in range(4)
            )
            estimates = [
                ms.mean_side(
                    n[s],
                    mean[s],
                    variance[s],
                    ms.SIDE_ALPHA,
                    smallest=smallest[s],
                    largest=largest[s],
                )
                for s in range(2)
            ]
            ever = ever or _fires(estimates[0], estimates[1], higher_is_bad)
            if min(n) >= MIN_SAMPLES:
                error = math.sqrt(variance[0] / n[0] + variance[1] / n[1])
                change = (mean[0] - mean[1]) * (1 if higher_is_bad else -1)
                ever_naive = ever_naive or change - Z95 * error > 0
        fired += ever
        naive += ever_naive
    return fired, naive


def test_a_a_means_rarely_fire_and_naive_intervals_often_do() -> None:
    """Tokens, costs and scores: identical sides fire in <= 5 % of monitors over 24 h."""
    fired, naive = replay_means(1)
    assert fired / MONITORS <= 0.05, f"{fired} of {MONITORS} A/A mean monitors fired"
    assert naive / MONITORS >= 0.10, f"naive 95 % intervals: only {naive} of {MONITORS} fired"


RATES = (0.01, 0.05, 0.3, 0.7)  # error rates, and a label's share


def replay_rates(seed: int) -> tuple[int, int]:
    """Replay A/A monitors of error rates and label shares; return how many fired, and naively."""
    rng = np.random.default_rng(seed)
    c, limit = ms.concentration(ms.SIDE_ALPHA), math.log(1 / ms.SIDE_ALPHA)
    fired = naive = 0
    for monitor in range(MONITORS):
        rate = RATES[monitor % len(RATES)]
        counts = _volumes(rng)
        hits = np.cumsum(rng.binomial(np.diff(counts, prepend=0), rate), axis=1)
        ever = ever_naive = False
        for look in range(LOOKS):
            n = [int(counts[s, look]) for s in range(2)]
            k = [int(hits[s, look]) for s in range(2)]
            if min(n) < MIN_SAMPLES:
                continue
            p = [k[s] / n[s] for s in range(2)]
            error = math.sqrt(sum(p[s] * (1 - p[s]) / n[s] for s in range(2)))
            ever_naive = ever_naive or p[0] - p[1] - Z95 * error > 0
            if ever or all(ms.log_mixture(k[s], n[s], rate, c) < limit for s in range(2)):
                continue  # both intervals hold the true rate: provably quiet
            sides = [ms.proportion_side(k[s], n[s], ms.SIDE_ALPHA) for s in range(2)]
            ever = _fires(sides[0], sides[1], higher_is_bad=True)
        fired += ever
        naive += ever_naive
    return fired, naive


def test_a_a_rates_rarely_fire_and_naive_intervals_often_do() -> None:
    """Error rates and label shares: identical sides fire in <= 5 % of monitors over 24 h."""
    fired, naive = replay_rates(2)
    assert fired / MONITORS <= 0.05, f"{fired} of {MONITORS} A/A rate monitors fired"
    assert naive / MONITORS >= 0.10, f"naive 95 % intervals: only {naive} of {MONITORS} fired"


def _quantile_side(values: np.ndarray, q: float) -> ms.SideEstimate:
    """Estimate a quantile from raw values, as the store does from its order statistics."""
    n = len(values)
    ranks = ms.needed_ranks(n, q, ms.SIDE_ALPHA)
    part = np.partition(values, [r - 1 for r in ranks])
    stats = {r: float(part[r - 1]) for r in ranks}
    return ms.quantile_side(n, ms.interpolated(n, q, stats), stats, q, ms.SIDE_ALPHA)


LATENCY_MU, LATENCY_SIGMA = math.log(800), 0.6


def replay_quantiles(seed: int) -> int:
    """Replay A/A monitors of p50, p95 and p99 latency; return how many fired."""
    rng = np.random.default_rng(seed)
    c, limit = ms.concentration(ms.SIDE_ALPHA), math.log(1 / ms.SIDE_ALPHA)
    fired = 0
    for monitor in range(MONITORS):
        q = (0.5, 0.95, 0.99)[monitor % 3]
        truth = math.exp(LATENCY_MU + LATENCY_SIGMA * NormalDist().inv_cdf(q))
        counts = _volumes(rng)
        values = [rng.lognormal(LATENCY_MU, LATENCY_SIGMA, int(c[-1])) for c in counts]
        below = [np.cumsum(v <= truth)[c - 1] for v, c in zip(values, counts, strict=True)]
        for look in range(LOOKS):
            n = [int(counts[s, look]) for s in range(2)]
            if min(n) < MIN_SAMPLES or all(
                ms.log_mixture(int(below[s][look]), n[s], q, c) < limit for s in range(2)
            ):
                continue  # both count sequences hold: both intervals hold the true quantile
            sides = [_quantile_side(values[s][: n[s]], q) for s in range(2)]
            if _fires(sides[0], sides[1], higher_is_bad=True):
                fired += 1
                break
    return fired


def test_a_a_latency_quantiles_rarely_fire() -> None:
    """p50, p95 and p99 latency: identical sides fire in <= 5 % of monitors over 24 h."""
    fired = replay_quantiles(3)
    assert fired / MONITORS <= 0.05, f"{fired} of {MONITORS} A/A quantile monitors fired"


def replay_previous_periods(seed: int) -> int:
    """Replay A/A previous-period monitors (1 h windows, sliding); return how many fired."""
    rng = np.random.default_rng(seed)
    window = 12  # looks per hour
    c, limit = ms.concentration(ms.SIDE_ALPHA), math.log(1 / ms.SIDE_ALPHA)
    fired = 0
    for monitor in range(MONITORS):
        per_look = rng.poisson(int(rng.integers(10, 101)), LOOKS + 2 * window)
        edges = np.concatenate([[0], np.cumsum(per_look)])
        errors_kind = monitor % 2 == 1
        values = (
            (rng.random(edges[-1]) < 0.05).astype(float)
            if errors_kind
            else rng.lognormal(6.0, 0.8, edges[-1])
        )
        sums = np.concatenate([[0.0], np.cumsum(values)])
        for look in range(2 * window, LOOKS + 2 * window):
            spans = (
                (edges[look - window], edges[look]),
                (edges[look - 2 * window], edges[look - window]),
            )
            if errors_kind:
                n = [int(b - a) for a, b in spans]
                k = [int(sums[b] - sums[a]) for a, b in spans]
                if all(ms.log_mixture(k[s], n[s], 0.05, c) < limit for s in range(2)):
                    continue
                sides = [ms.proportion_side(k[s], n[s], ms.SIDE_ALPHA) for s in range(2)]
            else:
                parts = [values[a:b] for a, b in spans]
                sides = [
                    ms.mean_side(
                        len(p),
                        float(p.mean()),
                        float(p.var(ddof=1)),
                        ms.SIDE_ALPHA,
                        smallest=float(p.min()),
                        largest=float(p.max()),
                    )
                    for p in parts
                ]
            if _fires(sides[0], sides[1], higher_is_bad=True):
                fired += 1
                break
    return fired


def test_a_a_previous_period_windows_rarely_fire() -> None:
    """The last hour against the hour before, looked at every 5 minutes for 24 h (sliding).

    No time-uniform guarantee covers sliding windows (each look is a new sample); this
    measures them: tokens per call and error rate, 1-hour windows, the worst realistic case.
    """
    fired = replay_previous_periods(4)
    assert fired / MONITORS <= 0.05, f"{fired} of {MONITORS} previous-period monitors fired"


# Power ------------------------------------------------------------------------------------------

P95_VOLUME = 3000  # calls per side by which a +30 % p95 has fired in every replay


def test_a_30_percent_slower_p95_fires_by_3000_calls_per_side() -> None:
    """A candidate 30 % slower (every quantile, p95 watched) fires within two looks of 3k calls.

    Replays at 30-100 calls per side per 5 minutes, min_samples 100, min_effect 10 %: each
    fires by the first look at which both sides hold 3,000 calls (or the look after it); the
    median replay fires near 1,000 calls per side.
    """
    rng = np.random.default_rng(5)
    first_fire = []
    for _replay in range(100):
        counts = np.cumsum(rng.poisson(int(rng.integers(30, 101)), size=(2, LOOKS)), axis=1)
        values = [
            rng.lognormal(LATENCY_MU, LATENCY_SIGMA, int(counts[s, -1])) * (1.3 if s == 0 else 1)
            for s in range(2)
        ]
        ready = int(np.argmax(counts.min(axis=0) >= P95_VOLUME))
        fired_at = None
        for look in range(ready + 2):
            sides = [_quantile_side(values[s][: counts[s, look]], 0.95) for s in range(2)]
            if _verdict(sides[0], sides[1]).state == "firing":
                fired_at = int(counts[0, look])
                break
        assert fired_at is not None, "a +30 % p95 did not fire within two looks of 3,000 calls"
        first_fire.append(fired_at)
    assert 500 <= float(np.median(first_fire)) <= 2000


def test_a_30_percent_higher_error_rate_fires_at_30000_calls_per_side() -> None:
    """5 % -> 6.5 % errors: at 30,000 calls per side (a day at 100 per 5 min) >= 95 % fire."""
    rng = np.random.default_rng(6)
    replays = 400
    fired = 0
    for _replay in range(replays):
        n = 30_000
        candidate = ms.proportion_side(int(rng.binomial(n, 0.065)), n, ms.SIDE_ALPHA)
        baseline = ms.proportion_side(int(rng.binomial(n, 0.05)), n, ms.SIDE_ALPHA)
        fired += _verdict(candidate, baseline).state == "firing"
    assert fired / replays >= 0.95, f"only {fired} of {replays} fired"


def test_a_sure_change_below_the_minimum_effect_does_not_fire() -> None:
    """A 5 % slower p95 at 200,000 calls per side is sure, but under a 10 % minimum: ok."""
    rng = np.random.default_rng(7)
    n = 200_000
    sides = [
        _quantile_side(rng.lognormal(LATENCY_MU, LATENCY_SIGMA, n) * scale, 0.95)
        for scale in (1.05, 1.0)
    ]
    verdict = _verdict(sides[0], sides[1], min_effect=10.0)
    assert verdict.low is not None and verdict.low > 0  # the interval is sure of a rise
    assert verdict.state == "ok"
    assert _verdict(sides[0], sides[1], min_effect=3.0).state == "firing"
