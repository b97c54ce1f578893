"""`make load`: 50 simulated analysts against gunicorn, a warm-up and three timed runs."""

# Phoenix serves the cached bench data (bench/data/phoenix-<size>); the dashboard runs under
# gunicorn on the throwaway PostgreSQL and Redis that `devtools.services run` provides, synced
# from that Phoenix at start-up. After every run the resident memory of the gunicorn master and
# workers is read from /proc; errors or a growth trend make the exit status non-zero.

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text

from app import create_app
from bench.common import SECRET, SIZES, Dataset, ensure_dataset, wait_until_healthy
from db.migrate import upgrade
from devtools.phoenix import free_port
from load.analyst import Analyst, Plan
from load.client import Recorder, Sample
from load.stats import Latency, memory_verdict
from services import prompt_filters, users
from services.container import get_services
from settings import PROJECT_DIR

log = logging.getLogger("load")
RESULTS_JSON = PROJECT_DIR / "load" / "results.json"
WORK_DIR = PROJECT_DIR / ".tmp" / "load"
PASSWORD = "load-test-password"  # noqa: S105  (throwaway accounts in a throwaway database)
KINDS = ("callback", "page", "export", "login")
POLL_INTERVAL_S = 5  # the deployed default; the analysts' timers tick at the same pace
# Analysts arrive over this many seconds, as a team does at nine, not in one instant.
RAMP_S = 5.0


def analyst_email(index: int) -> str:
    """Return the login of analyst number index."""
    return f"analyst-{index:02d}@load.example.com"


def prepare_database(dataset: Dataset, database_url: str, analysts: int) -> list[str]:
    """Migrate the database, create the analysts and sync it from Phoenix; return the prompts."""
    upgrade(database_url)
    app = create_app(dataset.settings(database_url=database_url))
    services = get_services(app.server)
    with services.sessions.begin() as db:
        for index in range(analysts):
            if users.get_by_email(db, analyst_email(index)) is None:
                users.create_user(
                    db, analyst_email(index), PASSWORD, display_name=f"Analyst {index}"
                )
    assert services.sync is not None
    started = time.perf_counter()
    while services.sync.tick().changed:  # the first tick reads everything; repeat to be sure
        pass
    log.info("dashboard database synced from Phoenix in %.1f s", time.perf_counter() - started)
    if services.engine.dialect.name == "postgresql":
        # A database in service has planner statistics; a freshly filled one gets them only
        # when autovacuum comes round, which would slow whichever run it happened to precede.
        with services.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    # The options are cached per watermark, in the app's cache.
    with app.server.app_context(), services.sessions() as db:
        return prompt_filters.filter_options(db, services.store)["prompt"]


# What in gunicorn's log means a request or a worker went wrong, whatever the client saw.
SERVER_PROBLEMS = re.compile(r"Traceback|\bERROR\b|CRITICAL|WORKER TIMEOUT|SIGKILL|SIGABRT")


@dataclass(frozen=True)
class Server:
    """A running gunicorn: its base URL, master process and log."""

    base: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_size(self) -> int:
        """Return how far the log has grown, to read only what a run added."""
        return self.log_path.stat().st_size

    def problems_since(self, offset: int) -> list[str]:
        """Return the log lines since offset that report an exception or a lost worker."""
        with self.log_path.open("rb") as log_file:
            log_file.seek(offset)
            text = log_file.read().decode(errors="replace")
        return [line for line in text.splitlines() if SERVER_PROBLEMS.search(line)]


@contextmanager
def gunicorn(
    dataset: Dataset, database_url: str, redis_url: str, workers: int, threads: int, log_path: Path
) -> Iterator[Server]:
    """Serve the dashboard under gunicorn as deployed: shared Redis, sync worker on."""
    port = free_port()
    environ = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PHOENIX_", "DATABASE_", "STORE_"))
        },
        "SECRET_KEY": SECRET,
        "DATABASE_URL": database_url,
        # Several workers: the ClickHouse server `devtools.services run` provides.
        "STORE_URL": dataset.store_url,
        "PHOENIX_URL": dataset.phoenix.url,
        "REDIS_URL": redis_url,
        "SYNC_WORKER": "true",
        "POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        "LOG_LEVEL": "WARNING",
    }
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                # Request errors would otherwise reach only the client; the log keeps tracebacks.
                "--error-logfile",
                "-",
                "app:server",
            ],
            env=environ,
            cwd=PROJECT_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, f"gunicorn did not start; see {log_path}")
        yield Server(base, process, log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def process_tree(root: int) -> list[int]:
    """Return root and every descendant process, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command may hold spaces and parentheses; the ppid follows the last ")".
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree += children
        frontier = children
    return tree


def process_tree_cpu_s(root: int) -> float:
    """Return the CPU seconds (user + system) that root and its descendants have used so far."""
    ticks = 0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")


def process_tree_rss_mb(root: int) -> dict[int, float]:
    """Return VmRSS in MB of root and every descendant, read from /proc."""
    rss = {}
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # exited meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1]) / 1024
    return rss


@dataclass(frozen=True)
class RunResult:
    """One run's counts, latencies and the memory after it."""

    name: str
    duration_s: float
    requests: int
    errors: int
    client_errors: int
    server_log_errors: int
    resent_on_closed_keepalive: int
    requests_per_s: float
    latency: dict[str, Latency]
    callbacks: dict[str, Latency]
    # CPU seconds per wall second: 1.0 is one core busy for the whole run.
    server_cpu_share: float
    load_generator_cpu_share: float
    rss_mb: float
    rss_by_pid_mb: dict[int, float]
    error_samples: list[str]
    resent_samples: list[str]


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _by_name(samples: list[Sample]) -> dict[str, Latency]:
    names = sorted({s.name for s in samples})
    return {n: Latency.of([s.seconds for s in samples if s.name == n]) for n in names}


def run_once(
    name: str, seed: int, plan: Plan, analysts: int, duration_s: float, server: Server
) -> RunResult:
    """Let the analysts work for duration_s, then read the server's memory."""
    recorder = Recorder()
    log_offset = server.log_size()
    server_cpu, own_cpu = process_tree_cpu_s(server.process.pid), _own_cpu_s()
    start = time.monotonic()
    deadline = start + duration_s
    threads = []
    for index in range(analysts):
        analyst = Analyst(plan, analyst_email(index), recorder, seed=seed * 1000 + index)
        arrival = start + RAMP_S * index / analysts
        thread = threading.Thread(target=analyst.run, args=(arrival, deadline), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout=max(0.0, deadline + plan.timeout_s + 30 - time.monotonic()))
    # An analyst still busy long after the deadline is waiting on a request that never ends.
    stuck = sum(thread.is_alive() for thread in threads)
    elapsed = time.monotonic() - start
    server_cpu = process_tree_cpu_s(server.process.pid) - server_cpu
    own_cpu = _own_cpu_s() - own_cpu
    samples: list[Sample] = recorder.samples
    time.sleep(2)  # let in-flight work and the sync tick settle before reading memory
    rss = process_tree_rss_mb(server.process.pid)
    errors = [s for s in samples if s.error]
    problems = server.problems_since(log_offset)
    result = RunResult(
        name=name,
        duration_s=round(elapsed, 1),
        requests=len(samples),
        errors=len(errors) + len(problems) + stuck,
        client_errors=len(errors) + stuck,
        server_log_errors=len(problems),
        resent_on_closed_keepalive=len(recorder.resent),
        requests_per_s=round(len(samples) / elapsed, 1),
        latency={
            **{
                kind: Latency.of([s.seconds for s in samples if s.kind == kind and not s.error])
                for kind in KINDS
            },
            "view": Latency.of([s.seconds for s in recorder.views if s.kind == "view"]),
            "nav": Latency.of([s.seconds for s in recorder.views if s.kind == "nav"]),
        },
        callbacks=_by_name([s for s in samples if s.kind == "callback" and not s.error]),
        server_cpu_share=round(server_cpu / elapsed, 2),
        load_generator_cpu_share=round(own_cpu / elapsed, 2),
        rss_mb=round(sum(rss.values()), 1),
        rss_by_pid_mb={pid: round(mb, 1) for pid, mb in rss.items()},
        error_samples=[f"{s.kind} {s.name}: {s.error}" for s in errors[:20]]
        + [f"server log: {line}" for line in problems[:20]]
        + [f"{stuck} analysts still waiting after the deadline"] * bool(stuck),
        resent_samples=[f"{s.kind} {s.name}: {s.error}" for s in recorder.resent[:5]],
    )
    log.info(
        "%s: %d requests, %d errors, %.1f req/s, RSS %.1f MB, CPU cores: server %.2f, us %.2f",
        name,
        result.requests,
        result.errors,
        result.requests_per_s,
        result.rss_mb,
        result.server_cpu_share,
        result.load_generator_cpu_share,
    )
    return result


def render_table(runs: list[RunResult]) -> str:
    """Render the runs as a Markdown table: latencies as p50 / p95 / p99 ms (count)."""
    columns = {
        "callback": "callbacks",
        "view": "page loads by URL",
        "nav": "navbar navigations",
        "page": "page requests",
        "export": "CSV exports",
    }
    head = "| run | s | requests | errors | resent | req/s | " + " | ".join(columns.values())
    lines = [head + " | CPU cores server / us | RSS MB |", "|" + "---|" * (8 + len(columns))]
    for run in runs:
        cells = []
        for kind in columns:
            cells.append(run.latency[kind].cell())
        lines.append(
            f"| {run.name} | {run.duration_s:g} | {run.requests} | {run.errors} "
            f"| {run.resent_on_closed_keepalive} | {run.requests_per_s:g} "
            f"| {' | '.join(cells)} "
            f"| {run.server_cpu_share:g} / {run.load_generator_cpu_share:g} | {run.rss_mb:g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start everything, run the warm-up and the timed runs, and judge errors and memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=list(SIZES), default="10k", help="Seeded data set.")
    parser.add_argument("--analysts", type=int, default=50)
    parser.add_argument("--duration", type=float, default=45.0, help="Seconds per timed run.")
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds of warm-up; 0: none.")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes.")
    parser.add_argument("--threads", type=int, default=4, help="Threads per gunicorn worker.")
    parser.add_argument("--think", type=float, nargs=2, default=(3.0, 8.0), metavar=("MIN", "MAX"))
    parser.add_argument("--output", type=Path, default=RESULTS_JSON, help="Where results go.")
    args = parser.parse_args(argv)
    if args.duration > 60 or args.runs < 3:
        parser.error("a run lasts at most 60 s, and the memory verdict needs 3 runs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    database_url, redis_url = os.environ.get("TEST_PG_URL"), os.environ.get("TEST_REDIS_URL")
    if not database_url or not redis_url or not os.environ.get("TEST_CLICKHOUSE_URL"):
        # gunicorn's workers share the facts store, which takes a ClickHouse server.
        log.error(
            "TEST_PG_URL, TEST_REDIS_URL and TEST_CLICKHOUSE_URL must be set: run `make load`"
        )
        return 2
    started = time.monotonic()
    dataset = ensure_dataset(args.size)
    try:
        prompts = prepare_database(dataset, database_url, args.analysts)
        start, end = dataset.window
        plan = Plan(
            base="",
            password=PASSWORD,
            prompts=tuple(prompts),
            window=(start.strftime("%Y-%m-%dT%H:%M"), end.strftime("%Y-%m-%dT%H:%M")),
            poll_interval_s=POLL_INTERVAL_S,
            think_s=(args.think[0], args.think[1]),
        )
        server_log = WORK_DIR / "gunicorn.log"
        server_log.unlink(missing_ok=True)
        with gunicorn(
            dataset, database_url, redis_url, args.workers, args.threads, server_log
        ) as server:
            plan = replace(plan, base=server.base)
            warmup = (
                [run_once("warm-up", 0, plan, args.analysts, args.warmup, server)]
                if args.warmup
                else []
            )
            runs = [
                run_once(f"run {i}", i, plan, args.analysts, args.duration, server)
                for i in range(1, args.runs + 1)
            ]
    finally:
        dataset.phoenix.stop()
    verdict = memory_verdict([run.rss_mb for run in runs])
    errors = sum(run.errors for run in (*warmup, *runs))
    table = render_table([*warmup, *runs])
    results: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            "size": args.size,
            "analysts": args.analysts,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "workers": args.workers,
            "threads": args.threads,
            "think_s": list(args.think),
            "poll_interval_s": plan.poll_interval_s,
            "cpus": os.cpu_count(),
        },
        "runs": [asdict(run) for run in (*warmup, *runs)],
        "rss_mb": [run.rss_mb for run in runs],
        "memory_verdict": verdict.label,
        "memory_reason": verdict.reason,
        "errors": errors,
        "wall_s": round(time.monotonic() - started, 1),
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n{table}\n")
    print("RSS after each timed run (MB): " + ", ".join(f"{r.rss_mb:g}" for r in runs))
    print(f"memory: {verdict.label} ({verdict.reason})")
    print(f"errors: {errors}")
    for run in (*warmup, *runs):
        for line in run.error_samples:
            print(f"  {run.name}: {line}")
        for line in run.resent_samples:
            print(f"  {run.name}, resent: {line}")
    print(f"results: {args.output}; server log: {server_log}")
    return 1 if errors or not verdict.stable else 0


if __name__ == "__main__":
    raise SystemExit(main())
