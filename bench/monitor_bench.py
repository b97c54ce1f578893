"""Time one regression monitor's evaluation at 10M span facts: `python -m bench.monitor_bench`.

A relative monitor reads two sides (store.monitor_queries.side_estimate: the candidate version
and the baseline version over the same window) and decides (services.monitor_stats.decide).
That is timed per metric kind, p95 latency (count, then order statistics), error rate, tokens
per call, mean score and a label's share, over the last 24 hours and the last 7 days of the
store bench/store_bench.py seeds (bench/store_seed.py: 30 days, 5 prompts x 3 versions). The
sides are the worst a monitor meets there: version v3 against v2 across every prompt, about a
third of the window's calls each (a monitor of one prompt reads a fifth of that).

Each (metric, window) runs in a fresh process whose store files were evicted from the OS page
cache before the store opened (store_bench's helper), so "cold" means the engine just started
and nothing is cached; the same evaluation then runs WARM_RUNS more times ("warm", median).
Each figure is the median over --rounds processes (3), with <key>_p25/<key>_p75. Keys merged
into bench/results.json (bench.run keeps them):

* monitor_eval_ms_<size>: the worst (metric, window)'s cold median: the issue's budget, <= 1 s.
* monitor_eval_cold_ms_<size>_<metric>_<window>, monitor_eval_warm_ms_<size>_<metric>_<window>.
* monitor_eval_rows_<size>_<metric>_<window>_candidate / _baseline: the values each side's
  statistic is over (calls, known token counts, scored or labelled annotations).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from datetime import timedelta
from typing import Any

from bench.store_bench import (
    DATA_DIR,
    SIZES,
    _evict_page_cache,
    _open,
    run_child,
    summarise,
    write_results,
)
from bench.store_seed import END, PROJECT
from services.monitor_stats import SIDE_ALPHA, decide
from store.filters import Filters
from store.monitor_queries import side_estimate

log = logging.getLogger("bench.monitor")
WARM_RUNS = 3
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
# (metric, evaluator, label) as a monitor names them; the seeder's evaluators and labels.
METRICS: dict[str, tuple[str | None, str | None]] = {
    "p95_ms": (None, None),
    "error_rate": (None, None),
    "tokens_per_call": (None, None),
    "score_mean": ("helpfulness", None),
    "label_share": ("correctness", "incorrect"),
}
CANDIDATE, BASELINE = "v3", "v2"


def _side(version: str, window: timedelta) -> Filters:
    """Return one side's filters: a version across every prompt, over the window before END."""
    return Filters(project=PROJECT, versions=(version,), start=END - window, end=END)


def evaluate(size: str, metric: str, window: str) -> dict[str, float]:
    """Time a cold evaluation of one relative monitor, then warm ones, in this fresh process."""
    files = _evict_page_cache(DATA_DIR)
    log.info("%s %s %s: evicted %d files from the page cache", size, metric, window, files)
    evaluator, label = METRICS[metric]
    span = WINDOWS[window]
    store = _open(size)
    try:

        def once() -> tuple[int, int]:
            sides = [
                side_estimate(
                    store,
                    _side(version, span),
                    metric,
                    alpha=SIDE_ALPHA,
                    evaluator=evaluator,
                    label=label,
                )
                for version in (CANDIDATE, BASELINE)
            ]
            decide(
                sides[0],
                sides[1],
                higher_is_bad=metric != "score_mean",
                min_effect=10.0,
                min_effect_unit="percent",
                min_samples=100,
            )
            return sides[0].n, sides[1].n

        started = time.perf_counter()
        candidate_n, baseline_n = once()
        cold = time.perf_counter() - started
        warm = []
        for _ in range(WARM_RUNS):
            started = time.perf_counter()
            once()
            warm.append(time.perf_counter() - started)
    finally:
        store.close()
    key = f"{size}_{metric}_{window}"
    return {
        f"monitor_eval_cold_ms_{key}": round(cold * 1000, 1),
        f"monitor_eval_warm_ms_{key}": round(statistics.median(warm) * 1000, 1),
        f"monitor_eval_rows_{key}_candidate": float(candidate_n),
        f"monitor_eval_rows_{key}_baseline": float(baseline_n),
    }


def main(argv: list[str] | None = None) -> int:
    """Seed if needed, time every (metric, window) in fresh processes, and merge the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="*", default=["10m"], choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--metrics", nargs="*", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    parser.add_argument(
        "--measure", nargs=3, metavar=("SIZE", "METRIC", "WINDOW"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.measure:  # a child: one measurement, its figures printed as the last line
        size, metric, window = args.measure
        print(json.dumps(evaluate(size, metric, window)))
        return 0
    values: dict[str, float] = {}
    for size in args.sizes:
        # store_bench seeds once and reuses the seeded store while the seeder is unchanged.
        run_child("bench.store_bench", "--seed", size)
        rounds: list[dict[str, Any]] = []
        for index in range(args.rounds):
            measured: dict[str, float] = {}
            # Alternate the order round by round, so drift on a shared machine hits all alike.
            jobs = [(m, w) for m in args.metrics for w in WINDOWS]
            for metric, window in jobs if index % 2 == 0 else reversed(jobs):
                measured.update(run_child("bench.monitor_bench", "--measure", size, metric, window))
            rounds.append(measured)
        # Row counts are the same every round: their median is the figure, no spread.
        summary = {
            k: v
            for k, v in summarise(rounds).items()
            if not (k.startswith("monitor_eval_rows_") and k.endswith(("_p25", "_p75")))
        }
        cold = {k: v for k, v in summary.items() if k.startswith("monitor_eval_cold_ms_")}
        worst = max((k for k in cold if not k.endswith(("_p25", "_p75"))), key=cold.__getitem__)
        values.update(summary)
        values[f"monitor_eval_ms_{size}"] = summary[worst]
        for suffix in ("_p25", "_p75"):
            if worst + suffix in summary:
                values[f"monitor_eval_ms_{size}{suffix}"] = summary[worst + suffix]
        log.info("%s: worst cold evaluation is %s = %s ms", size, worst, summary[worst])
    for key, value in sorted(values.items()):
        log.info("%s = %s", key, value)
    if not args.no_write:
        write_results(values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
