"""Analyst pages in headless Chromium against the demo slice: filters in the URL, CSV export."""

from __future__ import annotations

import csv
import io

import pytest
import requests
from selenium.webdriver.support.ui import WebDriverWait

from app import create_app
from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_user
from services import analytics
from services.container import get_services
from services.filters import parse_query
from settings import PROJECT_DIR

pytestmark = [pytest.mark.browser, pytest.mark.integration]
SCREENSHOTS = PROJECT_DIR / "docs" / "screenshots"


@pytest.fixture
def synced_app(settings, phoenix_server, demo_loaded):
    """An app whose sync has read the session's demo slice, with no background worker."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    ensure_demo_user(app)
    return app


def _login(dash_duo, next_path: str) -> None:
    dash_duo.driver.get(f"{dash_duo.server.url}/login?next={next_path}")
    dash_duo.find_element("#login-email").send_keys(DEMO_EMAIL)
    dash_duo.find_element("#login-password").send_keys(DEMO_PASSWORD)
    dash_duo.find_element("#login-submit").click()


def _open_first_row_in_phoenix(dash_duo, page: str, path: str) -> None:
    """Click the first row of the page's grid and wait for Phoenix to show it beside the table."""
    cell = dash_duo.wait_for_element(
        f"#{page}-grid .ag-center-cols-container .ag-row .ag-cell", timeout=20
    )
    cell.click()
    frame = dash_duo.wait_for_element(f"#{page}-phoenix-frame", timeout=15)
    assert path in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "ChatCompletion" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()


def _exported_rows(dash_duo, link_selector: str, swap: tuple[str, str] | None = None) -> list:
    """Download an export link with the browser's session and parse the CSV."""
    href = dash_duo.find_element(link_selector).get_attribute("href")
    if swap:
        href = href.replace(*swap)
    cookies = {c["name"]: c["value"] for c in dash_duo.driver.get_cookies()}
    response = requests.get(href, cookies=cookies, timeout=30)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text)))


def _finish(dash_duo, name: str) -> None:
    """Save the page's screenshot for the README and check the console stayed clean."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    assert dash_duo.get_logs() == []


def _count(app, query: dict[str, str]) -> int:
    with get_services(app.server).sessions() as db:
        return len(analytics.load_spans(db, parse_query(query)[0].to_filters()))


def _kpi(dash_duo) -> str:
    return str(dash_duo.find_element("#analytics-kpi-count").text.replace(",", ""))


def test_analytics_filters_live_in_the_url_and_export_matches(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    _login(dash_duo, "/analytics")
    everything = _count(synced_app, {})
    dash_duo.wait_for_text_to_equal("#analytics-kpi-count", f"{everything:,}", timeout=20)

    dash_duo.wait_for_element("#analytics-versions-table-export", timeout=20)
    dash_duo.select_dcc_dropdown("#analytics-filter-project", value="support-bot")
    WebDriverWait(dash_duo.driver, 15).until(lambda d: "project=support-bot" in d.current_url)
    narrowed = _count(synced_app, {"project": "support-bot"})
    assert 0 < narrowed < everything
    WebDriverWait(dash_duo.driver, 15).until(lambda d: _kpi(dash_duo) == str(narrowed))

    # A copied link reproduces the view.
    shared = dash_duo.driver.current_url
    dash_duo.driver.get(f"{dash_duo.server.url}/")
    dash_duo.driver.get(shared)
    WebDriverWait(dash_duo.driver, 20).until(lambda d: _kpi(dash_duo) == str(narrowed))
    assert "support-bot" in dash_duo.find_element("#analytics-filter-project").text

    # The export holds the whole filtered result, not the rows on screen.
    dash_duo.wait_for_element("#analytics-versions-table-export", timeout=20)
    rows = _exported_rows(dash_duo, "#analytics-versions-table-export")
    assert sum(int(r["count"]) for r in rows) == narrowed
    calls = _exported_rows(
        dash_duo, "#analytics-versions-table-export", ("/versions.csv", "/llm-calls.csv")
    )
    assert len(calls) == narrowed
    _finish(dash_duo, "analytics")


def test_traces_page_opens_a_clicked_trace_in_phoenix(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    _login(dash_duo, "/traces?project=sales-email")
    dash_duo.wait_for_element("#traces-grid-export", timeout=20)
    expected = _count_traces(synced_app, {"project": "sales-email"})
    dash_duo.wait_for_contains_text("#traces-table", f"{expected:,} traces", timeout=20)
    _open_first_row_in_phoenix(dash_duo, "traces", "/phoenix/redirects/traces/")
    assert len(_exported_rows(dash_duo, "#traces-grid-export")) == expected
    _finish(dash_duo, "traces")


def _count_traces(app, query: dict[str, str]) -> int:
    with get_services(app.server).sessions() as db:
        spans = analytics.load_spans(db, parse_query(query)[0].to_filters())
    return len(analytics.traces(spans))


def test_evaluations_page_shows_scores_and_opens_the_span(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    _login(dash_duo, "/evaluations?project=support-bot")
    with get_services(synced_app.server).sessions() as db:
        expected = len(
            analytics.load_annotations(db, parse_query({"project": "support-bot"})[0].to_filters())
        )
    assert expected > 0
    dash_duo.wait_for_contains_text("#evaluations-table", f"{expected:,} evaluations", timeout=20)
    assert "correctness" in dash_duo.find_element("#evaluations-scores").text
    _open_first_row_in_phoenix(dash_duo, "evaluations", "/phoenix/redirects/spans/")
    assert len(_exported_rows(dash_duo, "#evaluations-grid-export")) == expected
    _finish(dash_duo, "evaluations")


def test_experiments_page_compares_two_experiments(dash_duo, synced_app, demo_loaded) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    _login(dash_duo, "/experiments")
    dash_duo.wait_for_contains_text("#experiments-grid", "support-answer-v1", timeout=20)
    first, second = demo_loaded.experiment_ids[:2]
    dash_duo.driver.get(f"{dash_duo.server.url}/experiments?a={first}&b={second}")
    dash_duo.wait_for_contains_text("#experiments-deltas", "exact_match", timeout=30)
    assert "relevance" in dash_duo.find_element("#experiments-deltas").text
    frame = dash_duo.wait_for_element("#experiments-phoenix-frame", timeout=15)
    assert "/compare?experimentId=" in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-answer-v1" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    examples = _exported_rows(dash_duo, "#experiments-examples-export")
    assert len(examples) == 12
    assert len(_exported_rows(dash_duo, "#experiments-grid-export")) >= 2
    _finish(dash_duo, "experiments")


def test_playground_shows_a_prompt_version_its_traffic_and_phoenix(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    _login(dash_duo, "/playground?prompt=support-answer")
    dash_duo.wait_for_contains_text("#playground-template", "{question}", timeout=20)
    assert "production" in dash_duo.find_element("#playground-detail").text
    WebDriverWait(dash_duo.driver, 20).until(
        lambda d: "support-answer" in d.current_url and "version=" in d.current_url
    )
    dash_duo.wait_for_element("#playground-kpi-count", timeout=20)
    frame = dash_duo.wait_for_element("#playground-phoenix-frame", timeout=15)
    assert "/phoenix/playground?promptId=" in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-answer" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    _finish(dash_duo, "playground")
