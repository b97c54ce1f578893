"""Time the facts store (chdb in-process) at 1M and 10M LLM spans: `python -m bench.store_bench`.

Seeds each size once into bench/data/clickhouse (git-ignored; about 2 s for 1M and 25 s for
10M including the merge of each day into one part) and reuses it while the seeder is unchanged.
Every measurement runs in a fresh process, so "cold" means: the engine just started (its mark
cache, query caches and the parts' primary indexes not yet loaded) and the store's files evicted
from the OS page cache (posix_fadvise DONTNEED) before the store opens. Each figure is the median
of --rounds fresh processes per size (5), sizes alternating, with <key>_p25/<key>_p75 beside it.
Figures are merged into bench/results.json:

* store_redraw_cold_ms_<size>: the first `store.analytics.redraw` after opening the store: the
  worst view, project `bench` holding every span, the whole 30-day window, no other filter: KPIs
  (count, error rate, exact p50/p95/p99, tokens and cost with unknowns, scores per evaluator),
  the series per 6 h bucket split by (prompt, version) (the latency, tokens, cost and error
  charts) and the (prompt, version) table with per-evaluator scores: one scan of every span and
  one of every annotation (1.4 per span). store_redraw_warm_ms_<size>: median of 5 more runs.
* store_peak_rss_mb_<size>: the peak resident memory (VmHWM) of that process, engine included;
  store_open_rss_mb_<size>: its resident memory right after opening the store.
* store_redraw_growth_ratio, store_rss_growth_ratio: 10M divided by 1M of the two above.
* store_csv_export_rows_per_s_1m, store_csv_export_peak_mb_1m: every span of the 1M store
  streamed by `store.analytics.iter_spans` through the CSV writer of services/export.py; the
  peak is VmHWM after the export minus VmRSS before it, the peak reset first.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.store_seed import END, PROJECT, SEEDER_VERSION, START, seed
from settings import PROJECT_DIR
from store import analytics, slices
from store.facts import FactStore, open_store

log = logging.getLogger("bench.store")
DATA_DIR = PROJECT_DIR / "bench" / "data" / "clickhouse"
RESULTS_JSON = PROJECT_DIR / "bench" / "results.json"
SIZES = {"1m": 1_000_000, "10m": 10_000_000}
WARM_RUNS = 5


def _status_kb(name: str) -> int:
    """Read one VmXXX line of /proc/self/status, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise RuntimeError(name)


def _reset_peak() -> None:
    """Make VmHWM restart from the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def _evict_page_cache(root: Path) -> int:
    """Drop the OS page cache of every file under root; return how many files."""
    count = 0
    for path in root.rglob("*"):
        if path.is_file():
            descriptor = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(descriptor)
            count += 1
    return count


def _open(size: str) -> FactStore:
    """Open one size's database in the shared data directory."""
    return open_store(f"chdb://{DATA_DIR}", database=f"bench_{size}")


def _seeded(store: FactStore, rows: int) -> bool:
    """Tell whether the store already holds this size, seeded by this seeder."""
    store.transport.command(
        "CREATE TABLE IF NOT EXISTS bench_meta (rows UInt64, seeder UInt32, seeded_at DateTime)"
        " ENGINE = MergeTree ORDER BY tuple()"
    )
    found = store.transport.query("SELECT rows, seeder FROM bench_meta").rows
    return (rows, SEEDER_VERSION) in [(int(r), int(s)) for r, s in found]


def _slice(store: FactStore, size: str) -> None:
    """Build the slices of every seeded day, as the sync worker does after its ticks."""
    started = time.perf_counter()
    built = slices.refresh(store, before=END.date())
    if built:
        log.info("%s: %d day slices built in %.1f s", size, built, time.perf_counter() - started)


def ensure_seeded(size: str) -> None:
    """Seed a size once, then merge every partition into one part (the settled steady state)."""
    rows = SIZES[size]
    store = _open(size)
    try:
        if _seeded(store, rows):
            log.info("%s: reusing the seeded store", size)
            _slice(store, size)
            return
        store.drop()
    finally:
        store.close()
    store = _open(size)
    try:
        started = time.perf_counter()
        seed(store, rows)
        log.info("%s: seeded in %.1f s", size, time.perf_counter() - started)
        started = time.perf_counter()
        merged = store.settle(before=END)
        log.info(
            "%s: %d day partitions merged in %.1f s", size, merged, time.perf_counter() - started
        )
        _slice(store, size)
        _seeded(store, rows)  # creates bench_meta
        store.transport.insert(
            "bench_meta",
            ("rows", "seeder", "seeded_at"),
            [(rows, SEEDER_VERSION, datetime.now(UTC))],
        )
    finally:
        store.close()


def _view() -> analytics.Filters:
    """Return the worst view: the one project, the whole window, nothing else."""
    return analytics.Filters(project=PROJECT, start=START, end=END)


def measure_redraw(size: str) -> dict[str, float]:
    """Time a cold redraw, then warm ones, in this (fresh) process; report memory."""
    files = _evict_page_cache(DATA_DIR)
    log.info("%s: evicted %d files from the page cache", size, files)
    store = _open(size)
    try:
        open_rss = _status_kb("VmRSS") / 1024
        started = time.perf_counter()
        first = analytics.redraw(store, _view())
        cold = time.perf_counter() - started
        assert first.kpis.metrics.count == SIZES[size], first.kpis.metrics.count
        warm = []
        for _ in range(WARM_RUNS):
            started = time.perf_counter()
            analytics.redraw(store, _view())
            warm.append(time.perf_counter() - started)
        return {
            f"store_redraw_cold_ms_{size}": round(cold * 1000, 1),
            f"store_redraw_warm_ms_{size}": round(statistics.median(warm) * 1000, 1),
            f"store_peak_rss_mb_{size}": round(_status_kb("VmHWM") / 1024, 1),
            f"store_open_rss_mb_{size}": round(open_rss, 1),
        }
    finally:
        store.close()


def measure_export(size: str) -> dict[str, float]:
    """Stream every span of a size through the CSV writer; report rows/s and extra memory."""
    from services.export import csv_chunks  # the CSV writer the export endpoint uses

    store = _open(size)
    try:
        columns = list(analytics.EXPORT_COLUMNS)
        _reset_peak()
        before = _status_kb("VmRSS")
        count = 0

        def rows() -> Any:
            nonlocal count
            for _columns, batch in analytics.iter_spans(store, _view()):
                count += len(batch)
                yield from batch

        started = time.perf_counter()
        size_bytes = sum(len(chunk) for chunk in csv_chunks(columns, rows()))
        elapsed = time.perf_counter() - started
        peak = (_status_kb("VmHWM") - before) / 1024
        assert count == SIZES[size], count
        log.info("%s: exported %d rows, %.1f MB of CSV", size, count, size_bytes / 1e6)
        return {
            f"store_csv_export_rows_per_s_{size}": round(count / elapsed, 0),
            f"store_csv_export_peak_mb_{size}": round(peak, 1),
        }
    finally:
        store.close()


def _relative(a: float | None, b: float | None) -> float:
    """Return |a - b| / |b| (0 when both are None, infinite when only one is)."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    return abs(a - b) / max(abs(b), 1e-300) if a != b else 0.0


def _numpy_metrics(latency: Any, errors: Any, tokens: Any, cost: Any) -> dict[str, Any]:
    """Compute a Metrics' numbers independently with numpy (linear-interpolated quantiles)."""
    import numpy as np

    known_tokens, known_cost = tokens[~np.isnan(tokens)], cost[~np.isnan(cost)]
    p50, p95, p99 = (float(v) for v in np.quantile(latency, [0.5, 0.95, 0.99]))
    return {
        "count": len(latency),
        "errors": int(errors.sum()),
        "error_rate": float(errors.mean()),
        "p50_ms": p50,
        "p95_ms": p95,
        "p99_ms": p99,
        "tokens": float(known_tokens.sum()),
        "tokens_mean": float(known_tokens.mean()),
        "tokens_unknown": int(len(tokens) - len(known_tokens)),
        "cost": float(known_cost.sum()),
        "cost_mean": float(known_cost.mean()),
        "cost_unknown": int(len(cost) - len(known_cost)),
    }


def measure_exactness(size: str) -> dict[str, float]:
    """Compare the redraw's KPIs and per-version rows with numpy over the same rows."""
    import numpy as np
    import pandas as pd

    store = _open(size)
    try:
        drawn = analytics.redraw(store, _view())
        # The same rows, read whole: FINAL, the view's filters, no aggregate in the engine.
        where, params = analytics._where(_view())
        columns = "prompt_id, prompt_version, status = 'ERROR' AS error, latency_ms, cost"
        tokens = "toFloat64OrNull(toString(total_tokens)) AS tokens"
        sql = f"SELECT {columns}, {tokens} FROM llm_spans FINAL WHERE {where}"  # noqa: S608
        spans = store.transport.query(sql, params)
        frame = pd.DataFrame(spans.rows, columns=list(spans.columns))
        notes_where, notes_params = analytics._where(_view(), analytics.ANNOTATIONS)
        live = f"{notes_where} AND is_deleted = 0"
        sql = f"SELECT name, prompt_id, prompt_version, score FROM span_annotations FINAL WHERE {live}"  # noqa: E501, S608
        notes = store.transport.query(sql, notes_params)
        scores = pd.DataFrame(notes.rows, columns=list(notes.columns))
    finally:
        store.close()

    def numpy_of(part: pd.DataFrame) -> dict[str, Any]:
        return _numpy_metrics(
            part["latency_ms"].to_numpy(float),
            part["error"].to_numpy(bool),
            part["tokens"].to_numpy(float),
            part["cost"].to_numpy(float),
        )

    errors = []
    pairs = [(drawn.kpis.metrics, numpy_of(frame), drawn.kpis.scores, scores)]
    for row in drawn.breakdown:
        key = row.key
        mine = (frame["prompt_id"] == key.prompt_id) & (
            frame["prompt_version"] == key.prompt_version
        )
        theirs = (scores["prompt_id"] == key.prompt_id) & (
            scores["prompt_version"] == key.prompt_version
        )
        pairs.append((row.metrics, numpy_of(frame[mine]), row.scores, scores[theirs]))
    for metrics, expected, evaluators, notes_part in pairs:
        for name, value in expected.items():
            errors.append(_relative(getattr(metrics, name), value))
        for evaluator in evaluators:
            mean = notes_part.loc[notes_part["name"] == evaluator.name, "score"].dropna().mean()
            errors.append(_relative(evaluator.mean, float(mean)))
    worst = max(errors)
    log.info("%s: %d numbers compared, worst relative error %.3g", size, len(errors), worst)
    return {
        f"exactness_max_rel_error_{size}": float(np.format_float_scientific(worst, 3)),
        f"exactness_numbers_compared_{size}": float(len(errors)),
    }


def run_child(module: str, *args: str) -> dict[str, float]:
    """Run a bench module in a fresh process and return the JSON it prints last."""
    output = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=PROJECT_DIR,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    values: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return values


def summarise(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Reduce per-round figures to medians, with <key>_p25 and <key>_p75 where there is spread."""
    values: dict[str, float] = {}
    for key in rounds[0]:
        series = sorted(r[key] for r in rounds)
        values[key] = round(statistics.median(series), 3)
        if len(series) >= 2:
            low, _middle, high = statistics.quantiles(series, n=4, method="inclusive")
            values[f"{key}_p25"], values[f"{key}_p75"] = round(low, 3), round(high, 3)
    return values


def write_results(values: dict[str, float]) -> None:
    """Merge these keys into bench/results.json, keeping every other key."""
    previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    merged = {**previous, **values}
    RESULTS_JSON.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Seed once, measure each size in a fresh process, and merge the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--seed", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--redraw", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--export", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--exactness", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per size")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # Children: one job each, its figures printed as the last line.
    if args.seed:
        ensure_seeded(args.seed)
        print(json.dumps({}))
        return 0
    if args.redraw:
        print(json.dumps(measure_redraw(args.redraw)))
        return 0
    if args.export:
        print(json.dumps(measure_export(args.export)))
        return 0
    if args.exactness:
        print(json.dumps(measure_exactness(args.exactness)))
        return 0
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        run_child("bench.store_bench", "--seed", size)
    # Sizes alternate round by round (1m, 10m, 10m, 1m, ...), so drift on a shared machine hits
    # both alike; each figure is the median over rounds, with its quartiles.
    rounds: list[dict[str, float]] = []
    for index in range(args.rounds):
        order = args.sizes if index % 2 == 0 else list(reversed(args.sizes))
        measured: dict[str, float] = {}
        for size in order:
            measured.update(run_child("bench.store_bench", "--redraw", size))
        if {"1m", "10m"} <= set(args.sizes):
            measured["store_redraw_growth_ratio"] = (
                measured["store_redraw_cold_ms_10m"] / measured["store_redraw_cold_ms_1m"]
            )
            measured["store_rss_growth_ratio"] = (
                measured["store_peak_rss_mb_10m"] / measured["store_peak_rss_mb_1m"]
            )
        rounds.append(measured)
    values = summarise(rounds)
    if "1m" in args.sizes:
        values.update(run_child("bench.store_bench", "--export", "1m"))
        values.update(run_child("bench.store_bench", "--exactness", "1m"))
    for key, value in sorted(values.items()):
        log.info("%s = %s", key, value)
    if not args.no_write:
        write_results(values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
