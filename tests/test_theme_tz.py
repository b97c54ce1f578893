"""Display settings: validating and saving theme and zone, the zone pages use, the shell."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask_login import current_user

from db.models import User
from services import user_settings
from services.container import get_services
from services.filters import FilterState
from store import analytics

from .conftest import AuthActions
from .seed import seed


def _saved(app, email: str = "analyst@example.com") -> tuple[str, str | None]:
    with get_services(app.server).sessions() as db:
        user = db.query(User).filter_by(email=email).one()
        return user.theme, user.timezone


@pytest.mark.parametrize(
    ("body", "changes"),
    [
        ({"theme": "dark"}, {"theme": "dark"}),
        (
            {"theme": "auto", "timezone": "Asia/Kathmandu"},
            {"theme": "auto", "timezone": "Asia/Kathmandu"},
        ),
        ({"timezone": "UTC"}, {"timezone": "UTC"}),
        ({"timezone": ""}, {"timezone": None}),
        ({"timezone": None}, {"timezone": None}),
    ],
)
def test_valid_settings_are_read(body, changes) -> None:
    assert user_settings.validate(body) == (changes, [])


@pytest.mark.parametrize(
    "body",
    [
        {"theme": "purple"},
        {"theme": None},
        {"timezone": "Mars/Olympus"},
        {"timezone": "../../etc/passwd"},
        {"timezone": 5},
        {"timezone": "Europe/Paris" * 10},
        {"colour": "dark"},
        {},
        [],
        "dark",
    ],
)
def test_invalid_settings_are_refused(body) -> None:
    _changes, problems = user_settings.validate(body)
    assert problems


def test_a_user_saves_their_own_settings_as_json(app, client, auth: AuthActions) -> None:
    auth.create()
    auth.create("other@example.com")
    auth.login()
    assert _saved(app) == ("auto", None)
    response = client.post("/api/settings", json={"theme": "dark", "timezone": "Asia/Kathmandu"})
    assert response.status_code == 200
    assert response.json == {"theme": "dark", "timezone": "Asia/Kathmandu"}
    assert response.headers["Cache-Control"] == "no-store"
    assert _saved(app) == ("dark", "Asia/Kathmandu")
    assert _saved(app, "other@example.com") == ("auto", None)
    # One setting at a time leaves the other alone; "" goes back to the browser's zone.
    assert client.post("/api/settings", json={"timezone": ""}).json["timezone"] is None
    assert _saved(app) == ("dark", None)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"theme": "purple"}}, 400),
        ({"json": {"timezone": "Mars/Olympus"}}, 400),
        ({"data": "not json", "content_type": "application/json"}, 400),
        # Form-like posts (which another site could send) need the CSRF token first.
        ({"data": {"theme": "dark"}}, 400),
        ({"data": json.dumps({"theme": "dark"}), "content_type": "text/plain"}, 400),
        ({"data": json.dumps({"theme": "dark"}), "content_type": "application/xml"}, 415),
    ],
)
def test_bad_settings_change_nothing(app, client, auth: AuthActions, kwargs, status) -> None:
    auth.create()
    auth.login()
    response = client.post("/api/settings", **kwargs)
    assert response.status_code == status
    assert _saved(app) == ("auto", None)


def test_settings_need_a_signed_in_same_site_user(app, client, auth: AuthActions) -> None:
    auth.create()
    assert client.post("/api/settings", json={"theme": "dark"}).status_code == 401
    auth.login()
    cross = client.post(
        "/api/settings", json={"theme": "dark"}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert _saved(app) == ("auto", None)


def test_the_signed_in_user_carries_their_settings(app, client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    client.post("/api/settings", json={"theme": "light", "timezone": "Europe/Paris"})
    with client:
        client.get("/healthz")
        assert current_user.theme == "light"
        assert current_user.timezone == "Europe/Paris"
        assert user_settings.current_theme() == "light"
        assert user_settings.current_zone() == "Europe/Paris"


def test_display_zone_prefers_the_url_then_the_user_then_utc(
    app, client, auth: AuthActions
) -> None:
    auth.create()
    with app.server.test_request_context():
        assert user_settings.display_zone(FilterState()) == "UTC"
    auth.login()
    with client:
        client.get("/healthz")
        assert user_settings.display_zone(FilterState()) == "UTC"
        assert user_settings.display_zone(FilterState(tz="Asia/Tokyo")) == "Asia/Tokyo"
    client.post("/api/settings", json={"timezone": "Asia/Kathmandu"})
    with client:
        client.get("/healthz")
        assert user_settings.display_zone(FilterState()) == "Asia/Kathmandu"
        assert user_settings.display_zone(FilterState(tz="Asia/Tokyo")) == "Asia/Tokyo"


def test_a_stale_saved_zone_falls_back(app, auth: AuthActions) -> None:
    auth.create()
    with get_services(app.server).sessions.begin() as db:
        user = db.query(User).filter_by(email="analyst@example.com").one()
        user.theme, user.timezone = "sepia", "Gone/Away"
        db.flush()
        assert user_settings.stored(db, user.id) == ("auto", None)


def _find(node, component_id: str):
    """Find a component in a serialized Dash layout by its id."""
    if isinstance(node, dict):
        props = node.get("props", {})
        if props.get("id") == component_id:
            return props
        for value in props.values() if "props" in node else node.values():
            found = _find(value, component_id)
            if found is not None:
                return found
    elif isinstance(node, list):
        for item in node:
            found = _find(item, component_id)
            if found is not None:
                return found
    return None


def test_the_shell_renders_the_users_theme_and_zone(app, client, auth: AuthActions) -> None:
    auth.create()
    auth.login()
    client.post("/api/settings", json={"theme": "dark", "timezone": "Asia/Kathmandu"})
    layout = client.get("/_dash-layout").json
    values = _find(layout, "user-display")
    assert values["data-theme"] == "dark"
    assert values["data-timezone"] == "Asia/Kathmandu"
    assert values["data-signed-in"] == "true"
    assert _find(layout, "settings-theme")["value"] == "dark"
    zone = _find(layout, "settings-timezone")
    assert zone["value"] == "Asia/Kathmandu"
    names = [option["value"] for option in zone["options"]]
    assert names[0] == "" and "Asia/Kathmandu" in names and "UTC" in names
    assert _find(layout, "nav-settings-open") is not None


def test_a_user_without_settings_gets_auto_and_the_browsers_zone(client, auth) -> None:
    auth.create()
    auth.login()
    values = _find(client.get("/_dash-layout").json, "user-display")
    assert values["data-theme"] == "auto"
    assert values["data-timezone"] == ""


def test_store_day_buckets_start_at_local_midnight_in_the_users_zone(app) -> None:
    # Kathmandu is UTC+5:45: its midnight is 18:15 UTC, a boundary no whole-hour zone shares.
    zone = ZoneInfo("Asia/Kathmandu")
    now = datetime(2026, 3, 2, 0, 30, tzinfo=zone).astimezone(UTC)
    seed(app, spans=1500, now=now)  # one call a minute over the 25 hours before `now`
    store = get_services(app.server).store
    window = analytics.Filters(start=now - timedelta(days=3), end=now)
    series = analytics.time_series(store, window, timezone="Asia/Kathmandu", size=timedelta(days=1))
    starts = sorted({p.bucket for p in series.points})
    assert [s.astimezone(zone) for s in starts] == [
        datetime(2026, 2, 28, tzinfo=zone),
        datetime(2026, 3, 1, tzinfo=zone),
        datetime(2026, 3, 2, tzinfo=zone),
    ]
    # Each call counts in the local day it happened on.
    times = [now - timedelta(minutes=5 + i) for i in range(1500)]
    per_day = Counter(t.astimezone(zone).date() for t in times)
    counted: Counter[date] = Counter()
    for point in series.points:
        counted[point.bucket.astimezone(zone).date()] += point.metrics.count
    assert counted == per_day
