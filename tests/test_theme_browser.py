"""Dark mode and time zones in headless Chromium against the demo slice."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

from db.models import User
from devtools.demo import DEMO_EMAIL
from services.container import get_services
from tests.browser import click, exported_rows, login

pytestmark = [pytest.mark.browser, pytest.mark.integration]
PAGES = [
    "/",
    "/traces",
    "/evaluations",
    "/experiments",
    "/analytics",
    "/playground",
    "/alerts",
    "/prompts",
]
# Bootstrap 5.3's dark --bs-body-bg, #212529.
DARK_BG = "rgb(33, 37, 41)"


def _saved_theme(app) -> str:
    with get_services(app.server).sessions() as db:
        return db.query(User).filter_by(email=DEMO_EMAIL).one().theme


def _wait_theme(dash_duo, mode: str) -> None:
    WebDriverWait(dash_duo.driver, 15).until(
        lambda d: (
            d.execute_script("return document.documentElement.dataset.bsTheme") == mode
            and d.find_elements("css selector", "#user-display")
        )
    )


def _choose_theme(dash_duo, mode: str, app) -> None:
    """Pick a colour mode in the user menu's settings dialog and save it."""
    click(dash_duo, "#nav-user .dropdown-toggle")
    click(dash_duo, "#nav-settings-open")
    radio = dash_duo.wait_for_element(f"#settings-theme input[value='{mode}']", timeout=10)
    dash_duo.driver.execute_script("arguments[0].click();", radio)
    click(dash_duo, "#settings-save")
    # Saved, the dialog closes.
    WebDriverWait(dash_duo.driver, 10).until(
        lambda d: not d.find_elements("css selector", ".modal.show")
    )
    assert _saved_theme(app) == mode


def _graphs_are(dash_duo, paper: str) -> bool:
    """Tell whether every Plotly graph on the page has drawn with this paper colour."""
    return bool(
        dash_duo.driver.execute_script(
            """
            const paper = arguments[0];
            return Array.from(document.querySelectorAll('.js-plotly-plot')).every(function (gd) {
              return gd._fullLayout && gd._fullLayout.paper_bgcolor === paper;
            });
            """,
            paper,
        )
    )


def _papers(dash_duo) -> list[str]:
    """Read every graph's paper colour and whether theme.js watches it."""
    return list(
        dash_duo.driver.execute_script(
            """
            return Array.from(document.querySelectorAll('.js-plotly-plot')).map(function (gd) {
              return [gd.id || gd.parentElement.id, gd._fullLayout && gd._fullLayout.paper_bgcolor,
                      gd.dataset.themeWatched, gd.dataset.themed, typeof window.Plotly].join(' ');
            });
            """
        )
    )


def _check_dark(dash_duo, path: str) -> None:
    """Check the page is dark: <html>, the body, every graph's paper, every grid."""
    _wait_theme(dash_duo, "dark")
    body = dash_duo.driver.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert body == DARK_BG, path
    # Graphs draw after their callbacks; each is restyled once it has drawn.
    WebDriverWait(dash_duo.driver, 20).until(
        lambda _d: not _d.find_elements("css selector", "._dash-loading-callback")
    )
    try:
        WebDriverWait(dash_duo.driver, 15).until(lambda _d: _graphs_are(dash_duo, "#212529"))
    except TimeoutException:
        raise AssertionError(f"{path}: graphs stayed light: {_papers(dash_duo)}") from None
    papers = dash_duo.driver.execute_script(
        """
        return Array.from(document.querySelectorAll('.js-plotly-plot .main-svg rect.bg'))
          .map(function (rect) { return getComputedStyle(rect).fill; });
        """
    )
    assert all(fill == DARK_BG for fill in papers), (path, papers)
    grids = dash_duo.driver.execute_script(
        """
        return Array.from(document.querySelectorAll('.ag-root-wrapper'))
          .map(function (grid) { return getComputedStyle(grid).backgroundColor; });
        """
    )
    assert all(_is_dark(colour) for colour in grids), (path, grids)
    assert dash_duo.get_logs() == [], path


def _is_dark(colour: str) -> bool:
    channels = [int(c) for c in re.findall(r"\d+", colour)[:3]]
    return len(channels) == 3 and sum(channels) / 3 < 80


def test_dark_mode_on_every_page_and_remembered_across_sign_ins(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/analytics")
    _wait_theme(dash_duo, "light")
    dash_duo.wait_for_element(".js-plotly-plot", timeout=20)
    _choose_theme(dash_duo, "dark", synced_app)
    # The open page turns dark at once, its graphs too.
    _check_dark(dash_duo, "/analytics")
    for path in PAGES:
        dash_duo.driver.get(f"{dash_duo.server.url}{path}")
        _check_dark(dash_duo, path)
    # Signed out and in again, with this browser's copy forgotten: the choice comes from the
    # user's record.
    click(dash_duo, "#nav-user .dropdown-toggle")
    click(dash_duo, "#nav-logout")
    dash_duo.wait_for_element("#login-email", timeout=10)
    dash_duo.driver.execute_script("window.localStorage.clear()")
    login(dash_duo, "/analytics")
    dash_duo.wait_for_element(".js-plotly-plot", timeout=20)
    _check_dark(dash_duo, "/analytics")
    # And back: the graphs take their light colours again.
    _choose_theme(dash_duo, "light", synced_app)
    _wait_theme(dash_duo, "light")
    WebDriverWait(dash_duo.driver, 15).until(lambda _d: _graphs_are(dash_duo, "white"))
    assert dash_duo.get_logs() == []


def test_times_show_in_the_urls_zone_and_the_export_keeps_offsets(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/traces?tz=Asia/Kathmandu")
    dash_duo.wait_for_element("#traces-grid-export", timeout=20)
    shown = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\+5:45$")

    def kathmandu_times(driver) -> list[str]:
        # Read in one script: the grid may redraw its rows between two reads.
        texts = driver.execute_script(
            """
            return Array.from(document.querySelectorAll(
              "#traces-grid .ag-cell[col-id='start_time']"
            )).map(function (cell) { return cell.textContent.trim(); }).filter(Boolean);
            """
        )
        return texts if texts and all(shown.match(t) for t in texts) else []

    texts = WebDriverWait(dash_duo.driver, 20).until(kathmandu_times)
    # The export is unchanged: ISO 8601 with the offset, the same instants.
    rows = exported_rows(dash_duo, "#traces-grid-export")
    moments = [datetime.fromisoformat(row["start_time"]) for row in rows]
    assert moments and all(m.utcoffset() is not None for m in moments)
    zone = ZoneInfo("Asia/Kathmandu")
    local = {m.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") + " GMT+5:45" for m in moments}
    assert set(texts) <= local
    assert dash_duo.get_logs() == []


def _saved_zone(app) -> str | None:
    with get_services(app.server).sessions() as db:
        return db.query(User).filter_by(email=DEMO_EMAIL).one().timezone


def test_auto_follows_the_system_and_the_zone_defaults_to_the_browsers(
    dash_duo, synced_app
) -> None:
    dash_duo.start_server(synced_app, navigate=False)
    dash_duo.driver.execute_cdp_cmd(
        "Emulation.setTimezoneOverride", {"timezoneId": "America/St_Johns"}
    )
    assert _saved_zone(synced_app) is None
    login(dash_duo, "/analytics")
    # (Newfoundland: Chrome names some zones by their old aliases, Asia/Katmandu, not this one.)
    # The browser's zone is saved once, and the page reloads to bucket in it.
    WebDriverWait(dash_duo.driver, 15).until(
        lambda _d: _saved_zone(synced_app) == "America/St_Johns"
    )
    dash_duo.wait_for_element("#user-display[data-timezone='America/St_Johns']", timeout=15)
    _wait_theme(dash_duo, "light")
    for scheme in ("dark", "light", "dark"):
        dash_duo.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": scheme}]},
        )
        _wait_theme(dash_duo, scheme)
    _check_dark(dash_duo, "/analytics")
