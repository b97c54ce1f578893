"""Pure helpers of the load test: percentiles, per-kind summaries and the memory verdict."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

# Run 3 may exceed run 2 by less than this share: allocator noise, not a leak.
MAX_LAST_RUN_GROWTH = 0.05
# Three rising samples are a trend only when the rise is this large; a few MB is arena churn.
MAX_MONOTONIC_GROWTH_MB = 32.0


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError("q must lie between 0 and 100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Latency:
    """Count and latency percentiles of one kind of request, in milliseconds."""

    count: int
    p50_ms: float | None  # None when there was nothing to time: JSON has no NaN
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        """Summarise request durations given in seconds."""
        if not seconds:
            return cls(0, None, None, None, None)
        ms = [s * 1000 for s in seconds]
        return cls(
            len(ms),
            round(percentile(ms, 50), 1),
            round(percentile(ms, 95), 1),
            round(percentile(ms, 99), 1),
            round(max(ms), 1),
        )

    def cell(self) -> str:
        """Render as "p50 / p95 / p99 (count)" for a table."""
        if not self.count:
            return "none"
        return f"{self.p50_ms:g} / {self.p95_ms:g} / {self.p99_ms:g} ({self.count})"


@dataclass(frozen=True)
class Verdict:
    """Whether resident memory grew across the measured runs, and why."""

    stable: bool
    reason: str

    @property
    def label(self) -> str:
        """Return "stable" or "growing"."""
        return "stable" if self.stable else "growing"


def memory_verdict(
    rss_mb: Sequence[float],
    max_last_growth: float = MAX_LAST_RUN_GROWTH,
    max_monotonic_mb: float = MAX_MONOTONIC_GROWTH_MB,
) -> Verdict:
    """Call RSS after consecutive runs stable unless the last run grew or all rose by much."""
    if len(rss_mb) < 3:
        raise ValueError("need the RSS after at least three runs")
    first, second, last = rss_mb[0], rss_mb[-2], rss_mb[-1]
    last_growth = (last - second) / second
    if last_growth >= max_last_growth:
        return Verdict(
            False, f"the last run grew RSS by {last_growth:.1%} (limit {max_last_growth:.0%})"
        )
    rising = all(b > a for a, b in itertools.pairwise(rss_mb))
    if rising and last - first > max_monotonic_mb:
        return Verdict(
            False,
            f"RSS rose after every run, {last - first:.1f} MB in all "
            f"(limit {max_monotonic_mb:g} MB)",
        )
    return Verdict(
        True,
        f"last run {last_growth:+.1%} (limit {max_last_growth:.0%}); "
        f"{'rising' if rising else 'not rising'} after every run, "
        f"{last - first:+.1f} MB from first to last (limit {max_monotonic_mb:g} MB if rising)",
    )
