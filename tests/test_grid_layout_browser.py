"""Grids as an analyst sees them at 1440 px: full width until a trace opens, whole times,
experiments in the display zone and a grid no taller than its rows."""

from __future__ import annotations

import re

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import login

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Whether a cell's text is cut off ("2026-11-2…"): its text is wider than the cell.
TRUNCATED = """
const cells = document.querySelectorAll(arguments[0]);
return Array.from(cells).filter(c => c.innerText && c.scrollWidth > c.clientWidth + 1)
  .map(c => c.innerText);
"""


def _width(dash_duo, selector: str) -> float:
    return float(
        dash_duo.driver.execute_script(
            "return document.querySelector(arguments[0]).getBoundingClientRect().width", selector
        )
    )


def test_the_traces_grid_is_full_width_until_a_trace_opens(dash_duo, synced_app) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/traces?project=sales-email&tz=Europe/Berlin")
    # The grid may refill its block as the live watermark arrives: read cells afresh each time.
    first_time = (
        "const c = document.querySelector("
        "'#traces-grid .ag-center-cols-container .ag-row [col-id=start_time]');"
        "return c ? c.innerText : '';"
    )
    WebDriverWait(dash_duo.driver, 20).until(
        lambda d: "GMT" in (d.execute_script(first_time) or "")
    )
    row = _width(dash_duo, "#traces-table-col")
    whole = float(
        dash_duo.driver.execute_script(
            "return document.getElementById('traces-table-col').parentElement"
            ".getBoundingClientRect().width"
        )
    )
    assert row > 0.95 * whole, (row, whole)
    selector = (
        "#traces-grid .ag-cell[col-id=start_time], #traces-grid .ag-cell[col-id=start_time] *"
    )
    assert dash_duo.driver.execute_script(TRUNCATED, selector) == []
    for attempt in range(3):
        cell = dash_duo.wait_for_element(
            "#traces-grid .ag-center-cols-container .ag-row [col-id=start_time]", timeout=20
        )
        try:
            cell.click()
            break
        except StaleElementReferenceException:
            if attempt == 2:
                raise
    dash_duo.wait_for_element("#traces-phoenix", timeout=15)
    WebDriverWait(dash_duo.driver, 10).until(
        lambda _d: _width(dash_duo, "#traces-table-col") < 0.6 * row
    )
    assert _width(dash_duo, "#traces-pane-col") > 0.4 * row


def test_experiments_show_created_at_in_the_display_zone_in_a_fitted_grid(
    dash_duo, synced_app
) -> None:
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, "/experiments?tz=Europe/Berlin")
    dash_duo.wait_for_contains_text("#experiments-grid", "support-answer-v1", timeout=20)
    cell = dash_duo.find_element(
        "#experiments-grid .ag-center-cols-container .ag-row [col-id=created_at]"
    )
    WebDriverWait(dash_duo.driver, 10).until(lambda _d: "GMT+1" in cell.text)
    # "2026-11-26 19:12:00 GMT+1", not Phoenix's "2026-11-26T18:12:00.123+00:00".
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d GMT\+1", cell.text), cell.text
    rows = len(dash_duo.find_elements("#experiments-grid .ag-center-cols-container .ag-row"))
    height = dash_duo.driver.execute_script(
        "return document.getElementById('experiments-grid').getBoundingClientRect().height"
    )
    assert rows <= 20 and height < 420, (rows, height)
    created = "#experiments-grid .ag-cell[col-id=created_at]"
    assert dash_duo.driver.execute_script(TRUNCATED, f"{created}, {created} *") == []
