"""`make screenshots`: the README's screenshots, light and dark, from the full demo at 1440x900.

Starts a scratch Phoenix in a fresh `.tmp/screenshots-phoenix` (so the demo's month ends now),
loads the full demo into it, serves the dashboard on a free loopback port with its own scratch
database and facts store under `.tmp/screenshots-app` (the developer's `.demo` and `instance`
data are never touched), signs the demo user in through the login form in headless Chromium,
and saves each page as a user first sees it: `docs/screenshots/<page>.png`, then the same in
dark mode in `docs/screenshots/dark/<page>.png`. Every shot waits for the page's real content
(drawn Plotly traces, loaded grid rows, numbers in the KPI cards), never for a fixed time.

    python -m devtools.screenshots [--out docs/screenshots] [--only home,alerts]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from dash import Dash
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app
from db.migrate import upgrade
from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_monitor, ensure_demo_user
from devtools.demo_data import DemoSummary, load_demo
from devtools.phoenix import PROJECT_DIR, PhoenixServer, start_phoenix
from devtools.services import free_port
from services import user_settings, users
from services.container import get_services
from services.sync_worker import SyncLock, SyncWorker
from settings import Settings

WIDTH, HEIGHT = 1440, 900
# The demo's traffic follows Berlin office hours: show the days and hours there.
ZONE = "Europe/Berlin"
OUT_DIR = PROJECT_DIR / "docs" / "screenshots"
PHOENIX_DIR = PROJECT_DIR / ".tmp" / "screenshots-phoenix"
APP_DIR = PROJECT_DIR / ".tmp" / "screenshots-app"
CHROMIUM = os.environ.get("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
READY_TIMEOUT_S = 90.0
# Plotly's and Bootstrap's transitions last a few hundred milliseconds.
SETTLE_S = 0.8
# Bootstrap 5.3's dark body colour, which assets/theme.js gives every chart's paper.
DARK_PAPER = "#212529"

log = logging.getLogger("screenshots")


@dataclass(frozen=True)
class Shot:
    """One page to photograph, and what must have drawn before it is."""

    name: str
    path: str
    # Elements whose text must start with a number (KPI cards, a grid's row count).
    numbers: tuple[str, ...] = ()
    # Graph containers that must hold a drawn Plotly trace each.
    plots: tuple[str, ...] = ()
    # AG Grids (or their containers) that must show loaded rows.
    grids: tuple[str, ...] = ()
    # (selector, text) pairs: the element must contain the text.
    texts: tuple[tuple[str, str], ...] = ()
    notes: list[str] = field(default_factory=list, compare=False)


def shots(experiment_ids: Sequence[str]) -> list[Shot]:
    """The pages in README order, each on a view that tells the demo's story."""
    # support-answer over the month: v1, v2 from day 10, v3 from day 20, and its p95 blowing up
    # five days ago when the retry loop shipped.
    story = "prompt=support-answer&range=30d"
    pair = f"?a={experiment_ids[0]}&b={experiment_ids[1]}" if len(experiment_ids) >= 2 else ""
    return [
        Shot(
            "home",
            "/",
            numbers=("#home-24h-count", "#home-7d-count"),
            plots=("#home-stats",),
            texts=(("#home-top-prompts", "support-answer"),),
        ),
        Shot(
            "analytics",
            f"/analytics?{story}&pct=p95",
            numbers=("#analytics-kpi-count",),
            plots=(
                "#analytics-latency",
                "#analytics-tokens",
                "#analytics-cost",
                "#analytics-errors",
            ),
        ),
        Shot(
            "traces",
            "/traces?prompt=support-answer",
            numbers=("#traces-grid-title",),
            plots=("#traces-latency", "#traces-volume"),
            grids=("#traces-grid",),
        ),
        Shot(
            "evaluations",
            f"/evaluations?{story}",
            numbers=("#evaluations-grid-title",),
            plots=("#evaluations-scores", "#evaluations-labels", "#evaluations-trend"),
            grids=("#evaluations-grid",),
        ),
        Shot(
            "experiments",
            f"/experiments{pair}",
            grids=("#experiments-grid",) + (("#experiments-deltas",) if pair else ()),
        ),
        Shot(
            "playground",
            "/playground?prompt=support-answer",
            numbers=("#playground-kpi-count",),
            grids=("#playground-grid",),
            texts=(("#playground-template", "support"),),
        ),
        Shot("alerts", "/alerts", plots=("#alerts-monitors",)),
        Shot("prompts", "/prompts", grids=("#prompts-groups",)),
    ]


# Returns what is still missing on the page: an empty list once everything has drawn.
_MISSING_JS = """
const spec = arguments[0];
const missing = [];
const text = (sel) => {
  const el = document.querySelector(sel);
  return el ? (el.innerText || el.textContent || "").trim() : null;
};
if (document.querySelector("._dash-loading-callback")) missing.push("callbacks pending");
document.querySelectorAll("[data-dash-is-loading='true']").forEach((el) => {
  if (el.offsetParent !== null) missing.push("spinner " + (el.id || el.className));
});
for (const sel of spec.numbers) {
  const value = text(sel);
  if (value === null || !/^[0-9]/.test(value.replace(/,/g, ""))) missing.push("number " + sel);
}
for (const sel of spec.plots) {
  const root = document.querySelector(sel);
  if (!root || !root.querySelector(".js-plotly-plot .trace")) missing.push("plot " + sel);
}
for (const sel of spec.grids) {
  const root = document.querySelector(sel);
  const rows = root
    ? root.querySelectorAll(".ag-center-cols-container .ag-row:not(.ag-row-loading)")
    : [];
  const loading = root ? root.querySelector(".ag-row-loading, .ag-loading") : null;
  if (!rows.length || loading) missing.push("grid " + sel);
}
for (const [sel, wanted] of spec.texts) {
  const value = text(sel);
  if (value === null || value.indexOf(wanted) < 0) missing.push("text " + sel);
}
const dark = spec.theme === "dark";
if ((document.documentElement.dataset.bsTheme === "dark") !== dark) missing.push("theme");
if (dark) {
  document.querySelectorAll(".js-plotly-plot").forEach((gd) => {
    const paper = gd._fullLayout ? gd._fullLayout.paper_bgcolor : null;
    if (paper !== spec.darkPaper) missing.push("light chart " + (gd.parentElement.id || "?"));
  });
}
return missing;
"""

# What an analyst would flag on the page: alerts that are not information, empty notices.
_NOTICES_JS = """
const found = [];
document.querySelectorAll(".alert-danger, .alert-warning, .alert-info").forEach((el) => {
  if (el.offsetParent !== null) found.push((el.innerText || "").trim().slice(0, 160));
});
const body = document.body.innerText || "";
for (const phrase of ["No data", "no data", "matches nothing", "Traceback", "Error loading"]) {
  if (body.indexOf(phrase) >= 0) found.push("page text: " + phrase);
}
return found;
"""

_SAVE_THEME_JS = """
const done = arguments[arguments.length - 1];
fetch("/api/settings", {
  method: "POST",
  headers: {"Content-Type": "application/json"},
  credentials: "same-origin",
  body: JSON.stringify({theme: arguments[0]}),
}).then((r) => r.json().then((answer) => done([r.status, answer])))
  .catch((error) => done([0, String(error)]));
"""


@contextmanager
def scratch_phoenix() -> Iterator[PhoenixServer]:
    """Start Phoenix in a fresh directory and stop it afterwards, whatever happened."""
    shutil.rmtree(PHOENIX_DIR, ignore_errors=True)
    server = start_phoenix(PHOENIX_DIR)
    try:
        yield server
    finally:
        server.stop()


def scratch_settings(phoenix_url: str) -> Settings:
    """Settings of a throwaway dashboard: its own database, store and secret, in .tmp."""
    shutil.rmtree(APP_DIR, ignore_errors=True)
    APP_DIR.mkdir(parents=True)
    database_url = f"sqlite:///{APP_DIR / 'dashboard.db'}"
    upgrade(database_url)
    return Settings.from_env().with_overrides(
        phoenix_enabled=True,
        phoenix_url=phoenix_url,
        phoenix_api_key="",
        phoenix_write_api_key="",
        database_url=database_url,
        store_url=f"chdb://{APP_DIR / 'clickhouse'}",
        redis_url="",
        log_level="WARNING",
        # Sessions of a server that lives a few minutes: no need for the developer's key.
        secret_key=secrets.token_urlsafe(48),
    )


def prepare(app: Dash) -> None:
    """Create the demo login and monitor, sync, and show times in the demo's office zone."""
    ensure_demo_user(app)
    ensure_demo_monitor(app)  # syncs once first
    services = get_services(app.server)
    assert services.sync is not None
    # As the worker's first tick does: merge closed days and build their slices.
    SyncWorker(services.sync, SyncLock(""), interval_s=1.0).maintain()
    with services.sessions.begin() as db:
        user = users.get_by_email(db, DEMO_EMAIL)
        assert user is not None
        user_settings.save(db, user.id, {"theme": "light", "timezone": ZONE})


@contextmanager
def serving(app: Dash) -> Iterator[str]:
    """Serve the app from a thread on a free loopback port; stop it and its sync afterwards."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server: BaseWSGIServer = make_server("127.0.0.1", free_port(), app.server, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        worker = app.server.extensions.get("sync_worker")
        if worker is not None:
            worker.stop()
        services = get_services(app.server)
        services.engine.dispose()
        services.store.close()


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """Start headless Chromium with a 1440x900 viewport; quit it afterwards."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is missing: `make system-deps` installs it")
    # Selenium 4.2 leaves these untyped.
    options: Any = Options()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        f"--window-size={WIDTH},{HEIGHT}",
        "--force-device-scale-factor=1",
        "--hide-scrollbars",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    # Headless Chromium has no mouse, so it matches (hover: none) and Plotly then shows every
    # chart's modebar all the time; a desktop user's browser has a fine, hovering pointer.
    options.add_argument(
        "--blink-settings=primaryHoverType=2,availableHoverTypes=2,"
        "primaryPointerType=4,availablePointerTypes=4"
    )
    options.set_capability("goog:loggingPrefs", {"browser": "SEVERE"})
    # The browser's own zone agrees with the user's setting.
    service = Service(CHROMEDRIVER, env={**os.environ, "TZ": ZONE})
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def sign_in(driver: WebDriver, base: str) -> None:
    """Sign the demo user in through the login form."""
    driver.get(f"{base}/login")
    driver.find_element("css selector", "#login-email").send_keys(DEMO_EMAIL)
    driver.find_element("css selector", "#login-password").send_keys(DEMO_PASSWORD)
    driver.find_element("css selector", "#login-submit").click()
    deadline = time.monotonic() + 30
    while "/login" in driver.current_url:
        if time.monotonic() > deadline:
            raise RuntimeError("the demo login did not get past the login form")
        time.sleep(0.2)


def set_theme(driver: WebDriver, theme: str) -> None:
    """Save the signed-in user's colour mode, as the display settings dialog does."""
    status, answer = driver.execute_async_script(_SAVE_THEME_JS, theme)
    if status != 200:
        raise RuntimeError(f"POST /api/settings answered {status}: {answer}")


def wait_drawn(driver: WebDriver, shot: Shot, theme: str) -> list[str]:
    """Wait until the page's content has drawn and stayed so; return what never did."""
    spec = {
        "numbers": list(shot.numbers),
        "plots": list(shot.plots),
        "grids": list(shot.grids),
        "texts": [list(t) for t in shot.texts],
        "theme": theme,
        "darkPaper": DARK_PAPER,
    }
    deadline = time.monotonic() + READY_TIMEOUT_S
    ready_since: float | None = None
    missing: list[str] = []
    while time.monotonic() < deadline:
        missing = run_js(driver, _MISSING_JS, spec)
        if missing:
            ready_since = None
        elif ready_since is None:
            ready_since = time.monotonic()
        elif time.monotonic() - ready_since >= 0.5:  # still drawn half a second later
            return []
        time.sleep(0.2)
    return missing


def run_js(driver: WebDriver, script: str, *args: object) -> Any:
    """Run JavaScript in the page and return its answer (Selenium 4.2 leaves this untyped)."""
    return cast(Any, driver).execute_script(script, *args)


def png_size(path: Path) -> tuple[int, int]:
    """Read a PNG's width and height from its header."""
    with path.open("rb") as file:
        header = file.read(24)
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)


def photograph(driver: WebDriver, base: str, shot: Shot, theme: str, out: Path) -> Path:
    """Open a page, wait for it, and save the top of it as a user first sees it."""
    driver.get(f"{base}{shot.path}")
    missing = wait_drawn(driver, shot, theme)
    if missing:
        shot.notes.append(f"{theme}: still missing after {READY_TIMEOUT_S:.0f} s: {missing}")
    run_js(driver, "window.scrollTo(0, 0); document.activeElement?.blur();")
    time.sleep(SETTLE_S)
    for notice in run_js(driver, _NOTICES_JS):
        shot.notes.append(f"{theme}: {notice}")
    for entry in cast(Any, driver).get_log("browser"):
        shot.notes.append(f"{theme}: console: {entry.get('message', '')[:200]}")
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{shot.name}.png"
    driver.save_screenshot(str(path))
    if png_size(path) != (WIDTH, HEIGHT):
        shot.notes.append(f"{theme}: screenshot is {png_size(path)}, not {WIDTH}x{HEIGHT}")
    return path


def take_all(base: str, pages: list[Shot], out: Path) -> None:
    """Photograph every page in light, then in dark mode."""
    with chromium() as driver:
        sign_in(driver, base)
        for theme, folder in (("light", out), ("dark", out / "dark")):
            set_theme(driver, theme)
            for shot in pages:
                started = time.monotonic()
                path = photograph(driver, base, shot, theme, folder)
                took = time.monotonic() - started
                print(f"  {path.relative_to(PROJECT_DIR)} ({took:.1f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Load the demo into a scratch Phoenix, serve a scratch dashboard, photograph its pages."""
    parser = argparse.ArgumentParser(description="Take the README's screenshots, light and dark.")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs")
    parser.add_argument("--only", default="", help="comma-separated pages, e.g. home,alerts")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with scratch_phoenix() as phoenix:
        print(f"Phoenix: {phoenix.url} (data in {phoenix.workdir})", flush=True)
        summary: DemoSummary = load_demo(phoenix.url, progress=True)
        print(
            f"Demo data: {summary.llm_spans} LLM spans in {len(summary.projects)} projects, "
            f"{len(summary.experiment_ids)} experiments.",
            flush=True,
        )
        app = create_app(scratch_settings(phoenix.url))
        prepare(app)
        pages = shots(summary.experiment_ids)
        if args.only:
            wanted = {name.strip() for name in args.only.split(",")}
            pages = [p for p in pages if p.name in wanted]
        with serving(app) as base:
            print(f"Dashboard: {base}; photographing at {WIDTH}x{HEIGHT}", flush=True)
            take_all(base, pages, args.out)
    notes = [f"{shot.name}: {note}" for shot in pages for note in shot.notes]
    print(f"Done in {time.monotonic() - started:.0f} s.")
    if notes:
        print("Look at these:\n  " + "\n  ".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
