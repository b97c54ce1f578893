"""Run every benchmark on the cached data and write bench/results.json and bench/RESULTS.md."""

from __future__ import annotations

import argparse
import json
import logging
import time

from bench.common import DATA_DIR, SIZES, Dataset, Results, ensure_dataset, log
from settings import PROJECT_DIR

RESULTS_JSON = PROJECT_DIR / "bench" / "results.json"


def prepare(sizes: list[str]) -> dict[str, Dataset]:
    """Start and, the first time, seed and sync every size."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    return {size: ensure_dataset(size) for size in sizes}


def _written_elsewhere(key: str) -> bool:
    """Tell whether a results key comes from a benchmark other than these suites."""
    prefixes = ("store_", "exactness_", "annotation_lag_", "page_cold_ms_", "web_", "engine_")
    sizes = ("_1m", "_10m")
    return key.startswith(prefixes) or any(f"{s}_" in key or key.endswith(s) for s in sizes)


def main(argv: list[str] | None = None) -> int:
    """Prepare the data, run the benchmarks and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepare-only", action="store_true", help="Seed and sync, then stop.")
    parser.add_argument("--only", nargs="*", default=None, help="Run only these benchmarks.")
    parser.add_argument(
        "--sizes",
        nargs="*",
        default=list(SIZES),
        choices=list(SIZES),
        help="Prepare only these sizes (seeding runs at about 150 spans/s); a suite that needs "
        "another size fails and leaves its keys out.",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    started = time.monotonic()
    datasets = prepare(args.sizes)
    try:
        if args.prepare_only:
            return 0
        results = Results()
        from bench import suites

        if unknown := sorted(set(args.only or ()) - set(suites.ALL)):
            log.error("no such benchmark: %s (known: %s)", unknown, ", ".join(suites.ALL))
            return 2
        for name, suite in suites.ALL.items():
            if args.only and name not in args.only:
                continue
            log.info("running %s", name)
            try:
                suite(datasets, results)
            except Exception:  # one broken suite must not lose the others' numbers
                log.exception("suite %s failed; its keys stay out of the results", name)
            previous = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
            # Keys the other benchmarks write (bench.store_bench, bench.page_bench,
            # bench.annotation_lag) stay; a suite that failed here leaves its own keys out.
            kept = {k: v for k, v in previous.items() if _written_elsewhere(k)}
            merged = {**previous, **results.values} if args.only else {**kept, **results.values}
            RESULTS_JSON.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
        suites.write_table(merged)
        log.info("done in %.0f s", time.monotonic() - started)
    finally:
        for dataset in datasets.values():
            dataset.phoenix.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
