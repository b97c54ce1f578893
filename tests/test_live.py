"""Live updates: pages poll our database, not Phoenix; one process per deployment syncs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
import requests
import sqlalchemy as sa
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy.orm import Session

from app import create_app
from db.migrate import upgrade
from db.models import SyncStatus
from devtools.demo import ensure_demo_user
from devtools.demo_data import send_traces
from devtools.phoenix import free_port
from devtools.signin import sign_in
from services.container import get_services
from services.phoenix import PhoenixUnavailable
from services.sync import record_failure
from services.users import create_user
from settings import PROJECT_DIR
from tests.browser import bar, expected_count, login, shown_count, wait_count
from tests.callbacks import home_poll

from .conftest import TEST_SECRET, AuthActions


class _Counting(BaseHTTPRequestHandler):
    """Count requests; it stands where Phoenix would, to prove that polls never reach it."""

    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"20.26.1"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stay quiet."""


def test_fifty_polling_tabs_cost_phoenix_what_one_does(settings) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=url))
        tabs = []
        for i in range(50):
            client = app.server.test_client()
            auth = AuthActions(app, client)
            auth.create(email=f"tab{i}@example.com")
            auth.login(email=f"tab{i}@example.com")
            tabs.append(client)
        _Counting.hits.clear()
        for client in tabs:
            home_poll(client, seen=None)
        one_round = len(_Counting.hits)
        for client in tabs:
            home_poll(client, seen=None)
        # One status probe per cache period, whatever the number of tabs; data comes from our DB.
        assert one_round <= 1
        assert len(_Counting.hits) <= 2
        assert all(path == "/arize_phoenix_version" for path in _Counting.hits)
    finally:
        server.shutdown()


def test_no_redraw_until_the_watermark_moves_and_stale_is_marked(client, auth) -> None:
    auth.create()
    auth.login()
    first = home_poll(client, seen=None)
    mark = first["home-watermark"]["data"]
    assert "home-watermark" not in home_poll(client, seen=mark)
    assert "home-watermark" not in home_poll(client, seen=None, live=False)
    assert "paused" in str(home_poll(client, seen=mark, live=False)["home-live-status"])

    record_failure(get_services(client.application).sessions, PhoenixUnavailable("went away"))
    stale = str(home_poll(client, seen=mark)["home-live-status"])
    assert "stale" in stale and "Sync failing since" in stale and "went away" in stale


LIVE_PAGES = {"home": "/", "traces": "/traces?range=24h", "analytics": "/analytics?range=24h"}
LAST_DAY = {"range": "24h"}  # what each of these pages counts


@pytest.mark.browser
@pytest.mark.integration
def test_new_spans_appear_on_home_traces_and_analytics_without_a_reload(
    dash_duo, settings, scratch_phoenix
):
    app = create_app(
        settings.with_overrides(
            phoenix_enabled=True,
            phoenix_url=scratch_phoenix.url,
            sync_worker=True,
            sync_interval_s=1,
            poll_interval_s=1,
        )
    )
    ensure_demo_user(app)
    dash_duo.start_server(app, navigate=False)
    login(dash_duo)
    # Wait for the first sync to finish (its watermark then redraws the pages) before the baseline.
    WebDriverWait(dash_duo.driver, 60).until(
        lambda d: (
            "Synced" in d.find_element("css selector", bar("home", "live-status")).text
            and "never" not in d.find_element("css selector", bar("home", "live-status")).text
        )
    )
    # One tab per page, all polling at once, as an analyst would keep them open.
    tabs = {"home": dash_duo.driver.current_window_handle}
    for page, path in LIVE_PAGES.items():
        if page != "home":
            dash_duo.driver.switch_to.new_window("tab")
            dash_duo.driver.get(f"{dash_duo.server.url}{path}")
            tabs[page] = dash_duo.driver.current_window_handle
    before = {}
    for page, handle in tabs.items():
        dash_duo.driver.switch_to.window(handle)
        before[page] = expected_count(app, "analytics" if page == "home" else page, LAST_DAY)
        wait_count(dash_duo, page, before[page])

    send_traces(
        scratch_phoenix.url, count=5, seed=7000 + os.getpid() % 1000, window=timedelta(minutes=30)
    )
    for page, handle in tabs.items():
        dash_duo.driver.switch_to.window(handle)
        WebDriverWait(dash_duo.driver, 30).until(
            lambda d, page=page: (shown_count(dash_duo, page) or 0) >= before[page] + 5
        )
        # Five new traces, each with at least one LLM call; nothing else arrived meanwhile.
        after = expected_count(app, "analytics" if page == "home" else page, LAST_DAY)
        wait_count(dash_duo, page, after)
        assert after >= before[page] + 5
        assert dash_duo.driver.current_url.endswith(LIVE_PAGES[page])  # no reload, no redirect
    assert dash_duo.get_logs() == []
    app.server.extensions["sync_worker"].stop()


@pytest.mark.integration
def test_two_replicas_share_sync_sessions_and_numbers(
    pg_url, redis_url, server_store_url, scratch_phoenix
) -> None:
    """Two gunicorn replicas on one PostgreSQL, Redis, ClickHouse and Phoenix hold no state."""
    upgrade(pg_url)
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PHOENIX_", "DATABASE_", "STORE_"))
        },
        "DATABASE_URL": pg_url,
        "STORE_URL": server_store_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": TEST_SECRET,
        "PHOENIX_URL": scratch_phoenix.url,
        "SYNC_WORKER": "true",
        "SYNC_INTERVAL_S": "1",
        "LOG_LEVEL": "WARNING",
    }
    ports = [free_port(), free_port()]
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    processes = [
        subprocess.Popen(
            [gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", "1", "app:server"],
            env=env,
            cwd=PROJECT_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    engine = sa.create_engine(pg_url)
    try:
        for port in ports:  # a first request starts each replica's worker
            deadline = time.monotonic() + 60
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/login", timeout=2)
                    break
                except requests.RequestException:
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.2)
        seen: set[str] = set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                by = conn.scalar(sa.select(SyncStatus.synced_by))
            if by:
                seen.add(by)
            time.sleep(0.3)
        assert len(seen) == 1, seen
        holder = int(next(iter(seen)).rsplit(":", 1)[1])
        worker_pids = {
            int(pid)
            for p in processes
            for pid in subprocess.run(
                ["pgrep", "-P", str(p.pid)], capture_output=True, text=True
            ).stdout.split()
        }
        assert holder in worker_pids

        # A login on one replica is valid on the other: the session is a signed cookie.
        with Session(engine) as db, db.begin():
            create_user(db, "replica@example.com", "replica-password")
        first, second = (f"http://127.0.0.1:{port}" for port in ports)
        browser = requests.Session()
        signed_in = sign_in(browser, first, "replica@example.com", "replica-password")
        assert signed_in.status_code == 302, signed_in.text[:300]
        assert browser.get(f"{second}/api/token", timeout=10).status_code == 200
        assert requests.get(f"{second}/api/token", timeout=10).status_code == 401

        # Both serve the same numbers, read from the shared database.
        exports = [
            browser.get(f"{base}/api/export/analytics/versions.csv", timeout=30)
            for base in (first, second)
        ]
        assert [r.status_code for r in exports] == [200, 200]
        assert exports[0].text.count("\n") > 1
        assert exports[0].text == exports[1].text
        # When the holder dies, another process takes over once the lock expires.
        os.kill(holder, 9)
        deadline = time.monotonic() + 30
        taken_over = None
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                by = conn.scalar(sa.select(SyncStatus.synced_by))
            if by and int(by.rsplit(":", 1)[1]) != holder:
                taken_over = by
                break
            time.sleep(0.5)
        assert taken_over is not None
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=20)
        engine.dispose()
