"""What every benchmark shares: the cached data per size, side-by-side timing, and results."""

from __future__ import annotations

import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from app import create_app
from db.migrate import upgrade
from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_user
from devtools.demo_data import load_demo
from devtools.phoenix import PhoenixServer, free_port, start_phoenix
from devtools.signin import sign_in
from services.container import get_services
from settings import PROJECT_DIR, Settings

log = logging.getLogger("bench")
DATA_DIR = PROJECT_DIR / "bench" / "data"
SIZES = {"1k": 1_000, "10k": 10_000, "50k": 50_000}
SECRET = secrets.token_urlsafe(32)  # one per run, shared by the in-process app and gunicorn
# Ingestion runs at about 150 spans/s here, so each size is seeded once and kept.
SEED_TIMEOUT_S = 3 * 3600.0


@dataclass(frozen=True)
class Stats:
    """Median and spread of repeated measurements."""

    median: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        """Summarise measurements."""
        ordered = sorted(values)
        if len(ordered) < 2:
            return cls(ordered[0], ordered[0], ordered[0], len(ordered))
        quartiles = statistics.quantiles(ordered, n=4, method="inclusive")
        return cls(statistics.median(ordered), quartiles[0], quartiles[2], len(ordered))


@dataclass(frozen=True)
class Pair:
    """Two sides measured in alternation, and the per-round ratio a/b."""

    a: Stats
    b: Stats
    ratio: Stats


def timed(action: Callable[[], Any]) -> float:
    """Return how long one call took, in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def interleave(a: Callable[[], Any], b: Callable[[], Any], rounds: int, warmup: int = 1) -> Pair:
    """Time a and b alternately (A B, B A, ...) so drift hits both alike; ratios are per round."""
    for _ in range(warmup):
        a()
        b()
    times_a: list[float] = []
    times_b: list[float] = []
    for index in range(rounds):
        if index % 2 == 0:
            times_a.append(timed(a))
            times_b.append(timed(b))
        else:
            times_b.append(timed(b))
            times_a.append(timed(a))
    ratios = [x / y for x, y in zip(times_a, times_b, strict=True)]
    return Pair(Stats.of(times_a), Stats.of(times_b), Stats.of(ratios))


@dataclass
class Results:
    """Flat results: a value per key, with its quartiles where it has a spread."""

    values: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, stats: Stats | float, scale: float = 1.0) -> None:
        """Record a key's median (and quartiles), optionally scaled, e.g. s to ms."""
        if isinstance(stats, Stats):
            self.values[key] = round(stats.median * scale, 4)
            self.values[f"{key}_p25"] = round(stats.p25 * scale, 4)
            self.values[f"{key}_p75"] = round(stats.p75 * scale, 4)
        else:
            self.values[key] = round(stats * scale, 4)
        log.info("%s = %s", key, self.values[key])


@dataclass
class Dataset:
    """One size's Phoenix (running), its seeded window, and a dashboard database synced from it."""

    name: str
    llm_spans: int
    phoenix: PhoenixServer
    seeded_at: datetime
    database_url: str
    store_url: str

    @property
    def window(self) -> tuple[datetime, datetime]:
        """Return the time range that holds all seeded data."""
        return self.seeded_at - timedelta(days=8), self.seeded_at + timedelta(hours=1)

    def query(self, **filters: str) -> str:
        """Return a page's URL query for these filters over the seeded window."""
        start, end = self.window
        pairs = {**filters, "range": "custom"}
        pairs["start"] = start.strftime("%Y-%m-%dT%H:%M")
        pairs["end"] = end.strftime("%Y-%m-%dT%H:%M")
        return "?" + urlencode(pairs)

    def settings(self, **overrides: Any) -> Settings:
        """Return dashboard settings on this size's database and Phoenix."""
        base = Settings.from_env(
            {
                "SECRET_KEY": SECRET,
                "DATABASE_URL": self.database_url,
                "STORE_URL": self.store_url,
                "PHOENIX_URL": self.phoenix.url,
                "SYNC_WORKER": "false",
                "LOG_LEVEL": "WARNING",
            }
        )
        return base.with_overrides(**overrides)


def bench_store_url(size: str) -> str:
    """Return where a size's facts live: the ClickHouse `make bench` serves, else chdb in-process.

    gunicorn's workers are separate processes and one chdb directory opens in one process only,
    so the fan-out and server suites need the HTTP server (TEST_CLICKHOUSE_URL).
    """
    server = os.environ.get("TEST_CLICKHOUSE_URL")
    if server:
        return f"{server.rstrip('/')}/bench_{size}"
    return f"chdb://{DATA_DIR / 'clickhouse'}?database=bench_{size}"


def _marker(size: str) -> Path:
    return DATA_DIR / f"phoenix-{size}" / "seeded.json"


def ensure_dataset(size: str) -> Dataset:
    """Start this size's Phoenix, seeding it and syncing its dashboard database once."""
    workdir = DATA_DIR / f"phoenix-{size}"
    phoenix = start_phoenix(workdir)
    marker = _marker(size)
    if marker.exists():
        seeded_at = datetime.fromisoformat(json.loads(marker.read_text())["seeded_at"])
    else:
        log.info("seeding %s LLM spans into %s (once; about 150 spans/s)", size, workdir)
        seeded_at = datetime.now(UTC)
        load_demo(
            phoenix.url, llm_spans=SIZES[size], seed=101, now=seeded_at, timeout_s=SEED_TIMEOUT_S
        )
        marker.write_text(
            json.dumps({"seeded_at": seeded_at.isoformat(), "llm_spans": SIZES[size]})
        )
    database_url = f"sqlite:///{DATA_DIR / f'dashboard-{size}.db'}"
    dataset = Dataset(size, SIZES[size], phoenix, seeded_at, database_url, bench_store_url(size))
    upgrade(database_url)
    app = create_app(dataset.settings())
    ensure_demo_user(app)
    services = get_services(app.server)
    sync = services.sync
    assert sync is not None
    started = time.perf_counter()
    if services.store.watermark() is None:
        # A fresh store (`make bench` starts a throwaway ClickHouse) beside a database whose
        # cursors say everything was read: read it all again.
        sync.rebuild()
    while sync.tick().changed:  # the first run reads everything; later runs find nothing new
        pass
    log.info("%s: dashboard database in sync (%.1f s)", size, time.perf_counter() - started)
    return dataset


def wait_until_healthy(
    base: str, process: subprocess.Popen[Any], failure: str, timeout_s: float = 60
) -> None:
    """Wait until a started dashboard answers /healthz, or fail with `failure`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(failure) from None
            time.sleep(0.2)


@contextmanager
def dashboard_server(dataset: Dataset, **env: str) -> Iterator[str]:
    """Serve the dashboard for a dataset under gunicorn on loopback; yield its base URL."""
    port = free_port()
    environ = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PHOENIX_", "DATABASE_", "STORE_"))
        },
        "SECRET_KEY": SECRET,
        "DATABASE_URL": dataset.database_url,
        "STORE_URL": dataset.store_url,
        "PHOENIX_URL": dataset.phoenix.url,
        "SYNC_WORKER": "false",
        "LOG_LEVEL": "WARNING",
        # Shared cache and sync lock across gunicorn workers, as deployed (`make bench` starts a
        # throwaway Redis); without it each worker probes Phoenix's status on its own.
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", ""),
        **env,
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [
            str(gunicorn),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "app:server",
        ],
        env=environ,
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, process, "the dashboard did not start")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=20)


def signed_in(base: str) -> requests.Session:
    """Return a requests session signed in as the demo user."""
    session = requests.Session()
    response = sign_in(session, base, DEMO_EMAIL, DEMO_PASSWORD)
    if response.status_code != 302:
        raise RuntimeError(f"bench login failed: {response.status_code}")
    return session
