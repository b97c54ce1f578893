"""The benchmarks, one function per comparison, and the Markdown table of their results."""

from __future__ import annotations

import os
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import requests
from dash import MATCH
from dash._utils import stringify_id

from app import create_app
from bench.common import (
    DATA_DIR,
    Dataset,
    Results,
    Stats,
    dashboard_server,
    interleave,
    log,
    signed_in,
    timed,
)
from bench.sync_throughput import age_spans, sync_vs_paging
from components.filter_bar import FilterBarAIO
from devtools.demo_data import send_traces
from devtools.phoenix import free_port
from services.cache import cache
from services.container import get_services
from services.phoenix import PhoenixClient
from settings import PROJECT_DIR
from store import analytics as store_analytics

Suite = Callable[[dict[str, Dataset], Results], None]
PROJECT = "support-bot"
VERSION = "v2"
CONDITION = f"span_kind == 'LLM' and llm.prompt_template.version == '{VERSION}'"


# Proxy ------------------------------------------------------------------------------------------


def _large_dataset(phoenix: PhoenixClient, rows: int = 20_000) -> str:
    """Return the id of a large Phoenix dataset for download tests, uploading it once."""
    name = f"bench-download-{rows}"
    for dataset in phoenix.paginate("/v1/datasets", {"limit": 100}):
        if dataset["name"] == name:
            return str(dataset["id"])
    body = {
        "name": name,
        "inputs": [{"question": f"How do I reset password number {i}? " * 4} for i in range(rows)],
        "outputs": [
            {"answer": f"Open settings, choose security, step {i}. " * 6} for i in range(rows)
        ],
        "metadata": [{"row": i} for i in range(rows)],
    }
    # A one-off upload that Phoenix takes a while to store: longer than the client's read timeout.
    response = requests.post(
        f"{phoenix.base_url}/v1/datasets/upload", params={"sync": "true"}, json=body, timeout=900
    )
    response.raise_for_status()
    return str(response.json()["data"]["dataset_id"])


def proxy(datasets: dict[str, Dataset], results: Results) -> None:
    """Time span reads and a large CSV download through /api/phoenix against Phoenix directly."""
    dataset = datasets["50k"]
    phoenix = PhoenixClient(dataset.phoenix.url)
    dataset_id = _large_dataset(phoenix)
    direct = requests.Session()
    with dashboard_server(dataset) as base:
        through = signed_in(base)
        path = f"/v1/projects/{PROJECT}/spans?limit=1000"

        def via_proxy() -> None:
            response = through.get(f"{base}/api/phoenix{path}", timeout=60)
            assert response.status_code == 200 and len(response.json()["data"]) == 1000

        def to_phoenix() -> None:
            response = direct.get(f"{dataset.phoenix.url}{path}", timeout=60)
            assert response.status_code == 200 and len(response.json()["data"]) == 1000

        spans = interleave(via_proxy, to_phoenix, rounds=30, warmup=3)
        results.add("proxy_overhead_ratio", spans.ratio)

        sizes: list[int] = []

        def download(session: requests.Session, url: str) -> Callable[[], None]:
            def run() -> None:
                with session.get(url, stream=True, timeout=120) as response:
                    assert response.status_code == 200
                    sizes.append(sum(len(c) for c in response.iter_content(1 << 16)))

            return run

        csv_path = f"/v1/datasets/{dataset_id}/csv"
        downloads = interleave(
            download(through, f"{base}/api/phoenix{csv_path}"),
            download(direct, f"{dataset.phoenix.url}{csv_path}"),
            rounds=10,
        )
        assert len(set(sizes)) == 1, "proxy and direct downloads differ in size"
        # Same bytes both ways, so throughput(proxy) / throughput(direct) = t(direct) / t(proxy).
        results.add("proxy_download_throughput_ratio", _inverse(downloads.ratio))
        results.add("proxy_download_mb", sizes[0] / 1e6)


def _inverse(stats: Stats) -> Stats:
    return Stats(1 / stats.median, 1 / stats.p75, 1 / stats.p25, stats.n)


# Analytics --------------------------------------------------------------------------------------


class _Callback:
    """The analytics page's redraw callback for one dataset, run in its own app context."""

    def __init__(self, dataset: Dataset) -> None:
        self.app = create_app(dataset.settings())
        self.search = dataset.query(project=PROJECT, versions=VERSION)
        self.redraw = sys.modules["pages.analytics"].redraw

    def warm(self) -> Any:
        with self.app.server.test_request_context("/"):
            return self.redraw(None, "prompt_version", self.search)

    def cold(self) -> Any:
        with self.app.server.test_request_context("/"):
            cache.clear()
            return self.redraw(None, "prompt_version", self.search)


def _graphql_kpis(dataset: Dataset, names: list[str]) -> Callable[[], Any]:
    phoenix = PhoenixClient(dataset.phoenix.url)
    project_id = phoenix.project(PROJECT)["id"]
    start, end = dataset.window

    def run() -> Any:
        aggregates = phoenix.project_aggregates(
            project_id, start=start, end=end, filter_condition=CONDITION
        )
        summaries = [
            phoenix.annotation_summary(
                project_id, n, start=start, end=end, filter_condition=CONDITION
            )
            for n in names
        ]
        return aggregates, summaries

    return run


def _naive_rest(dataset: Dataset) -> Callable[[], Any]:
    """Page every span of the project through REST, then aggregate in pandas."""
    phoenix = PhoenixClient(dataset.phoenix.url)
    start, end = dataset.window

    def run() -> Any:
        spans = pd.json_normalize(
            list(
                phoenix.paginate(
                    f"/v1/projects/{PROJECT}/spans",
                    {"limit": 1000, "start_time": start.isoformat(), "end_time": end.isoformat()},
                )
            )
        )
        llm = spans[
            (spans["span_kind"] == "LLM")
            & (spans.get("attributes.llm.prompt_template.version") == VERSION)
        ]
        latency = (
            pd.to_datetime(llm["end_time"], format="ISO8601")
            - pd.to_datetime(llm["start_time"], format="ISO8601")
        ).dt.total_seconds() * 1000
        annotations = pd.DataFrame(
            list(phoenix.span_annotations(PROJECT, llm["context.span_id"].tolist()))
        )
        return (
            len(llm),
            latency.quantile([0.5, 0.95, 0.99]).tolist(),
            llm.get("attributes.llm.token_count.total", pd.Series(dtype=float)).sum(),
            (llm["status_code"] == "ERROR").mean(),
            annotations.groupby("name")["result"].count() if not annotations.empty else None,
        )

    return run


def analytics_suite(datasets: dict[str, Dataset], results: Results) -> None:
    """Time the analytics callback warm, cold, against GraphQL, naive REST, and at 1k."""
    big, small = _Callback(datasets["50k"]), _Callback(datasets["1k"])
    big.warm()
    warm = Stats.of([timed(big.warm) for _ in range(30)])
    results.add("analytics_warm_ms_50k", warm, scale=1000)

    store = get_services(big.app.server).store
    summaries = store_analytics.score_summary(store, store_analytics.Filters(project=PROJECT))
    names = sorted({summary.name for summary in summaries})
    graphql = interleave(big.cold, _graphql_kpis(datasets["50k"], names), rounds=10)
    results.add("analytics_cold_ms_50k", graphql.a, scale=1000)
    results.add("analytics_graphql_ms_50k", graphql.b, scale=1000)
    results.add("analytics_cold_vs_graphql_ratio_50k", graphql.ratio)

    rest = interleave(_naive_rest(datasets["50k"]), big.cold, rounds=3)
    results.add("analytics_rest_ms_50k", rest.a, scale=1000)
    results.add("analytics_vs_rest_speedup_50k", rest.ratio)

    growth = interleave(big.cold, small.cold, rounds=10)
    results.add("analytics_cold_ms_1k", growth.b, scale=1000)
    results.add("analytics_growth_ratio", growth.ratio)


# Sync -------------------------------------------------------------------------------------------


def sync_suite(datasets: dict[str, Dataset], results: Results) -> None:
    """Time an idle sync tick at 50k against 1k of history, and a tick that reads 100 new spans."""
    syncs = {}
    for size in ("50k", "1k"):
        # A copy of the synced database (its cursors), and the store's spans aged by an hour:
        # the steady state in which no span was synced in the last minutes (the spans this
        # suite adds would otherwise be "hot" in the next run). The store is the cached one;
        # the spans a run adds are written into it once, and re-reading them changes nothing.
        source = Path(datasets[size].database_url.removeprefix("sqlite:///"))
        copy = source.with_name(f"sync-copy-{size}.db")
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
        app = create_app(datasets[size].settings(database_url=f"sqlite:///{copy}"))
        age_spans(get_services(app.server).store, timedelta(hours=1))
        sync = get_services(app.server).sync
        assert sync is not None
        sync.tick()  # reads the registry and anything left, so the timed ticks are idle
        syncs[size] = sync
    # Alternating ticks, one every 2.5 s (each side every 5 s, as deployed), for two minutes:
    # the once-a-minute slice of older spans falls inside the measurement, not outside it.
    ticks: dict[str, list[float]] = {"50k": [], "1k": []}
    for index in range(48):
        first, second = ("50k", "1k") if index % 4 < 2 else ("1k", "50k")
        size = first if index % 2 == 0 else second
        ticks[size].append(timed(syncs[size].tick))
        time.sleep(2.5)
    ratios = [a / b for a, b in zip(ticks["50k"], ticks["1k"], strict=True)]
    results.add("sync_idle_tick_ms_50k", Stats.of(ticks["50k"]), scale=1000)
    results.add("sync_idle_tick_ms_1k", Stats.of(ticks["1k"]), scale=1000)
    results.add("sync_idle_tick_ratio", Stats.of(ratios))
    # The mean carries the minute's slice too: the cost Phoenix sees, averaged over ticks.
    results.add(
        "sync_idle_tick_mean_ratio", statistics.mean(ticks["50k"]) / statistics.mean(ticks["1k"])
    )

    times = []
    for attempt in range(3):
        send_traces(datasets["50k"].phoenix.url, count=100, seed=int(time.time()) * 10 + attempt)
        start = time.perf_counter()
        tick = syncs["50k"].tick()
        times.append(time.perf_counter() - start)
        assert tick.llm_spans >= 100, tick
    results.add("sync_100_new_spans_ms", Stats.of(times), scale=1000)


# Fan-out ----------------------------------------------------------------------------------------


class _Counter(BaseHTTPRequestHandler):
    """Forward to Phoenix and count each request: it stands between the dashboard and Phoenix."""

    target: ClassVar[str] = ""
    count: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()
    session: ClassVar[requests.Session] = requests.Session()

    def _forward(self) -> None:
        with _Counter.lock:
            _Counter.count += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
        }
        upstream = _Counter.session.request(
            self.command, f"{_Counter.target}{self.path}", data=body, headers=headers, timeout=60
        )
        payload = upstream.content
        self.send_response(upstream.status_code)
        self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _forward

    def log_message(self, *_args: Any) -> None:
        """Stay quiet."""


def _poll_payloads(page: str, seen: int | None) -> list[dict[str, Any]]:
    """Return the requests one tick of a page's live poll sends, as the browser sends them.

    The filter bar's shared poll (a MATCH callback on the bar's dict ids, built by
    FilterBarAIO.ids), with the watermark the viewer last saw; on home, also the Phoenix
    banner's redraw, which listens to the same timer.
    """
    ids = FilterBarAIO.ids

    def key(make: Callable[[Any], dict[str, Any]], prop: str) -> str:
        return f"{stringify_id(make(MATCH))}.{prop}"

    poll = {"id": ids.poll(page), "property": "n_intervals", "value": 1}
    changed = [f"{stringify_id(ids.poll(page))}.n_intervals"]
    payloads: list[dict[str, Any]] = [
        {
            "output": f"..{key(ids.watermark, 'data')}...{key(ids.live_status, 'children')}..",
            "outputs": [
                {"id": ids.watermark(page), "property": "data"},
                {"id": ids.live_status(page), "property": "children"},
            ],
            "inputs": [poll, {"id": ids.live(page), "property": "value", "value": True}],
            "state": [{"id": ids.watermark(page), "property": "data", "value": seen}],
            "changedPropIds": changed,
        }
    ]
    if page == "home":
        payloads.append(
            {
                "output": "home-status.children",
                "outputs": {"id": "home-status", "property": "children"},
                "inputs": [poll],
                "changedPropIds": changed,
            }
        )
    return payloads


def _seen_watermark(page: str, body: dict[str, Any], seen: int | None) -> int | None:
    """Return the watermark a poll's answer leaves in the bar's store (unchanged if none)."""
    stored = body.get("response", {}).get(stringify_id(FilterBarAIO.ids.watermark(page)), {})
    return stored.get("data", seen)


def fanout(datasets: dict[str, Dataset], results: Results) -> None:
    """Count Phoenix requests per minute with 50 viewers polling against 1 viewer."""
    dataset = datasets["10k"]
    _Counter.target = dataset.phoenix.url
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {"PHOENIX_URL": f"http://127.0.0.1:{port}", "SYNC_WORKER": "true", "SYNC_INTERVAL_S": "5"}
    # Whole minutes, so each window holds exactly one of the sync's once-a-minute slices.
    window_s = 60.0
    try:
        with dashboard_server(dataset, **env) as base:
            sessions = [signed_in(base) for _ in range(50)]
            time.sleep(3)  # the first requests start the sync worker; let its first tick pass

            lock = threading.Lock()
            polls = {True: 0, False: 0}  # answered, failed

            def window(viewers: int) -> float:
                stop = threading.Event()

                def viewer(session: requests.Session, page: str) -> None:
                    seen: int | None = None
                    while not stop.is_set():
                        for payload in _poll_payloads(page, seen):
                            response = session.post(
                                f"{base}/_dash-update-component", json=payload, timeout=30
                            )
                            with lock:
                                polls[response.status_code in (200, 204)] += 1
                            if response.status_code == 200:
                                seen = _seen_watermark(page, response.json(), seen)
                        stop.wait(1.0)  # a 1 s poll interval: five times the default pressure

                threads = [
                    threading.Thread(target=viewer, args=(s, "home" if i % 2 == 0 else "analytics"))
                    for i, s in enumerate(sessions[:viewers])
                ]
                before = _Counter.count
                for thread in threads:
                    thread.start()
                time.sleep(window_s)
                stop.set()
                for thread in threads:
                    thread.join()
                return (_Counter.count - before) * 60 / window_s

            one, fifty = [window(1)], [window(50)]
            # Polls the app refused would not reach Phoenix either: the count would mean nothing.
            if polls[False] or not polls[True]:
                raise RuntimeError(f"fanout: {polls[False]} of {sum(polls.values())} polls failed")
            results.add("fanout_phoenix_requests_per_min_1", Stats.of(one))
            results.add("fanout_phoenix_requests_per_min_50", Stats.of(fifty))
            results.add("fanout_phoenix_requests_ratio", fifty[0] / one[0])
    finally:
        server.shutdown()


# CSV export -------------------------------------------------------------------------------------


def csv_export(datasets: dict[str, Dataset], results: Results) -> None:
    """Export 100k rows through the endpoint against DataFrame.to_csv, and its peak memory."""
    import subprocess

    script = PROJECT_DIR / "bench" / "export_probe.py"
    output = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_DIR,
        env={**os.environ, "PYTHONPATH": str(PROJECT_DIR)},
    ).stdout
    values = dict(line.split("=", 1) for line in output.strip().splitlines() if "=" in line)
    for key in ("csv_export_rows_per_s", "csv_export_vs_pandas_ratio", "csv_export_peak_mb"):
        results.add(key, float(values[key]))
    for key in ("csv_export_vs_pandas_ratio_p25", "csv_export_vs_pandas_ratio_p75"):
        results.values[key] = float(values[key])


# Page loads -------------------------------------------------------------------------------------

PAGE_READY = {
    "home": ("/", "#home-stats .js-plotly-plot .trace"),
    "traces": ("/traces", "#traces-latency .trace"),
    "evaluations": ("/evaluations", "#evaluations-scores .trace"),
    "analytics": ("/analytics", "#analytics-latency .trace"),
    "experiments": ("/experiments", "#experiments-grid .ag-row"),
    "playground": ("/playground", "#playground-template"),
}


def page_loads(datasets: dict[str, Dataset], results: Results) -> None:
    """Time navigation to the first chart drawn on each page, in headless Chromium, at 10k."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD

    dataset = datasets["10k"]
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,900"):
        options.add_argument(argument)
    with dashboard_server(dataset) as base:
        driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            driver.get(f"{base}/login")
            driver.find_element("id", "login-email").send_keys(DEMO_EMAIL)
            driver.find_element("id", "login-password").send_keys(DEMO_PASSWORD)
            driver.find_element("id", "login-submit").click()
            WebDriverWait(driver, 30).until(lambda d: "/login" not in d.current_url)
            for page, (path, selector) in PAGE_READY.items():
                query = "" if page in ("home", "experiments", "playground") else dataset.query()
                url = f"{base}{path}{query}"
                times = []
                for _ in range(4):
                    driver.get("about:blank")
                    start = time.perf_counter()
                    driver.get(url)
                    try:
                        WebDriverWait(driver, 60, poll_frequency=0.02).until(
                            lambda d, s=selector: d.find_elements("css selector", s)
                        )
                    except TimeoutException:
                        shot = DATA_DIR / f"page-{page}.png"
                        driver.save_screenshot(str(shot))
                        log.error("%s: no %s after 60 s; see %s", page, selector, shot)
                        break
                    times.append(time.perf_counter() - start)
                if len(times) < 2:
                    continue
                # The first load also fetches the JS bundles; the median of the rest is a revisit.
                results.add(f"page_load_ms_{page}", Stats.of(times[1:]), scale=1000)
                results.add(f"page_load_first_ms_{page}", times[0], scale=1000)
        finally:
            driver.quit()


ALL: dict[str, Suite] = {
    "proxy": proxy,
    "analytics": analytics_suite,
    "sync": sync_suite,
    "sync_throughput": sync_vs_paging,
    "fanout": fanout,
    "export": csv_export,
    "pages": page_loads,
}

# Table ------------------------------------------------------------------------------------------

# (key, what, "max" / "min" / None for report only, bound): the text and the check both follow.
TARGETS: list[tuple[str, str, str | None, str]] = [
    ("proxy_overhead_ratio", "span page through /api/phoenix vs direct", "max", "1.10"),
    ("proxy_download_throughput_ratio", "dataset CSV bytes/s, proxy vs direct", "min", "0.90"),
    ("analytics_warm_ms_50k", "analytics callback, cache warm, 50k (ms)", "max", "100"),
    (
        "analytics_cold_vs_graphql_ratio_50k",
        "cold callback vs Phoenix GraphQL KPIs, 50k",
        "max",
        "2.0",
    ),
    (
        "analytics_vs_rest_speedup_50k",
        "naive REST paging + pandas vs cold callback, 50k",
        "min",
        "50",
    ),
    ("analytics_growth_ratio", "cold callback 50k ÷ 1k", "max", "5"),
    ("sync_idle_tick_ratio", "idle sync tick, 50k ÷ 1k of history", "max", "1.5"),
    (
        "sync_idle_tick_mean_ratio",
        "idle sync tick, mean with the minute's annotation slice",
        None,
        "",
    ),
    ("sync_100_new_spans_ms", "sync tick reading 100 new spans (ms)", None, ""),
    (
        "sync_vs_phoenix_paging_ratio",
        "full sync vs REST paging of the same spans, spans/s",
        "min",
        "0.5",
    ),
    ("sync_idle_quick_ratio_50k_vs_1k", "idle sync tick, 50k ÷ 1k of history", "max", "1.5"),
    ("fanout_phoenix_requests_ratio", "Phoenix requests/min, 50 viewers vs 1", "max", "1.2"),
    ("csv_export_rows_per_s", "CSV export of 100k rows (rows/s)", None, ""),
    ("csv_export_vs_pandas_ratio", "export endpoint vs DataFrame.to_csv", "max", "1.5"),
    ("csv_export_peak_mb", "extra peak memory of that export (MB)", "max", "100"),
    *[
        (f"page_load_ms_{p}", f"{p}: navigation to first chart, 10k (ms)", "max", "2500")
        for p in PAGE_READY
    ],
    # Written by `python -m bench.store_bench` (the ClickHouse facts store, chdb in-process).
    ("store_redraw_cold_ms_10m", "store: cold analytics redraw, 10M spans (ms)", "max", "1500"),
    ("store_redraw_growth_ratio", "store: cold redraw 10M ÷ 1M", "max", "3.0"),
    ("store_peak_rss_mb_10m", "store: peak RSS with the engine in-process, 10M (MB)", "max", "800"),
    # The engine alone, without the web app's base: the memory targets are web_*.
    ("store_rss_growth_ratio", "store: peak RSS 10M ÷ 1M, engine alone", None, ""),
    (
        "exactness_max_rel_error_1m",
        "store: worst relative error of 224 KPI and per-version numbers vs numpy, 1M",
        "max",
        "1e-9",
    ),
    ("store_csv_export_rows_per_s_1m", "store: streamed CSV export, 1M spans (rows/s)", None, ""),
    ("store_csv_export_peak_mb_1m", "store: extra peak memory of that export (MB)", "max", "100"),
    # Written by `python -m bench.page_bench` (the pages through Dash, over the same stores).
    ("analytics_cold_ms_10m", "pages: analytics redraw callback, cold, 10M (ms)", "max", "1500"),
    ("analytics_warm_ms_10m", "pages: that callback again, cache hit, 10M (ms)", "max", "50"),
    ("analytics_growth_1m_10m", "pages: cold analytics redraw, 10M ÷ 1M", "max", "3.0"),
    *[
        (
            f"page_cold_ms_10m_{p}",
            f"pages: {p} layout + initial callbacks, cold, 10M (ms)",
            "max",
            "2000",
        )
        for p in ("home", "traces", "evaluations", "analytics")
    ],
    ("web_peak_rss_mb_10m", "pages: peak RSS of the serving process, 10M (MB)", "max", "800"),
    ("web_rss_growth_1m_10m", "pages: that peak RSS, 10M ÷ 1M", "max", "1.3"),
    (
        "csv_export_rows_per_s_1m",
        "pages: llm-calls.csv via the export route, 1M (rows/s)",
        None,
        "",
    ),
    ("csv_export_peak_mb_1m", "pages: extra peak memory of that export (MB)", "max", "100"),
    ("engine_vs_pandas_speedup_1m", "pages: old pandas redraw ÷ store redraw, 1M", None, ""),
    # Written by `python -m bench.annotation_lag` (a real Phoenix, spans aged three days).
    (
        "annotation_lag_p95_s",
        "span and trace annotations on old spans: post to shown, 5 s checks (s)",
        "max",
        "120",
    ),
    (
        "annotation_lag_bound_s",
        "that lag as deployed: a check a minute, a tick every 5 s (s)",
        "max",
        "120",
    ),
    # Written by `python -m bench.monitor_bench` (the 10M store; one monitor, both sides).
    (
        "monitor_eval_ms_10m",
        "monitors: one evaluation, worst metric (p95 latency, 7-day window, ~778k calls a "
        "side), cold, 10M (ms)",
        "max",
        "1000",
    ),
]
TABLE_START, TABLE_END = "<!-- bench:start -->", "<!-- bench:end -->"


def render_table(values: dict[str, float]) -> str:
    """Render the results against their targets as a Markdown table."""
    lines = ["| key | what | measured (p25 to p75) | target | met |", "|---|---|---|---|---|"]
    for key, what, kind, bound in TARGETS:
        target = {"max": f"≤ {bound}", "min": f"≥ {bound}", None: "report"}[kind]
        if key not in values:
            lines.append(f"| `{key}` | {what} | not run | {target} | |")
            continue
        value = values[key]
        spread = (
            f" ({values[key + '_p25']:g} to {values[key + '_p75']:g})"
            if key + "_p25" in values
            else ""
        )
        if kind is None:
            met = "report"
        else:
            within = value <= float(bound) if kind == "max" else value >= float(bound)
            met = "yes" if within else "**no**"
        lines.append(f"| `{key}` | {what} | {value:g}{spread} | {target} | {met} |")
    return "\n".join(lines)


def write_table(
    values: dict[str, float],
    results_md: Path = PROJECT_DIR / "bench" / "RESULTS.md",
    readme: Path = PROJECT_DIR / "README.md",
) -> str:
    """Write RESULTS.md and the README's copy of the table, between its markers."""
    table = render_table(values)
    results_md.write_text(
        "# Benchmark results\n\nWritten by `make bench`; see bench/README.md.\n\n" + table + "\n"
    )
    text = readme.read_text()
    if TABLE_START in text and TABLE_END in text:
        head, rest = text.split(TABLE_START, 1)
        tail = rest.split(TABLE_END, 1)[1]
        readme.write_text(f"{head}{TABLE_START}\n{table}\n{TABLE_END}{tail}")
    log.info("\n%s", table)
    return table
