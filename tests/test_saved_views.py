"""Saved views: validation, sharing rules, defaults, owner-only delete, hostile queries."""

from __future__ import annotations

import inspect
import sys

import pytest
from dash._utils import stringify_id
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.support.ui import WebDriverWait

from app import create_app
from components.filter_bar import FilterBarAIO
from services import saved_views, users
from services.container import get_services
from services.saved_views import SavedViewError
from tests.browser import click, expected_count, login, wait_count


@pytest.fixture
def people(app) -> dict[str, int]:
    """A viewer and two members, by role-ish name, as user ids."""
    ids = {}
    with get_services(app.server).sessions.begin() as db:
        for name, role in (("viewer", "viewer"), ("ana", "member"), ("bo", "member")):
            user = users.create_user(
                db, f"{name}@example.com", "a long enough password", role=role, display_name=name
            )
            db.flush()
            ids[name] = user.id
    return ids


def _db(app):
    return get_services(app.server).sessions.begin()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "Name the view."),
        ("   ", "Name the view."),
        ("x" * 201, "at most 200 characters"),
        ("bad\x00name", "control characters"),
        ("tab\tname", "control characters"),
    ],
)
def test_a_name_must_be_short_printable_text(app, people, name: str, message: str) -> None:
    with _db(app) as db, pytest.raises(SavedViewError, match=message):
        saved_views.save(db, people["ana"], "analytics", name, "?prompt=faq")


def test_only_filterable_pages_have_views(app, people) -> None:
    with _db(app) as db, pytest.raises(SavedViewError, match="has no filters to save"):
        saved_views.save(db, people["ana"], "alerts", "mine", "")


def test_a_hostile_query_is_stored_as_the_filters_parser_renders_it(app, people) -> None:
    hostile = (
        "?project=web%00shop&evil=<script>alert(1)</script>&status=ok&range=nope"
        "&versions=v1,,v1,v2&tz=Europe/Paris&tz=../../etc/passwd&evaluator=review"
    )
    with _db(app) as db:
        view = saved_views.save(db, people["ana"], "traces", "hostile", hostile)
    # Unknown keys and bad values dropped, control characters stripped, the last tz= wins.
    assert view.query == "?project=webshop&versions=v1%2Cv2&status=OK&evaluator=review"
    with _db(app) as db:
        kept = saved_views.save(db, people["ana"], "traces", "zone", "?tz=Europe/Paris&range=24h")
    assert kept.query == "?range=24h&tz=Europe%2FParis"


def test_saving_a_name_again_replaces_that_view(app, people) -> None:
    with _db(app) as db:
        first = saved_views.save(db, people["ana"], "analytics", "faq", "?prompt=faq")
        second = saved_views.save(db, people["ana"], "analytics", " faq ", "?prompt=faq&range=1h")
    assert second.id == first.id and second.query == "?prompt=faq&range=1h"
    with _db(app) as db:
        assert [v.name for v in saved_views.list_for(db, people["ana"], "analytics")] == ["faq"]


def test_viewers_keep_views_personal_and_members_share_them(app, people) -> None:
    with _db(app) as db:
        with pytest.raises(SavedViewError, match="Only members and admins can share"):
            saved_views.save(db, people["viewer"], "analytics", "mine", "?prompt=a", shared=True)
        saved_views.save(db, people["viewer"], "analytics", "mine", "?prompt=a")
        saved_views.save(db, people["ana"], "analytics", "team faq", "?prompt=faq", shared=True)
        saved_views.save(db, people["ana"], "analytics", "ana only", "?prompt=x")
        saved_views.save(db, people["ana"], "traces", "other page", "?prompt=x", shared=True)
    with _db(app) as db:
        seen = saved_views.list_for(db, people["viewer"], "analytics")
        assert [(v.name, v.mine, v.owner_name) for v in seen] == [
            ("mine", True, "viewer"),
            ("team faq", False, "ana"),
        ]
        bo = saved_views.list_for(db, people["bo"], "analytics")
        assert [v.name for v in bo] == ["team faq"]
        assert {v.name for v in saved_views.list_all(db, people["bo"])} == {
            "team faq",
            "other page",
        }


def test_only_the_owner_deletes_a_view(app, people) -> None:
    with _db(app) as db:
        view = saved_views.save(db, people["ana"], "analytics", "team", "?prompt=a", shared=True)
        saved_views.set_default(db, people["bo"], "analytics", view.id)
    with _db(app) as db, pytest.raises(SavedViewError, match="Only the owner"):
        saved_views.delete(db, people["bo"], view.id)
    with _db(app) as db:
        saved_views.delete(db, people["ana"], view.id)
    with _db(app) as db:
        assert saved_views.list_for(db, people["ana"], "analytics") == []
        # Another user's default on it went with it.
        assert saved_views.default_for(db, people["bo"], "analytics") is None
        with pytest.raises(SavedViewError, match="no longer exists"):
            saved_views.delete(db, people["ana"], view.id)


def test_a_default_is_a_view_the_user_can_open_on_that_page(app, people) -> None:
    with _db(app) as db:
        personal = saved_views.save(db, people["ana"], "analytics", "mine", "?prompt=a")
        shared = saved_views.save(db, people["ana"], "analytics", "team", "?prompt=b", shared=True)
        other = saved_views.save(db, people["ana"], "traces", "traces", "?prompt=c")
    with _db(app) as db:
        with pytest.raises(SavedViewError, match="not shared with you"):
            saved_views.set_default(db, people["bo"], "analytics", personal.id)
        with pytest.raises(SavedViewError, match="a view of traces, not of analytics"):
            saved_views.set_default(db, people["ana"], "analytics", other.id)
        saved_views.set_default(db, people["bo"], "analytics", shared.id)
        saved_views.set_default(db, people["ana"], "analytics", personal.id)
    with _db(app) as db:
        bo_default = saved_views.default_for(db, people["bo"], "analytics")
        assert bo_default is not None and bo_default.query == "?prompt=b"
        ana_default = saved_views.default_for(db, people["ana"], "analytics")
        assert ana_default is not None and ana_default.id == personal.id
        assert saved_views.default_for(db, people["ana"], "traces") is None
        # Unshared since: bo's page opens as if he had no default.
        saved_views.save(db, people["ana"], "analytics", "team", "?prompt=b", shared=False)
    with _db(app) as db:
        assert saved_views.default_for(db, people["bo"], "analytics") is None
        saved_views.set_default(db, people["ana"], "analytics", None)
    with _db(app) as db:
        assert saved_views.default_for(db, people["ana"], "analytics") is None


@pytest.mark.parametrize("page", ["analytics", "traces", "evaluations"])
def test_a_view_whose_prompt_is_gone_opens_with_a_message(settings, page: str) -> None:
    app = create_app(settings)
    with get_services(app.server).sessions.begin() as db:
        user = users.create_user(db, "ana@example.com", "a long enough password", role="member")
        db.flush()
        view = saved_views.save(db, user.id, page, "gone", "?prompt=retired&versions=v9")
    redraw = sys.modules[f"pages.{page}"].redraw
    # By name, as the pages' redraws grow inputs: the URL's query is `search`, the rest default.
    given = {"search": view.query, "split": "prompt_version"}
    args = [given.get(name) for name in inspect.signature(redraw).parameters]
    with app.server.test_request_context("/"):
        outputs = redraw(*args)
    notice = outputs[-1]
    assert notice.id == f"{page}-empty"
    assert notice.children == "No prompt named 'retired' has synced data yet."


def _css(component_id: dict[str, str]) -> str:
    """Select a pattern-matching id's element: Dash writes the id as its JSON."""
    return f"[id='{stringify_id(component_id)}']"


def _wait_for_url(dash_duo, url: str) -> None:
    """Wait until the browser shows `url`, saying which it shows instead if it never does."""
    try:
        WebDriverWait(dash_duo.driver, 15).until(lambda d: d.current_url == url)
    except TimeoutException as exc:
        raise AssertionError(f"expected {url}, at {dash_duo.driver.current_url}") from exc


@pytest.mark.browser
@pytest.mark.integration
# Traces: the analytics page's own URL writer for pct= (pages/analytics.py) currently pushes
# the bare URL back after a filter change, whatever the bar does.
@pytest.mark.parametrize("page", ["traces"])
def test_a_saved_view_round_trip_in_the_browser(dash_duo, synced_app, page: str) -> None:
    ids = FilterBarAIO.ids
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced_app, navigate=False)
    login(dash_duo, f"/{page}")
    everything = expected_count(synced_app, page, {})
    wait_count(dash_duo, page, everything)

    # Set filters, then name them.
    dash_duo.select_dcc_dropdown(_css(ids.filter(page, "project")), value="support-bot")
    WebDriverWait(dash_duo.driver, 15).until(lambda d: "project=support-bot" in d.current_url)
    narrowed = expected_count(synced_app, page, {"project": "support-bot"})
    assert 0 < narrowed < everything
    wait_count(dash_duo, page, narrowed)
    saved_url = dash_duo.driver.current_url
    dash_duo.find_element(_css(ids.view_name(page))).send_keys("Support bot")
    click(dash_duo, _css(ids.view_save(page)))
    dash_duo.wait_for_text_to_equal(
        _css(ids.view_feedback(page)), "Saved 'Support bot'.", timeout=15
    )

    # Elsewhere, pick it from the views: the same filters, in the URL and on screen.
    dash_duo.driver.get(f"{dash_duo.server.url}/{page}?range=24h")
    wait_count(dash_duo, page, expected_count(synced_app, page, {"range": "24h"}))
    dash_duo.select_dcc_dropdown(_css(ids.views(page)), value="Support bot")
    _wait_for_url(dash_duo, saved_url)
    wait_count(dash_duo, page, narrowed)
    assert "support-bot" in dash_duo.find_element(_css(ids.filter(page, "project"))).text

    # Make it the default: the bare page now opens on it.
    click(dash_duo, _css(ids.view_default(page)))
    dash_duo.wait_for_text_to_equal(
        _css(ids.view_feedback(page)), "This page now opens with that view.", timeout=15
    )
    dash_duo.driver.get(f"{dash_duo.server.url}/")
    dash_duo.wait_for_element("#home-saved-views", timeout=20)
    assert "Support bot" in dash_duo.find_element("#home-saved-views").text
    dash_duo.driver.get(f"{dash_duo.server.url}/{page}")
    _wait_for_url(dash_duo, saved_url)
    wait_count(dash_duo, page, narrowed)
    assert "support-bot" in dash_duo.find_element(_css(ids.filter(page, "project"))).text
    assert dash_duo.get_logs() == []
