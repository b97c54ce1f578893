"""Time the pages over the 1M and 10M facts stores: `python -m bench.page_bench`.

The app is the real one, `create_app(settings)` on a store seeded by bench/store_bench.py, a
fresh migrated SQLite database, Phoenix and the sync worker off, no Redis (the in-process
cache). Every call goes through Dash's `/_dash-update-component` (or the export route) on the
Flask test client, signed in as a user, with the worst view: project `bench`, which holds every
span, its whole 30-day window as a custom range, no other filter. Each measurement runs in a
fresh process whose store files were evicted from the OS page cache before the store opened
(store_bench's helper); rounds alternate the sizes; figures are medians with quartiles, merged
into bench/results.json. bench/README.md says what each key aggregates.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

from flask.testing import FlaskClient

from bench import pandas_baseline
from bench.store_bench import (
    DATA_DIR,
    SIZES,
    _evict_page_cache,
    _reset_peak,
    _status_kb,
    run_child,
    summarise,
    write_results,
)
from bench.store_seed import END, PROJECT, START
from load.client import parse_dependencies
from settings import PROJECT_DIR, Settings

log = logging.getLogger("bench.pages")
PAGES = ("home", "traces", "evaluations", "analytics")
WARM_RUNS = 5
PASSWORD = "bench-page-password"  # noqa: S105  # a throwaway user in a throwaway database
SECRET = "bench-page-secret-key-0123456789-abcdef"  # noqa: S105  # signs nothing that lives on
SEARCH = "?" + urlencode(
    {
        "project": PROJECT,
        "range": "custom",
        "start": START.strftime("%Y-%m-%dT%H:%M"),
        "end": END.strftime("%Y-%m-%dT%H:%M"),
    }
)
FIRST_BLOCK = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}


class _FrozenClock(datetime):
    """A datetime whose now() is the end of the seeded window, for home's rolling windows."""

    @classmethod
    def now(cls, tz: Any = None) -> _FrozenClock:
        """Return the end of the seeded window."""
        return cls.fromtimestamp(END.timestamp(), tz or UTC)


class Browser:
    """A signed-in test client that asks for layouts and runs callbacks as the browser does."""

    def __init__(self, size: str, workdir: Path) -> None:
        from app import create_app
        from db.migrate import upgrade
        from devtools.signin import csrf_token
        from services import users
        from services.container import get_services

        url = f"sqlite:///{workdir / 'dashboard.db'}"
        upgrade(url)
        # Eviction after the migration and before the store opens: the first call reads disk.
        files = _evict_page_cache(DATA_DIR)
        log.info("%s: evicted %d files from the page cache", size, files)
        settings = Settings.from_env(
            {
                "SECRET_KEY": SECRET,
                "DATABASE_URL": url,
                "STORE_URL": f"chdb://{DATA_DIR}?database=bench_{size}",
                "PHOENIX_ENABLED": "false",
                "SYNC_WORKER": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
        self.app = create_app(settings)
        server = self.app.server
        with get_services(server).sessions.begin() as db:
            users.create_user(db, "bench@example.com", PASSWORD, role="viewer")
        self.client: FlaskClient = server.test_client()
        form = self.client.get("/login").get_data(as_text=True)
        response = self.client.post(
            "/login",
            data={
                "email": "bench@example.com",
                "password": PASSWORD,
                "csrf_token": csrf_token(form),
            },
        )
        assert response.status_code == 302, response.status_code
        self.store = get_services(server).store
        # The server callbacks as registered, read once as the renderer reads them before routing.
        self.callbacks = parse_dependencies(self.client.get("/_dash-dependencies").json or [])

    def fire(self, first_output: str, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Run the server callback whose first output is `first_output` (`id.prop`), initially.

        Its outputs, inputs and state are the app's own (`/_dash-dependencies`), so the bench
        sends what the page's callback takes today; each value is the component's prop in
        `values` (the layout's props by id, or given), None where it has none.
        """
        callback = next(c for c in self.callbacks if ".".join(c.outputs[0]) == first_output)

        def specs(props: tuple[tuple[str, str], ...]) -> list[tuple[str, str, Any]]:
            return [(c, p, values.get(c, {}).get(p)) for c, p in props]

        return self.call(list(callback.outputs), specs(callback.inputs), specs(callback.state))

    def call(
        self,
        outputs: list[tuple[str, str]],
        inputs: list[tuple[str, str, Any]],
        state: list[tuple[str, str, Any]] = (),  # type: ignore[assignment]
    ) -> dict[str, Any]:
        """Run one server callback through /_dash-update-component; return {id: {prop: v}}."""
        many = len(outputs) > 1
        key = (
            ".." + "...".join(f"{i}.{p}" for i, p in outputs) + ".."
            if many
            else f"{outputs[0][0]}.{outputs[0][1]}"
        )
        specs = [{"id": i, "property": p} for i, p in outputs]
        payload = {
            "output": key,
            "outputs": specs if many else specs[0],
            "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": [],  # the initial call, as when a page's layout arrives
        }
        response = self.client.post("/_dash-update-component", json=payload)
        if response.status_code == 204:
            return {}
        assert response.status_code == 200 and response.json, response.get_data(as_text=True)
        return dict(response.json["response"])

    def layout(self, path: str) -> dict[str, Any]:
        """Ask Dash Pages' router for a page's layout; return every component's props by id."""
        response = self.call(
            [("_pages_content", "children"), ("_pages_store", "data")],
            [
                ("_pages_location", "pathname", path),
                ("_pages_location", "search", SEARCH if path != "/" else ""),
            ],
        )
        found: dict[str, Any] = {}
        _collect(response["_pages_content"]["children"], found)
        return found


def _collect(node: Any, found: dict[str, Any]) -> None:
    """Index a serialised Dash tree's components by id."""
    if isinstance(node, list):
        for child in node:
            _collect(child, found)
    elif isinstance(node, dict):
        props = node.get("props")
        if isinstance(props, dict):
            if isinstance(props.get("id"), str):
                found[props["id"]] = props
            for value in props.values():
                _collect(value, found)


def analytics_redraw(
    browser: Browser, layout: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Run the analytics page's redraw callback (KPIs, four charts, the version table).

    Its inputs are the layout's (watermark, split, filter state, latency percentile); without
    one, what the page opens with for the worst view: no sync yet, split by prompt version,
    percentile p50.
    """
    values: dict[str, dict[str, Any]] = {
        "analytics-watermark": {"data": None},
        "analytics-split": {"value": "prompt_version"},
        "analytics-state": {"data": SEARCH},
        "analytics-pct": {"value": "p50"},
        **(layout or {}),
    }
    return browser.fire("analytics-kpis.children", values)


def _grid_page(browser: Browser, page: str, query: Any) -> int:
    """Ask a page's grid for its first block of rows, as AG Grid does once it mounts."""
    grid = f"{page}-grid"
    response = browser.fire(
        f"{grid}.getRowsResponse",
        {grid: {"getRowsRequest": FIRST_BLOCK}, f"{grid}-query": {"data": query}},
    )
    rows = response[grid]["getRowsResponse"]
    assert rows["rowData"], "the first block is empty"
    return int(rows["rowCount"])


# Each page's callbacks that fire when it arrives (prevent_initial_call off), by first output.
REDRAWS = {
    "home": "home-stats.children",
    "traces": "traces-latency.figure",
    "evaluations": "evaluations-scores.figure",
}


def load_page(browser: Browser, page: str) -> None:
    """Fetch a page's layout, then run every callback the browser fires when it arrives."""
    path = "/" if page == "home" else f"/{page}"
    found = browser.layout(path)
    if page == "home":
        browser.fire(REDRAWS[page], found)
        return
    assert found[f"{page}-state"].get("data"), "the layout carried no filter state"
    if page == "analytics":
        analytics_redraw(browser, found)
        browser.fire("analytics-pane.children", found)
        browser.fire("analytics-compare.children", found)
        return
    response = browser.fire(REDRAWS[page], found)
    # The grid asks for rows once redraw hands it the query (refreshRows, client side).
    _grid_page(browser, page, response[f"{page}-grid-query"]["data"])


def measure_page(size: str, page: str) -> dict[str, float]:
    """Time a page cold in this fresh process: layout plus every initial callback."""
    with tempfile.TemporaryDirectory(prefix="page-bench-") as workdir:
        browser = Browser(size, Path(workdir))
        if page == "home":
            # Home's windows roll with the clock; frozen at the seeded end they hold data.
            # (Dash Pages loaded the module when create_app ran, under this name.)
            home: Any = sys.modules["pages.home"]
            home.datetime = _FrozenClock
        started = time.perf_counter()
        load_page(browser, page)
        cold = time.perf_counter() - started
        return {
            f"page_cold_ms_{size}_{page}": round(cold * 1000, 1),
            f"web_peak_rss_mb_{size}_{page}": round(_status_kb("VmHWM") / 1024, 1),
        }


def measure_analytics(size: str) -> dict[str, float]:
    """Time the analytics redraw callback cold, then warm with the same watermark and filters."""
    with tempfile.TemporaryDirectory(prefix="page-bench-") as workdir:
        browser = Browser(size, Path(workdir))
        module: Any = sys.modules["pages.analytics"]  # loaded by Dash Pages in create_app
        draws = 0
        draw = module._draw

        def counted(*args: Any) -> Any:
            nonlocal draws
            draws += 1
            return draw(*args)

        # Counted, so a warm call that recomputes instead of hitting the cache fails the run.
        module._draw = counted
        started = time.perf_counter()
        first = analytics_redraw(browser)
        cold = time.perf_counter() - started
        assert f"{SIZES[size]:,}" in json.dumps(first["analytics-kpis"]), "count not shown"
        warm = []
        for _ in range(WARM_RUNS):
            started = time.perf_counter()
            analytics_redraw(browser)
            warm.append(time.perf_counter() - started)
        assert draws == 1, f"{draws} computations: the warm redraws missed the cache"
        return {
            f"analytics_cold_ms_{size}": round(cold * 1000, 1),
            f"analytics_warm_ms_{size}": round(statistics.median(warm) * 1000, 2),
            f"web_peak_rss_mb_{size}_analytics_redraw": round(_status_kb("VmHWM") / 1024, 1),
        }


def measure_export(size: str) -> dict[str, float]:
    """Stream the llm-calls CSV of the worst view through the export route, reading it all."""
    with tempfile.TemporaryDirectory(prefix="page-bench-") as workdir:
        browser = Browser(size, Path(workdir))
        _reset_peak()
        before = _status_kb("VmRSS")
        started = time.perf_counter()
        response = browser.client.get(
            f"/api/export/analytics/llm-calls.csv{SEARCH}", buffered=False
        )
        assert response.status_code == 200, response.status_code
        lines = size_bytes = 0
        for chunk in cast("Iterable[bytes]", response.response):
            lines += chunk.count(b"\n")
            size_bytes += len(chunk)
        response.close()
        elapsed = time.perf_counter() - started
        peak = (_status_kb("VmHWM") - before) / 1024
        assert lines - 1 == SIZES[size], lines
        log.info(
            "%s: %d rows, %.1f MB of CSV in %.1f s", size, lines - 1, size_bytes / 1e6, elapsed
        )
        return {
            f"csv_export_rows_per_s_{size}": round((lines - 1) / elapsed, 0),
            f"csv_export_peak_mb_{size}": round(peak, 1),
        }


def measure_pandas(size: str, rounds: int) -> dict[str, float]:
    """Time the old pandas path against the store redraw, alternating, in one process."""
    from store import analytics
    from store.facts import open_store

    filters = analytics.Filters(project=PROJECT, start=START, end=END)
    with open_store(f"chdb://{DATA_DIR}", database=f"bench_{size}") as store:

        def engine() -> None:
            assert analytics.redraw(store, filters).kpis.metrics.count == SIZES[size]

        def pandas() -> None:
            assert pandas_baseline.redraw(store, filters)[0].count == SIZES[size]

        engine()  # warm-up: both sides then read from the page cache
        pandas()
        times: dict[str, list[float]] = {"engine": [], "pandas": []}
        for index in range(rounds):
            pair = (engine, pandas) if index % 2 == 0 else (pandas, engine)
            for action in pair:
                started = time.perf_counter()
                action()
                times[action.__name__].append(time.perf_counter() - started)
        ratios = [p / e for p, e in zip(times["pandas"], times["engine"], strict=True)]
        values = summarise(
            [
                {
                    f"engine_vs_pandas_speedup_{size}": ratio,
                    f"pandas_redraw_ms_{size}": p * 1000,
                    f"engine_redraw_ms_{size}": e * 1000,
                }
                for ratio, p, e in zip(ratios, times["pandas"], times["engine"], strict=True)
            ]
        )
    return values


def _round(sizes: list[str]) -> dict[str, float]:
    """Measure every page and the analytics redraw once per size, each in a fresh process."""
    measured: dict[str, float] = {}
    for size in sizes:
        measured.update(run_child("bench.page_bench", "--analytics", size))
        for page in PAGES:
            measured.update(run_child("bench.page_bench", "--page", size, page))
        # The web process's peak: the largest of the processes that served this size's redraws.
        measured[f"web_peak_rss_mb_{size}"] = max(
            v for k, v in measured.items() if k.startswith(f"web_peak_rss_mb_{size}_")
        )
    if {"1m", "10m"} <= set(sizes):
        measured["analytics_growth_1m_10m"] = (
            measured["analytics_cold_ms_10m"] / measured["analytics_cold_ms_1m"]
        )
        measured["web_rss_growth_1m_10m"] = (
            measured["web_peak_rss_mb_10m"] / measured["web_peak_rss_mb_1m"]
        )
    return measured


def main(argv: list[str] | None = None) -> int:
    """Measure each page and figure in fresh processes, sizes alternating; merge the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per figure")
    parser.add_argument("--pandas-rounds", type=int, default=5)
    parser.add_argument("--skip", nargs="*", default=[], choices=["pages", "export", "pandas"])
    parser.add_argument("--page", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--analytics", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--export", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--pandas", choices=list(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not write results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # Children: one job each, its figures printed as the last line.
    if args.page:
        print(json.dumps(measure_page(*args.page)))
        return 0
    if args.analytics:
        print(json.dumps(measure_analytics(args.analytics)))
        return 0
    if args.export:
        print(json.dumps(measure_export(args.export)))
        return 0
    if args.pandas:
        print(json.dumps(measure_pandas(args.pandas, args.pandas_rounds)))
        return 0
    for size in args.sizes:
        subprocess.run(
            [sys.executable, "-m", "bench.store_bench", "--seed", size], cwd=PROJECT_DIR, check=True
        )
    values: dict[str, float] = {}
    if "pages" not in args.skip:
        rounds = []
        for index in range(args.rounds):
            # Sizes alternate round by round, so drift on a shared machine hits both alike.
            rounds.append(_round(args.sizes if index % 2 == 0 else args.sizes[::-1]))
        values.update(summarise(rounds))
    if "export" not in args.skip and "1m" in args.sizes:
        values.update(
            summarise([run_child("bench.page_bench", "--export", "1m") for _ in range(args.rounds)])
        )
    if "pandas" not in args.skip and "1m" in args.sizes:
        values.update(
            run_child(
                "bench.page_bench", "--pandas", "1m", "--pandas-rounds", str(args.pandas_rounds)
            )
        )
    for key, value in sorted(values.items()):
        log.info("%s = %s", key, value)
    if not args.no_write:
        write_results(values)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
