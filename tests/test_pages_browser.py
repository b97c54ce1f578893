"""Analyst pages in headless Chromium against the demo slice: filters in the URL, CSV export."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from services import prompt_filters
from services.container import get_services
from services.filters import parse_query
from store import analytics as store_analytics
from store.analytics import PromptSet
from tests.browser import (
    bar,
    click,
    dropdown_options,
    expected_count,
    exported_rows,
    login,
    save_screenshot,
    scroll_to_pane,
    wait_count,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _open_first_row_in_phoenix(dash_duo, page: str, path: str) -> None:
    """Click the first row of the page's grid and wait for Phoenix to show it beside the table."""
    # The grid may refill its block just after the rows first show (the live watermark arrives):
    # a row found before that is gone, so find it again.
    for attempt in range(3):
        cell = dash_duo.wait_for_element(
            f"#{page}-grid .ag-center-cols-container .ag-row .ag-cell", timeout=20
        )
        try:
            cell.click()
            break
        except StaleElementReferenceException:
            if attempt == 2:
                raise
    frame = dash_duo.wait_for_element(f"#{page}-phoenix-frame", timeout=15)
    assert path in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "ChatCompletion" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()


def _finish(dash_duo, name: str) -> None:
    """Save the page's screenshot and check the console stayed clean."""
    save_screenshot(dash_duo, name)
    assert dash_duo.get_logs() == []


def test_home_shows_the_last_day_and_week_and_the_top_prompts(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo)
    wait_count(dash_duo, "home", expected_count(synced_app, "analytics", {"range": "24h"}))
    week = expected_count(synced_app, "analytics", {})
    dash_duo.wait_for_text_to_equal("#home-7d-count", f"{week:,}", timeout=20)
    dash_duo.wait_for_element("#home-prompts", timeout=20)
    # The export holds every prompt of the week, busiest first, not only the ten on screen.
    prompts = exported_rows(dash_duo, "#home-top-prompts-export")
    assert sum(int(r["calls"]) for r in prompts) == week - _unnamed_calls(synced_app)
    dash_duo.wait_for_contains_text("#home-prompts", prompts[0]["prompt"], timeout=10)
    _finish(dash_duo, "home")
    frame = scroll_to_pane(dash_duo, "home-phoenix")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-bot" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    assert dash_duo.get_logs() == []


def _unnamed_calls(app) -> int:
    """Count the week's LLM calls that carry no prompt template (top prompts leave them out)."""
    services = get_services(app.server)
    with services.sessions() as db:
        filters = prompt_filters.resolve(db, parse_query({})[0])
        ids = tuple(prompt_filters.prompt_names(db).by_id)
    named = dataclasses.replace(filters, prompts=PromptSet(ids=ids))
    every = store_analytics.kpis(services.store, filters).metrics.count
    return every - store_analytics.kpis(services.store, named).metrics.count


def test_analytics_filters_live_in_the_url_and_export_matches(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/analytics")
    everything = expected_count(synced_app, "analytics", {})
    dash_duo.wait_for_text_to_equal("#analytics-kpi-count", f"{everything:,}", timeout=20)

    dash_duo.wait_for_element("#analytics-versions-table-export", timeout=20)
    dash_duo.select_dcc_dropdown(bar("analytics", "project"), value="support-bot")
    WebDriverWait(dash_duo.driver, 15).until(lambda d: "project=support-bot" in d.current_url)
    narrowed = expected_count(synced_app, "analytics", {"project": "support-bot"})
    assert 0 < narrowed < everything
    wait_count(dash_duo, "analytics", narrowed)

    # A copied link reproduces the view.
    shared = dash_duo.driver.current_url
    dash_duo.driver.get(f"{dash_duo.server.url}/")
    dash_duo.driver.get(shared)
    wait_count(dash_duo, "analytics", narrowed)
    assert "support-bot" in dash_duo.find_element(bar("analytics", "project")).text

    # The export holds the whole filtered result, not the rows on screen.
    dash_duo.wait_for_element("#analytics-versions-table-export", timeout=20)
    rows = exported_rows(dash_duo, "#analytics-versions-table-export")
    assert sum(int(r["count"]) for r in rows) == narrowed
    calls = exported_rows(
        dash_duo, "#analytics-versions-table-export", ("/versions.csv", "/llm-calls.csv")
    )
    assert len(calls) == narrowed
    _finish(dash_duo, "analytics")


def test_traces_page_opens_a_clicked_trace_in_phoenix(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/traces?project=sales-email")
    dash_duo.wait_for_element("#traces-grid-export", timeout=20)
    expected = expected_count(synced_app, "traces", {"project": "sales-email"})
    dash_duo.wait_for_contains_text("#traces-table", f"{expected:,} traces", timeout=20)
    _open_first_row_in_phoenix(dash_duo, "traces", "/phoenix/redirects/traces/")
    assert len(exported_rows(dash_duo, "#traces-grid-export")) == expected
    _finish(dash_duo, "traces")


def test_evaluations_page_shows_scores_and_opens_the_span(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/evaluations?project=support-bot")
    expected = expected_count(synced_app, "evaluations", {"project": "support-bot"})
    assert expected > 0
    dash_duo.wait_for_contains_text("#evaluations-table", f"{expected:,} evaluations", timeout=20)
    dash_duo.wait_for_contains_text("#evaluations-scores", "correctness", timeout=10)
    _open_first_row_in_phoenix(dash_duo, "evaluations", "/phoenix/redirects/spans/")
    assert len(exported_rows(dash_duo, "#evaluations-grid-export")) == expected
    _finish(dash_duo, "evaluations")


def test_experiments_page_compares_two_experiments(dash_duo, synced_app, demo_loaded) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/experiments")
    dash_duo.wait_for_contains_text("#experiments-grid", "support-answer-v1", timeout=20)
    first, second = demo_loaded.experiment_ids[:2]
    dash_duo.driver.get(f"{dash_duo.server.url}/experiments?a={first}&b={second}")
    dash_duo.wait_for_contains_text("#experiments-deltas", "exact_match", timeout=30)
    dash_duo.wait_for_contains_text("#experiments-deltas", "relevance", timeout=10)
    frame = scroll_to_pane(dash_duo, "experiments-phoenix")
    assert "/compare?experimentId=" in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-answer-v1" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    examples = exported_rows(dash_duo, "#experiments-examples-export")
    assert len(examples) == 12
    assert len(exported_rows(dash_duo, "#experiments-grid-export")) >= 2
    _finish(dash_duo, "experiments")


def test_playground_shows_a_prompt_version_its_traffic_and_phoenix(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/playground?prompt=support-answer")
    dash_duo.wait_for_contains_text("#playground-template", "{question}", timeout=20)
    dash_duo.wait_for_contains_text("#playground-detail", "production", timeout=10)
    WebDriverWait(dash_duo.driver, 20).until(
        lambda d: "support-answer" in d.current_url and "version=" in d.current_url
    )
    dash_duo.wait_for_element("#playground-kpi-count", timeout=20)
    link = dash_duo.find_element("#playground-prompt-link").get_attribute("href")
    assert "/phoenix/prompts/" in link
    frame = scroll_to_pane(dash_duo, "playground-phoenix")
    assert "/phoenix/playground?promptId=" in frame.get_attribute("src")
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-answer" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    _finish(dash_duo, "playground")


PROMPT = "support-answer"


GRIDS = {
    "traces": "traces-grid",
    "evaluations": "evaluations-grid",
    "analytics": "analytics-versions-table",
}


@pytest.mark.parametrize("page", ["traces", "evaluations", "analytics"])
def test_prompt_and_version_filters_drive_the_page_and_its_url(dash_duo, synced_app, page) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, f"/{page}")
    wait_count(dash_duo, page, expected_count(synced_app, page, {}))

    dash_duo.select_dcc_dropdown(bar(page, "prompt"), value=PROMPT)
    WebDriverWait(dash_duo.driver, 15).until(lambda d: f"prompt={PROMPT}" in d.current_url)
    wait_count(dash_duo, page, expected_count(synced_app, page, {"prompt": PROMPT}))

    # The version choices narrow to the chosen prompt's versions.
    services = get_services(synced_app.server)
    with services.sessions() as db:
        versions = prompt_filters.filter_options(db, services.store, PROMPT)["versions"]
    WebDriverWait(dash_duo.driver, 15).until(
        lambda d: dropdown_options(dash_duo, bar(page, "versions")) == versions
    )
    # The busiest version, so the narrowed view is never empty whatever the day's rollout.
    calls = {
        v: expected_count(synced_app, page, {"prompt": PROMPT, "versions": v}) for v in versions
    }
    version = max(versions, key=lambda v: calls[v])
    dash_duo.select_dcc_dropdown(bar(page, "versions"), value=version)
    query = {"prompt": PROMPT, "versions": version}
    WebDriverWait(dash_duo.driver, 15).until(lambda d: f"versions={version}" in d.current_url)
    narrowed = expected_count(synced_app, page, query)
    assert narrowed > 0
    wait_count(dash_duo, page, narrowed)

    # A copied link restores the same view.
    shared = dash_duo.driver.current_url
    dash_duo.driver.get(f"{dash_duo.server.url}/")
    dash_duo.driver.get(shared)
    wait_count(dash_duo, page, narrowed)
    assert PROMPT in dash_duo.find_element(bar(page, "prompt")).text
    assert version in dash_duo.find_element(bar(page, "versions")).text

    # The export holds every filtered row, whatever the grid shows.
    grid = GRIDS[page]
    dash_duo.wait_for_element(f"#{grid}-export", timeout=20)
    export = exported_rows(dash_duo, f"#{grid}-export", None)
    if page == "analytics":
        export = exported_rows(dash_duo, f"#{grid}-export", ("/versions.csv", "/llm-calls.csv"))
    assert len(export) == narrowed
    assert {r.get("prompt", PROMPT) for r in export} == {PROMPT}

    # The column chooser hides a column and shows it again.
    header = f"#{grid} .ag-header-cell[col-id='prompt_version']"
    dash_duo.wait_for_element(header, timeout=15)
    click(dash_duo, f"#{grid}-columns-button")
    chooser = dash_duo.wait_for_element(".popover-body")
    box = chooser.find_element("xpath", ".//label[normalize-space()='prompt version']")
    box.click()
    WebDriverWait(dash_duo.driver, 10).until(lambda d: not d.find_elements("css selector", header))
    box.click()
    dash_duo.wait_for_element(header, timeout=10)
    assert dash_duo.get_logs() == []


def test_custom_time_range_from_the_url_and_back(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    services = get_services(synced_app.server)
    month = parse_query({"range": "30d"})[0].to_filters(None)
    times = sorted(
        row[7] for _c, batch in store_analytics.iter_spans(services.store, month) for row in batch
    )
    middle = times[len(times) // 2]
    start = middle.strftime("%Y-%m-%dT%H:%M")
    end = (middle + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M")
    query = {"range": "custom", "start": start, "end": end}
    login(dash_duo, "/analytics?" + urlencode(query))
    expected = expected_count(synced_app, "analytics", query)
    assert 0 < expected < len(times)
    wait_count(dash_duo, "analytics", expected)
    assert dash_duo.find_element(bar("analytics", "start")).get_attribute("value") == start
    assert dash_duo.find_element(bar("analytics", "end")).get_attribute("value") == end

    range_id = bar("analytics", "range")[len("[id='") : -len("']")]
    dash_duo.driver.find_element(
        "xpath", f"//*[@id='{range_id}']//label[normalize-space()='24h']"
    ).click()
    WebDriverWait(dash_duo.driver, 15).until(lambda d: "range=24h" in d.current_url)
    assert "start=" not in dash_duo.driver.current_url
    assert not dash_duo.find_element(bar("analytics", "start")).is_displayed()
    wait_count(dash_duo, "analytics", expected_count(synced_app, "analytics", {"range": "24h"}))
    assert dash_duo.get_logs() == []


def test_phoenix_pane_is_created_only_when_scrolled_into_view(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/analytics?project=support-bot")
    dash_duo.wait_for_element("#analytics-phoenix .phoenix-pane-body", timeout=20)
    wait_count(
        dash_duo, "analytics", expected_count(synced_app, "analytics", {"project": "support-bot"})
    )
    # Below the fold: a skeleton, and no iframe, so Phoenix is not asked for anything yet.
    assert dash_duo.find_element("#analytics-phoenix-skeleton").is_displayed()
    assert not dash_duo.driver.find_elements("css selector", "#analytics-phoenix-frame")

    frame = scroll_to_pane(dash_duo, "analytics-phoenix")
    assert "/phoenix/projects/" in frame.get_attribute("src")
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: not d.find_element("css selector", "#analytics-phoenix-skeleton").is_displayed()
    )
    dash_duo.driver.switch_to.frame(frame)
    WebDriverWait(dash_duo.driver, 30).until(
        lambda d: "support-bot" in d.find_element("tag name", "body").text
    )
    dash_duo.driver.switch_to.default_content()
    assert dash_duo.get_logs() == []
