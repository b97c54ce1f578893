"""Browser helpers the page tests share: sign in, read what a page shows, scroll and click."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import requests
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD
from services import prompt_filters
from services.container import get_services
from services.filters import parse_query
from settings import PROJECT_DIR
from store import analytics as store_analytics
from store import views

# What the browser saw, for a person to look at after a run; the README's screenshots come from
# `make screenshots`, on the full demo.
SCREENSHOTS = PROJECT_DIR / ".tmp" / "screenshots"


def save_screenshot(dash_duo, name: str) -> None:
    """Save what the browser shows now as .tmp/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dash_duo.driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def login(dash_duo, next_path: str = "/") -> None:
    """Sign the demo user in through the login form, landing on `next_path`."""
    query = urlencode({"next": next_path})
    dash_duo.driver.get(f"{dash_duo.server.url}/login?{query}")
    dash_duo.find_element("#login-email").send_keys(DEMO_EMAIL)
    dash_duo.find_element("#login-password").send_keys(DEMO_PASSWORD)
    dash_duo.find_element("#login-submit").click()


def scroll_to_pane(dash_duo, pane_id: str):
    """Scroll a lazy Phoenix pane into view and return the iframe it then creates."""
    pane = dash_duo.wait_for_element(f"#{pane_id}", timeout=20)
    dash_duo.driver.execute_script("arguments[0].scrollIntoView({behavior: 'instant'});", pane)
    return dash_duo.wait_for_element(f"#{pane_id}-frame", timeout=15)


def exported_rows(dash_duo, link_selector: str, swap: tuple[str, str] | None = None) -> list:
    """Download an export link with the browser's session and parse the CSV."""
    href = dash_duo.find_element(link_selector).get_attribute("href")
    if swap:
        href = href.replace(*swap)
    cookies = {c["name"]: c["value"] for c in dash_duo.driver.get_cookies()}
    response = requests.get(href, cookies=cookies, timeout=30)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.text)))


def shown_count(dash_duo, page: str) -> int | None:
    """Read the number of rows a page says it shows, or None while it redraws."""
    selector = {
        "traces": "#traces-table .card-header",
        "evaluations": "#evaluations-table .card-header",
        "analytics": "#analytics-kpi-count",
        "home": "#home-24h-count",
    }[page]
    try:
        elements = dash_duo.driver.find_elements("css selector", selector)
        words = elements[0].text.replace(",", "").split() if elements else []
    except StaleElementReferenceException:  # replaced by a redraw while we read it
        return None
    return int(words[0]) if words and words[0].isdigit() else None


def expected_count(app, page: str, query: dict[str, str]) -> int:
    """Count what the page should show for a URL query, straight from the facts store."""
    services = get_services(app.server)
    with services.sessions() as db:
        filters = prompt_filters.resolve(db, parse_query(query)[0])
    if page == "evaluations":
        return views.evaluations_page(services.store, filters, limit=1).total
    if page == "traces":
        return store_analytics.trace_count(services.store, filters)
    return store_analytics.kpis(services.store, filters).metrics.count


def wait_count(dash_duo, page: str, expected: int) -> None:
    """Wait until the page shows `expected`."""
    seen: list[int | None] = []

    def shows_expected(_driver) -> bool:
        seen.append(shown_count(dash_duo, page))
        return seen[-1] == expected

    try:
        WebDriverWait(dash_duo.driver, 30).until(shows_expected)
    except TimeoutException as exc:
        body = dash_duo.driver.find_element("tag name", "body").text[:600]
        raise AssertionError(f"{page} showed {seen[-1]}, not {expected}: {body}") from exc


def click(dash_duo, selector: str) -> None:
    """Click an element once the page's callbacks have settled, scrolled to the middle."""
    WebDriverWait(dash_duo.driver, 20).until(
        lambda d: not d.find_elements("css selector", "._dash-loading-callback")
    )
    element = dash_duo.find_element(selector)
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element
    )
    element.click()


def dropdown_options(dash_duo, selector: str) -> list[str]:
    """Open a dropdown, read its options, and close it again."""
    dash_duo.find_element(selector).click()
    menu = dash_duo.wait_for_element(".dash-dropdown-options")
    options = [o.text for o in menu.find_elements("css selector", ".dash-dropdown-option")]
    ActionChains(dash_duo.driver).send_keys(Keys.ESCAPE).perform()
    return options


def bar(page: str, name: str) -> str:
    """Select one of the filter bar's controls (its ids are the All-in-One's dict ids)."""
    from dash._utils import stringify_id

    from components.filter_bar import FilterBarAIO

    ids = FilterBarAIO.ids
    made = ids.live_status(page) if name == "live-status" else ids.filter(page, name)
    return f"[id='{stringify_id(made)}']"
