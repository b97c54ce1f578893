"""In headless Chromium: the demo login reaches the home page; an expired session goes to login."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from app import create_app
from devtools.demo import DEMO_EMAIL, DEMO_PASSWORD, ensure_demo_user

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _login(dash_duo, email: str, password: str) -> None:
    dash_duo.driver.get(f"{dash_duo.server.url}/login")
    dash_duo.find_element("#login-email").send_keys(email)
    dash_duo.find_element("#login-password").send_keys(password)
    dash_duo.find_element("#login-submit").click()


def test_demo_user_logs_in_and_sees_phoenix_version(dash_duo, phoenix_settings, phoenix_server):
    app = create_app(phoenix_settings)
    assert ensure_demo_user(app)
    dash_duo.start_server(app, navigate=False)
    dash_duo.driver.get(dash_duo.server.url)
    # An anonymous visit lands on the styled login form.
    WebDriverWait(dash_duo.driver, 10).until(EC.url_contains("/login?next=/"))
    button = dash_duo.find_element("#login-submit")
    assert button.value_of_css_property("background-color") == "rgba(13, 110, 253, 1)"

    _login(dash_duo, DEMO_EMAIL, DEMO_PASSWORD)
    dash_duo.wait_for_contains_text("#phoenix-status", "Connected to Phoenix 20.26.1", timeout=15)
    dash_duo.wait_for_contains_text("#phoenix-status", phoenix_server.url, timeout=10)
    assert "Demo Analyst" in dash_duo.find_element("#nav-user").text
    dash_duo.wait_for_element("#home-24h-count", timeout=15)
    assert dash_duo.get_logs() == []

    # Sign out is a form post carrying the CSRF token; it lands on the login form.
    dash_duo.find_element("#nav-user .dropdown-toggle").click()
    dash_duo.wait_for_element("#nav-logout", timeout=5).click()
    WebDriverWait(dash_duo.driver, 10).until(EC.url_contains("/login"))
    dash_duo.driver.get(dash_duo.server.url)
    WebDriverWait(dash_duo.driver, 10).until(EC.url_contains("/login?next=/"))
    assert dash_duo.get_logs() == []


def test_wrong_password_shows_a_message(dash_duo, settings, auth):
    app = create_app(settings)
    dash_duo.start_server(app, navigate=False)
    _login(dash_duo, "nobody@example.com", "wrong-password")
    assert "Wrong email or password" in dash_duo.find_element("#form-error").text
    assert dash_duo.get_logs() == []


def test_expired_session_while_polling_returns_to_login(dash_duo, settings):
    polling = settings.with_overrides(poll_interval_s=1)
    app = create_app(polling)
    ensure_demo_user(app)
    dash_duo.start_server(app, navigate=False)
    _login(dash_duo, DEMO_EMAIL, DEMO_PASSWORD)
    dash_duo.wait_for_contains_text("#phoenix-status", "turned off", timeout=15)
    # The sign-in ends on the server: a poll response still in flight may re-set the cookie the
    # browser just dropped, but that cookie's sign-in is gone too.
    result = app.server.test_cli_runner().invoke(args=["users", "sign-out-everywhere", DEMO_EMAIL])
    assert result.exit_code == 0, result.output
    dash_duo.driver.delete_all_cookies()
    WebDriverWait(dash_duo.driver, 20).until(EC.url_contains("/login?next=%2F"))
    assert dash_duo.driver.find_elements(By.ID, "login-email")
    # Chrome logs the refused poll itself; that one entry is the expected signal, nothing else.
    refused = dash_duo.get_logs()
    assert refused, "the expired poll should have been refused"
    assert all("_dash-update-component" in e["message"] and "401" in e["message"] for e in refused)
    assert dash_duo.get_logs() == []


def test_embedded_phoenix_renders_data_for_a_signed_in_user(dash_duo, settings, phoenix_auth):
    from devtools.demo_data import load_demo

    load_demo(phoenix_auth.server.url, api_key=phoenix_auth.admin_secret, llm_spans=30, seed=5)
    app = create_app(
        settings.with_overrides(
            phoenix_enabled=True,
            phoenix_url=phoenix_auth.server.url,
            phoenix_api_key=phoenix_auth.keys.viewer_key,
        )
    )
    ensure_demo_user(app)
    dash_duo.start_server(app, navigate=False)
    _login(dash_duo, DEMO_EMAIL, DEMO_PASSWORD)
    dash_duo.wait_for_element("#home-phoenix-frame", timeout=15)
    assert (
        dash_duo.find_element("#home-phoenix-open")
        .get_attribute("href")
        .endswith("/phoenix/projects")
    )
    dash_duo.driver.switch_to.frame(dash_duo.find_element("#home-phoenix-frame"))
    WebDriverWait(dash_duo.driver, 30).until(
        EC.text_to_be_present_in_element((By.TAG_NAME, "body"), "support-bot")
    )
    dash_duo.driver.switch_to.default_content()
    assert dash_duo.get_logs() == []

    # The same browser without its session gets nothing from Phoenix, only our login.
    dash_duo.driver.delete_all_cookies()
    dash_duo.driver.get(f"{dash_duo.server.url}/phoenix/projects")
    WebDriverWait(dash_duo.driver, 10).until(EC.url_contains("/login?next=/phoenix/projects"))
    assert "support-bot" not in dash_duo.driver.page_source
    assert dash_duo.get_logs() == []
