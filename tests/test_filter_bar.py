"""The filter bar's shared callbacks, called as the browser calls them (Flask test client)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dash._utils import stringify_id
from flask.testing import FlaskClient
from sqlalchemy import select

from components.filter_bar import FILTERS, FilterBarAIO
from db.models import User
from services import saved_views
from services.container import get_services
from tests.callbacks import home_poll, post, route

ids = FilterBarAIO.ids


def _filters(
    client: FlaskClient, page: str, values: dict[str, Any], evaluator: str | None, current: str
) -> dict[str, Any]:
    return post(
        client,
        page,
        outputs=[(ids.url, "search"), (ids.state, "data")],
        inputs=[
            *[
                ((lambda p, n=name: ids.filter(p, n)), "value", values.get(name))
                for name in FILTERS
            ],
            (ids.evaluator, "data", evaluator),
        ],
        state=[(ids.state, "data", current)],
    )


@pytest.fixture
def member(auth) -> str:
    """A signed-in member."""
    auth.create("ana@example.com", role="member")
    auth.login("ana@example.com")
    return "ana@example.com"


def _user_id(app, email: str) -> int:
    with get_services(app.server).sessions() as db:
        user = db.scalar(select(User).where(User.email == email))
    assert user is not None
    return user.id


def test_the_filters_write_the_url_keeping_evaluator_and_time_zone(client, member) -> None:
    body = _filters(
        client,
        "analytics",
        {"project": "web", "versions": ["v1", "v2"], "range": "7d"},
        "review",
        "?evaluator=review&tz=Europe%2FParis",
    )
    query = "?project=web&versions=v1%2Cv2&evaluator=review&tz=Europe%2FParis"
    response = body["response"]
    assert response[stringify_id(ids.url("analytics"))]["search"] == query
    # The page's own store, which its redraws listen to, follows.
    assert body["sideUpdate"]["analytics-state"] == {"data": query}


def test_the_custom_range_inputs_are_read_in_utc_whatever_the_time_zone(client, member) -> None:
    body = _filters(
        client,
        "traces",
        {"range": "custom", "start": "2026-11-25T09:00", "end": "2026-11-25T10:00"},
        None,
        "?tz=Europe%2FParis",
    )
    search = body["response"][stringify_id(ids.url("traces"))]["search"]
    assert "start=2026-11-25T09%3A00%3A00%2B00%3A00" in search and "tz=Europe%2FParis" in search


def test_unchanged_filters_leave_the_url_alone(client, member) -> None:
    body = _filters(client, "traces", {"prompt": "faq", "range": "7d"}, None, "?prompt=faq")
    assert body.get("response") == {} and "sideUpdate" not in body


def _action(client, page: str, trigger: str, **state: Any) -> dict[str, Any]:
    inputs = [
        (ids.view_save, "n_clicks", 1 if trigger == "save" else None),
        (ids.view_default, "n_clicks", 1 if trigger == "default" else None),
        (ids.view_delete, "n_clicks", 1 if trigger == "delete" else None),
    ]
    # The button clicked is the one Dash names as changed.
    inputs.insert(0, inputs.pop(["save", "default", "delete"].index(trigger)))
    body = post(
        client,
        page,
        [(ids.view_feedback, "children"), (ids.views, "options"), (ids.views, "value")],
        inputs,
        [
            (ids.view_name, "value", state.get("name")),
            (ids.view_shared, "value", state.get("shared", False)),
            (ids.view_make_default, "value", state.get("default", False)),
            (ids.state, "data", state.get("query", "")),
            (ids.views, "value", state.get("picked")),
        ],
    )
    return dict(body["response"])


def _feedback(body: dict[str, Any], page: str) -> str:
    return str(body[stringify_id(ids.view_feedback(page))]["children"]["props"]["children"])


def test_save_pick_default_and_delete_a_view_through_the_bar(app, client, member) -> None:
    saved = _action(client, "analytics", "save", name="FAQ week", query="?prompt=faq", shared=True)
    assert _feedback(saved, "analytics") == "Saved 'FAQ week'."
    options = saved[stringify_id(ids.views("analytics"))]["options"]
    assert [o["label"] for o in options] == ["FAQ week (shared)"]
    view_id = options[0]["value"]
    assert saved[stringify_id(ids.views("analytics"))]["value"] == view_id

    # Picking it from another URL navigates to the page with its filters.
    opened = post(
        client,
        "analytics",
        [(ids.nav, "href")],
        [(ids.views, "value", view_id)],
        [(ids.state, "data", "?prompt=other")],
    )
    assert opened["response"][stringify_id(ids.nav("analytics"))]["href"] == "/analytics?prompt=faq"

    made = _action(client, "analytics", "default", picked=view_id, query="?prompt=faq")
    assert _feedback(made, "analytics") == "This page now opens with that view."
    user = _user_id(app, member)
    with get_services(app.server).sessions() as db:
        default = saved_views.default_for(db, user, "analytics")
    assert default is not None and default.id == view_id

    deleted = _action(client, "analytics", "delete", picked=view_id)
    assert _feedback(deleted, "analytics") == "Deleted the view."
    assert deleted[stringify_id(ids.views("analytics"))]["options"] == []


def test_a_bad_name_or_a_viewer_sharing_gets_a_message(auth, client) -> None:
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    empty = _action(client, "traces", "save", name="  ", query="?prompt=faq")
    assert _feedback(empty, "traces") == "Name the view."
    shared = _action(client, "traces", "save", name="mine", query="?prompt=faq", shared=True)
    assert "Only members and admins can share" in _feedback(shared, "traces")
    personal = _action(client, "traces", "save", name="mine", query="?prompt=faq")
    assert _feedback(personal, "traces") == "Saved 'mine'."
    nothing = _action(client, "traces", "default")
    assert _feedback(nothing, "traces") == "Pick a view first."


def _find(node: Any, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """Find the component with an id in a layout as JSON."""
    if isinstance(node, dict):
        if node.get("props", {}).get("id") == wanted:
            return node
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find(child, wanted)
        if found is not None:
            return found
    return None


def _layout(client, path: str, search: str = "") -> Any:
    response = route(client, path, search)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data(as_text=True))["response"]["_pages_content"]["children"]


def test_a_bare_page_carries_the_default_view_to_open(app, client, member) -> None:
    user = _user_id(app, member)
    with get_services(app.server).sessions.begin() as db:
        view = saved_views.save(db, user, "evaluations", "errors", "?status=ERROR&range=24h")
        saved_views.set_default(db, user, "evaluations", view.id)
    bare = _find(_layout(client, "/evaluations"), ids.default("evaluations"))
    assert bare is not None and bare["props"]["data"] == "?status=ERROR&range=24h"
    # A URL naming filters is opened as it is.
    named = _find(_layout(client, "/evaluations", "?prompt=faq"), ids.default("evaluations"))
    assert named is not None and named["props"].get("data") is None
    # Opened on the view's filters, the picker names it, ready to be made the default.
    picker = _find(_layout(client, "/evaluations", view.query), ids.views("evaluations"))
    assert picker is not None and picker["props"]["value"] == view.id


def test_home_lists_your_views_and_the_teams(app, client, auth) -> None:
    auth.create("bo@example.com", role="member")
    auth.create("ana@example.com", role="member")
    auth.login("ana@example.com")
    with get_services(app.server).sessions.begin() as db:
        bo = _user_id(app, "bo@example.com")
        ana = _user_id(app, "ana@example.com")
        saved_views.save(db, bo, "traces", "bo's errors", "?status=ERROR", shared=True)
        saved_views.save(db, bo, "traces", "bo private", "?status=OK")
        mine = saved_views.save(db, ana, "analytics", "faq", "?prompt=faq")
    text = json.dumps(_layout(client, "/"))
    assert "Your views" in text and "Team views" in text
    assert '"href": "/analytics?prompt=faq"' in text and f"home-own-view-{mine.id}" in text
    assert '"href": "/traces?status=ERROR"' in text and "bo private" not in text


def test_the_analytics_evaluator_picker_feeds_the_bar(client, member) -> None:
    body = post(
        client,
        "analytics",
        [(ids.evaluator("analytics"), "data")],
        [("analytics-filter-evaluator", "value", "review")],
    )
    assert body["response"][stringify_id(ids.evaluator("analytics"))]["data"] == "review"


def test_home_polls_with_the_shared_live_control(client, member) -> None:
    first = post(
        client,
        "home",
        [(ids.watermark, "data"), (ids.live_status, "children")],
        [(ids.poll, "n_intervals", 1), (ids.live, "value", True)],
        [(ids.watermark, "data", None)],
    )
    mark = first["response"][stringify_id(ids.watermark("home"))]["data"]
    # Home's redraws listen to its own store, which the shared poll keeps in step.
    assert first["sideUpdate"]["home-watermark"] == {"data": mark}
    assert "home-watermark" not in home_poll(client, seen=mark)
    paused = home_poll(client, seen=mark, live=False)
    assert "home-watermark" not in paused and "paused" in json.dumps(paused["home-live-status"])
    # The Phoenix banner is redrawn on each poll too, from our records.
    assert "Phoenix" in json.dumps(paused["home-status"])
