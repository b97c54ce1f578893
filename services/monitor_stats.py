"""The statistics of regression monitors: always-valid intervals, and when a monitor fires.

A monitor looks again after every sync tick. A fixed-sample 95 % interval is right 95 % of the
time at ONE look chosen in advance; looked at every tick on identical versions, some look sooner
or later falls on the wrong side (tests/test_monitor_stats.py measures how often: far more than
5 %). So each side of a comparison gets a confidence sequence instead: an interval at every
sample size n such that, with probability at least 1 - alpha, the true value lies inside ALL of
them at once (time-uniform coverage). Any rule that fires on such an interval fires on identical
versions with probability at most alpha over the monitor's whole life, however often it looks
and whenever it stops. The methods, one per kind of metric:

* Proportions (error rate, a label's share): a beta-binomial mixture martingale (Robbins 1970,
  "Statistical methods related to the law of the iterated logarithm"; Howard, Ramdas,
  McAuliffe & Sekhon 2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
  Ann. Stat., section 3). For a rate p, M_n(p) = B(p c + s, (1 - p) c + n - s) / (B(p c,
  (1 - p) c) p^s (1 - p)^(n - s)) after s successes in n trials is the likelihood ratio of a
  Beta(p c, (1 - p) c) mixture of rates against p: a nonnegative martingale with M_0 = 1 when
  the rate is p. By Ville's inequality P(exists n: M_n(p) >= 1/alpha) <= alpha, so {p: M_n(p) <
  1/alpha} is a confidence sequence. Exact for Bernoulli data: no large-sample approximation;
  0 errors in n calls gives [0, u] with u > 0, never a zero-width interval. Each p is tested by
  a mixture centred on it, fixed before any data (validity needs only that), with c set so that
  the interval is tightest near n = t_star (`concentration`).
* Quantiles (p50/p95/p99 latency): for the q-quantile xi, the indicators 1{X_i <= xi} are
  Bernoulli(q) (with ties, a randomised tie-break between 1{X_i < xi} and 1{X_i <= xi} is), so
  their running count T_n stays, with probability >= 1 - alpha at every n at once, in the set
  {k: M_n(k) < 1/alpha} of the same martingale at the known rate q. The count bounds become
  order statistics: T_n >= k_lo means X_(k_lo) <= xi, T_n <= k_hi means X_(k_hi + 1) >= xi
  (X_(k) is the k-th smallest of the n values; rank k = 0 or n + 1 bounds nothing). Exact and
  distribution-free for i.i.d. latencies (Howard & Ramdas 2022, "Sequential estimation of
  quantiles with applications to A/B-testing and best-arm identification", Bernoulli, use the
  same reduction). A rank outside 1..n leaves that end unbounded (None): a p99 over 200 calls
  has no upper bound yet.
* Means (tokens per call, cost per call, mean score per evaluator): the asymptotic confidence
  sequence of Waudby-Smith, Arnold, Wu & Ramdas ("Time-uniform central limit theory and
  asymptotic confidence sequences", Ann. Stat. 2024, Theorem 2.2), mean +- sd * sqrt(2(n rho^2 +
  1) / (n^2 rho^2) * log(sqrt(n rho^2 + 1) / alpha)), rho tuned to be tightest at n = t_star.
  Token counts and costs are unbounded, and no non-asymptotic interval exists for the mean of
  an unbounded distribution; this one's coverage is asymptotic (it holds as the sample grows,
  with the sample standard deviation standing in for the true one), which is why a monitor
  also needs a minimum sample per side. The variance gets two pseudo-values, the side's
  smallest and largest (regularised_variance), and a side whose values are all equal gets no
  interval. Measured over 24 h of looks at 10-100 values per 5 minutes from 100 values on,
  the share of sides whose 97.5 % sequence ever misses the true mean: 1.4 % for log-normal
  tokens (sigma 0.8), 4.2 % for costs (sigma 1.2), 24 % at sigma 2, 32 % for a score that is
  5 in 99 % of cases. A/A comparisons of all of those still fired 0 times in 400 (firing needs
  the two intervals apart, not one off); for a pass/fail evaluator, watch its label share,
  whose sequence is exact.

A comparison runs each side at alpha / 2 (SIDE_ALPHA): by the union bound the difference
interval [c.low - b.high, c.high - b.low] then covers the true difference at every look at
once with probability >= 1 - alpha. The absolute threshold rule uses one side at the full alpha.

What is and is not guaranteed: the time-uniform bound is for a sample that grows (the calls
since a version appeared, inside a window that has not yet started to slide). A sliding window
(the last 24 h, or the previous-period rule's two windows) drops old calls as it adds new ones,
so each look is a new sample; every look is then still a valid test at level alpha (a
confidence sequence read once is a conservative fixed-sample interval), but looks at windows
far enough apart are nearly independent tests, so the chance of ever firing grows with how
many disjoint windows pass. tests/test_monitor_stats.py measures the sliding case too: the
last hour against the hour before, looked at every 5 minutes for 24 h, fired 0 times in 400.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

MetricKind = Literal["mean", "proportion", "quantile"]
State = Literal["ok", "firing", "insufficient"]
EffectUnit = Literal["percent", "absolute"]

ALPHA = 0.05
# Each side of a two-sided comparison: the union bound adds the two sides' alphas.
SIDE_ALPHA = ALPHA / 2
# The sample size at which every sequence here is tightest (rho, c). Monitors see 10-100
# calls per side per 5 minutes: about 3k-30k a day; 1,000 keeps them tight from the first
# hours, and a sequence tuned there loses only slowly (logarithmically) further on.
T_STAR = 1000

METRIC_KINDS: dict[str, MetricKind] = {
    "p50_ms": "quantile",
    "p95_ms": "quantile",
    "p99_ms": "quantile",
    "error_rate": "proportion",
    "label_share": "proportion",
    "cost_per_call": "mean",
    "tokens_per_call": "mean",
    "score_mean": "mean",
}
QUANTILE_LEVELS: dict[str, float] = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}

METHODS: dict[MetricKind, str] = {
    "proportion": (
        "always-valid confidence sequence: beta-binomial mixture martingale (Robbins 1970; "
        "Howard et al. 2021), exact for any number of looks"
    ),
    "quantile": (
        "always-valid confidence sequence for the quantile from order statistics: "
        "beta-binomial mixture on the count below it (Howard & Ramdas 2022), exact and "
        "distribution-free"
    ),
    "mean": (
        "always-valid asymptotic confidence sequence (Waudby-Smith, Arnold, Wu & Ramdas 2024), "
        "valid as the sample grows"
    ),
}
DIFFERENCE_METHOD = "each side at {side:g} %, union bound: {joint:g} % at every look at once"
THRESHOLD_METHOD = (
    "fires when the whole {level:g} % interval is beyond the threshold (not its point value)"
)


@dataclass(frozen=True)
class SideEstimate:
    """One side's point value and its always-valid (1 - alpha) interval at the current n.

    `low`/`high` are None where the sample cannot bound that end yet (a p99 over few calls, a
    mean over fewer than two values). `n` is the values the statistic is over: calls, calls
    with a known token count or cost, scored annotations, labelled annotations.
    """

    n: int
    value: float | None
    low: float | None
    high: float | None
    method: str
    alpha: float = SIDE_ALPHA


@dataclass(frozen=True)
class Verdict:
    """What a monitor says at one look, with the numbers it said it from.

    `delta` is candidate minus baseline (or value minus threshold), `relative_delta` that
    divided by the baseline (or threshold), None where that is 0. `low`/`high` bound the
    difference (or the value, for a threshold). `value` is the candidate's point value and
    `reference` the baseline's value or the threshold.
    """

    state: State
    delta: float | None
    relative_delta: float | None
    low: float | None
    high: float | None
    method_text: str
    value: float | None = None
    reference: float | None = None


def _check_alpha(alpha: float) -> None:
    """Refuse an alpha outside (0, 1)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def _log_beta(a: float, b: float) -> float:
    """Return log B(a, b)."""
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


# Means ------------------------------------------------------------------------------------------


def mixture_rho(t_star: int, alpha: float) -> float:
    """Return the rho that makes the asymptotic sequence tightest at n = t_star.

    Waudby-Smith et al. 2024, eq. (13): rho = sqrt((-2 log alpha + log(-2 log alpha + 1)) / t*).
    """
    _check_alpha(alpha)
    if t_star < 1:
        raise ValueError(f"t_star must be at least 1, got {t_star!r}")
    log_alpha = -2 * math.log(alpha)
    return math.sqrt((log_alpha + math.log(log_alpha + 1)) / t_star)


def mean_radius(n: int, sd: float, alpha: float, t_star: int = T_STAR) -> float:
    """Return the half-width of the asymptotic confidence sequence for a mean at n values."""
    rho2 = mixture_rho(t_star, alpha) ** 2
    scale = 2 * (n * rho2 + 1) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    return sd * math.sqrt(scale)


def regularised_variance(
    n: int, mean: float, variance: float, smallest: float, largest: float
) -> float:
    """Return the sample variance with two pseudo-values added: the side's smallest and largest.

    As (x + 1) / (n + 2) does for a rate: a side that has seen one outlier in a few hundred
    calls is not read as nearly constant, and the interval of a skewed sample (costs, tokens)
    starts wider. The weight fades as 1/n.
    """
    spread = (n - 1) * variance + (smallest - mean) ** 2 + (largest - mean) ** 2
    return spread / (n + 1)


def mean_side(
    n: int,
    mean: float | None,
    variance: float | None,
    alpha: float,
    t_star: int = T_STAR,
    *,
    smallest: float | None = None,
    largest: float | None = None,
) -> SideEstimate:
    """Return a mean's estimate from its count, mean, sample variance (n - 1) and range.

    With the range given, the variance is regularised (regularised_variance) and a side whose
    values are all equal gets no interval: a constant and a rare deviation not yet seen look
    the same.
    """
    method = METHODS["mean"]
    if n < 1 or mean is None or not math.isfinite(mean):
        return SideEstimate(max(n, 0), None, None, None, method, alpha)
    if n < 2 or variance is None or not math.isfinite(variance):
        return SideEstimate(n, mean, None, None, method, alpha)
    variance = max(variance, 0.0)
    if smallest is not None and largest is not None:
        if smallest == largest:
            return SideEstimate(n, mean, None, None, method, alpha)
        variance = regularised_variance(n, mean, variance, smallest, largest)
    radius = mean_radius(n, math.sqrt(variance), alpha, t_star)
    return SideEstimate(n, mean, mean - radius, mean + radius, method, alpha)


# Proportions and quantiles: the beta-binomial mixture -------------------------------------------


def concentration(alpha: float, t_star: int = T_STAR) -> float:
    """Return the prior concentration c that makes the beta-binomial sequence tightest at t_star.

    A Beta(r c, (1 - r) c) mixture spreads a rate r with variance r(1 - r) / (c + 1). The
    normal mixture that is tightest at t_star (mixture_rho) spreads a mean of variance sigma^2
    with variance sigma^2 rho^2; matching the two at sigma^2 = r(1 - r) gives c + 1 = 1 / rho^2.
    """
    return max(1 / mixture_rho(t_star, alpha) ** 2 - 1, 1.0)


def log_mixture(k: float, n: int, rate: float, c: float) -> float:
    """Return log M_n: the Beta(rate c, (1 - rate) c) mixture likelihood ratio against `rate`.

    M_n = B(rate c + k, (1 - rate) c + n - k) / (B(rate c, (1 - rate) c) rate^k (1 - rate)^(n-k))
    after k successes in n trials; a nonnegative martingale with M_0 = 1 when the true rate is
    `rate`. At rate 0 or 1 it is its limit: 0 when the data allow that rate, else infinite.
    """
    if rate <= 0 or rate >= 1:
        return 0.0 if k == (0 if rate <= 0 else n) else math.inf
    a, b = rate * c, (1 - rate) * c
    log_ratio = _log_beta(a + k, b + n - k) - _log_beta(a, b)
    return log_ratio - k * math.log(rate) - (n - k) * math.log1p(-rate)


_BISECTIONS = 200


def _bisect(inside: Callable[[float], bool], good: float, bad: float) -> float:
    """Return the boundary between `good` (inside) and `bad` (outside), on the inside."""
    for _ in range(_BISECTIONS):
        middle = (good + bad) / 2
        if middle in (good, bad):
            break
        if inside(middle):
            good = middle
        else:
            bad = middle
    return good


def proportion_interval(
    successes: int, n: int, alpha: float, t_star: int = T_STAR
) -> tuple[float, float]:
    """Return the rates still plausible after `successes` in n trials, at every n at once.

    The set {p: log M_n(p) < log(1/alpha)}, each p tested by the mixture centred on it
    (log_mixture with prior Beta(p c, (1 - p) c)). M_n(p) <= 1 at p = successes / n (the
    likelihood is highest there), and log M_n(p) falls then rises in p (quasi-convex; its
    minimum need not be at successes / n, and tests/test_monitor_stats.py checks the shape on
    a grid), so the set is an interval around successes / n; each end is found by bisection.
    """
    _check_alpha(alpha)
    if not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got {successes!r} of {n!r}")
    if n == 0:
        return 0.0, 1.0
    c, limit = concentration(alpha, t_star), math.log(1 / alpha)

    def inside(p: float) -> bool:
        return log_mixture(successes, n, p, c) < limit

    centre = successes / n
    low = 0.0 if inside(0.0) else _bisect(inside, centre, 0.0)
    high = 1.0 if inside(1.0) else _bisect(inside, centre, 1.0)
    return low, high


def proportion_side(successes: int, n: int, alpha: float, t_star: int = T_STAR) -> SideEstimate:
    """Return a rate's estimate: successes / n and its always-valid interval."""
    if n <= 0:
        return SideEstimate(0, None, None, None, METHODS["proportion"], alpha)
    low, high = proportion_interval(successes, n, alpha, t_star)
    return SideEstimate(n, successes / n, low, high, METHODS["proportion"], alpha)


def quantile_count_bounds(n: int, q: float, alpha: float, t_star: int = T_STAR) -> tuple[int, int]:
    """Return the smallest and largest count k of n values below the q-quantile still plausible.

    The set {k in 0..n: log M_n(k) < log(1/alpha)} of the mixture at the known rate q; log M_n
    is convex in k (log B is convex) with its minimum next to n q, so the set is a run of
    integers around it, found by binary search on each side.
    """
    _check_alpha(alpha)
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    c, limit = concentration(alpha, t_star), math.log(1 / alpha)

    def inside(k: int) -> bool:
        return log_mixture(k, n, q, c) < limit

    near = [k for k in {math.floor(n * q), math.ceil(n * q)} if 0 <= k <= n]
    centre = min(near, key=lambda k: log_mixture(k, n, q, c))
    if not inside(centre):
        # Possible only for tiny n at an extreme q: nothing is ruled out, nothing bounded.
        return 0, n
    low_in, low_out = centre, -1  # inside(low_in); low_out is outside, or past 0
    while low_in - low_out > 1:
        middle = (low_in + low_out) // 2
        low_in, low_out = (middle, low_out) if inside(middle) else (low_in, middle)
    high_in, high_out = centre, n + 1
    while high_out - high_in > 1:
        middle = (high_in + high_out) // 2
        high_in, high_out = (middle, high_out) if inside(middle) else (high_in, middle)
    return low_in, high_in


def interpolation_ranks(n: int, q: float) -> tuple[int, int, float]:
    """Return the 1-based ranks and weight of the linearly interpolated sample quantile.

    numpy's default (and the dashboard's quantilesExactInclusive): h = (n - 1) q, the value is
    X_(floor h + 1) + (h - floor h) (X_(floor h + 2) - X_(floor h + 1)).
    """
    if n < 1:
        raise ValueError("a quantile of no values")
    h = (n - 1) * q
    lower = math.floor(h)
    return lower + 1, min(lower + 2, n), h - lower


def quantile_ranks(
    n: int, q: float, alpha: float, t_star: int = T_STAR
) -> tuple[int | None, int | None]:
    """Return the 1-based ranks of the order statistics that bound the q-quantile at n values.

    [X_(lo), X_(hi)] holds the population q-quantile at every n at once with probability
    >= 1 - alpha; None where the rank falls outside 1..n (that end is unbounded). The ranks are
    widened, if need be, to include those of the interpolated sample quantile, so the interval
    always contains the point value (a wider interval keeps the coverage).
    """
    if n < 1:
        return None, None
    low_count, high_count = quantile_count_bounds(n, q, alpha, t_star)
    lower, upper, _weight = interpolation_ranks(n, q)
    low_rank = low_count if low_count >= 1 else None
    high_rank = high_count + 1 if high_count + 1 <= n else None
    if low_rank is not None:
        low_rank = min(low_rank, lower)
    if high_rank is not None:
        high_rank = max(high_rank, upper)
    return low_rank, high_rank


def needed_ranks(n: int, q: float, alpha: float, t_star: int = T_STAR) -> tuple[int, ...]:
    """Return every rank quantile_side needs at n values: the bounds and the point's two."""
    if n < 1:
        return ()
    lower, upper, _weight = interpolation_ranks(n, q)
    bounds = quantile_ranks(n, q, alpha, t_star)
    return tuple(sorted({lower, upper, *(r for r in bounds if r is not None)}))


def interpolated(n: int, q: float, order_stats: Mapping[int, float]) -> float:
    """Return the linearly interpolated sample quantile from its two order statistics."""
    lower, upper, weight = interpolation_ranks(n, q)
    below, above = order_stats[lower], order_stats[upper]
    # numpy's lerp: from the nearer end, so that equal neighbours give exactly that value.
    if weight >= 0.5:
        return above - (above - below) * (1 - weight)
    return below + (above - below) * weight


def quantile_side(
    n: int,
    value: float | None,
    order_stats: Mapping[int, float],
    q: float,
    alpha: float,
    t_star: int = T_STAR,
) -> SideEstimate:
    """Return a quantile's estimate from its point value and the order statistics by rank.

    `order_stats` maps 1-based ranks to values and must hold every rank of needed_ranks.
    """
    method = METHODS["quantile"]
    if n < 1:
        return SideEstimate(0, None, None, None, method, alpha)
    low_rank, high_rank = quantile_ranks(n, q, alpha, t_star)
    low = order_stats[low_rank] if low_rank is not None else None
    high = order_stats[high_rank] if high_rank is not None else None
    return SideEstimate(n, value, low, high, method, alpha)


# Decisions --------------------------------------------------------------------------------------


def difference(
    candidate: SideEstimate, baseline: SideEstimate
) -> tuple[float | None, float | None, float | None]:
    """Return candidate - baseline and its interval (None where a side leaves it unbounded).

    With each side at alpha_c and alpha_b, [c.low - b.high, c.high - b.low] covers the true
    difference at every look at once with probability >= 1 - alpha_c - alpha_b.
    """
    c, b = candidate, baseline
    delta = c.value - b.value if c.value is not None and b.value is not None else None
    low = c.low - b.high if c.low is not None and b.high is not None else None
    high = c.high - b.low if c.high is not None and b.low is not None else None
    return delta, low, high


def _relative(delta: float | None, reference: float | None) -> float | None:
    """Return delta / reference, None when either is unknown or the reference is 0."""
    if delta is None or reference is None or reference == 0:
        return None
    return delta / abs(reference)


def _effect_met(
    delta: float, reference: float, higher_is_bad: bool, min_effect: float, unit: EffectUnit
) -> bool:
    """Tell whether a change is at least the minimum effect in the bad direction."""
    worse = delta if higher_is_bad else -delta
    if unit == "absolute":
        return worse >= min_effect
    if reference == 0:
        # From exactly 0 any rise is infinitely many percent: it meets every minimum.
        return worse > 0
    return worse / abs(reference) * 100 >= min_effect


def decide(
    candidate: SideEstimate,
    baseline: SideEstimate,
    *,
    higher_is_bad: bool,
    min_effect: float,
    min_effect_unit: EffectUnit,
    min_samples: int,
) -> Verdict:
    """Say whether the candidate is worse than the baseline beyond doubt and by enough.

    Firing: both sides have at least `min_samples` values, the always-valid interval of the
    difference lies wholly on the bad side (low > 0 when higher is bad, high < 0 otherwise),
    and the point difference is at least `min_effect` in the bad direction (in percent of the
    baseline, or in the metric's units). Insufficient: a side is below `min_samples`, or the
    end of the interval that decides is unbounded. Otherwise ok.
    """
    delta, low, high = difference(candidate, baseline)
    joint = 100 * (1 - candidate.alpha - baseline.alpha)
    side = 100 * (1 - max(candidate.alpha, baseline.alpha))
    method = f"{candidate.method}; " + DIFFERENCE_METHOD.format(side=side, joint=joint)
    decisive = low if higher_is_bad else high
    verdict = Verdict(
        "ok",
        delta,
        _relative(delta, baseline.value),
        low,
        high,
        method,
        candidate.value,
        baseline.value,
    )
    if min(candidate.n, baseline.n) < min_samples or decisive is None or delta is None:
        return replace(verdict, state="insufficient")
    assert baseline.value is not None  # delta is known, so both values are
    beyond = decisive > 0 if higher_is_bad else decisive < 0
    if beyond and _effect_met(delta, baseline.value, higher_is_bad, min_effect, min_effect_unit):
        return replace(verdict, state="firing")
    return verdict


def threshold_verdict(
    estimate: SideEstimate, threshold: float, *, higher_is_bad: bool, min_samples: int
) -> Verdict:
    """Say whether a value is beyond a fixed threshold beyond doubt.

    Fires when the side's whole always-valid interval lies beyond the threshold (low above it
    when higher is bad, high below it otherwise): then, with probability >= 1 - alpha over
    every look, the true value is past the line. Other tools fire when the point value
    crosses; re-checked every tick, a point value over few calls crosses on noise alone, so
    this fires later and never on noise. The point value is in the verdict for display.
    """
    delta = estimate.value - threshold if estimate.value is not None else None
    level = 100 * (1 - estimate.alpha)
    method = f"{estimate.method}; " + THRESHOLD_METHOD.format(level=level)
    verdict = Verdict(
        "ok",
        delta,
        _relative(delta, threshold),
        estimate.low,
        estimate.high,
        method,
        estimate.value,
        threshold,
    )
    decisive = estimate.low if higher_is_bad else estimate.high
    if estimate.n < min_samples or decisive is None:
        return replace(verdict, state="insufficient")
    if decisive > threshold if higher_is_bad else decisive < threshold:
        return replace(verdict, state="firing")
    return verdict
