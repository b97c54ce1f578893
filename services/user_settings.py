"""Each user's display settings: theme (auto, light, dark) and time zone.

`display_zone` is what every page buckets and shows times in: the URL's tz=, else the signed-in
user's setting, else UTC. assets/theme.js saves the browser's zone once for a user who has
none, so "else UTC" only covers a first page load and clients without JavaScript.

`POST /api/settings` (JSON) saves the signed-in user's own settings; JSON only, so the
same-origin rule (services/security.py) guards it and no form token is needed.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, has_request_context, jsonify, request
from flask_login import current_user
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import User
from services.container import get_services
from services.filters import FilterState, _zone_names, time_zone

THEMES = ("auto", "light", "dark")
bp = Blueprint("user_settings", __name__)


def display_zone(state: FilterState) -> str:
    """Return the time zone a page shows: the URL's, else the user's setting, else UTC."""
    if state.tz:
        return state.tz
    if has_request_context() and current_user.is_authenticated:
        zone = getattr(current_user, "timezone", None)
        if zone:
            return str(zone)
    return "UTC"


def current_theme() -> str:
    """Return the signed-in user's colour mode, or "auto" without one."""
    if has_request_context() and current_user.is_authenticated:
        theme = getattr(current_user, "theme", "auto")
        if theme in THEMES:
            return str(theme)
    return "auto"


def current_zone() -> str | None:
    """Return the signed-in user's saved zone, or None (the browser's zone then applies)."""
    if has_request_context() and current_user.is_authenticated:
        zone = getattr(current_user, "timezone", None)
        return str(zone) if zone else None
    return None


def stored(db: Session, user_id: int) -> tuple[str, str | None]:
    """Read a user's saved theme and zone; a stale value falls back to the default."""
    row = db.execute(select(User.theme, User.timezone).where(User.id == user_id)).one_or_none()
    if row is None:
        return "auto", None
    theme = row.theme if row.theme in THEMES else "auto"
    # A zone the system no longer lists (a tzdata update) must not break every page.
    zone = time_zone(row.timezone, []) if row.timezone else None
    return theme, zone


def validate(body: Any) -> tuple[dict[str, str | None], list[str]]:
    """Read the settings to change from a JSON object; say what is wrong instead."""
    if not isinstance(body, dict):
        return {}, ["The body must be a JSON object."]
    problems: list[str] = []
    changes: dict[str, str | None] = {}
    unknown = sorted(set(body) - {"theme", "timezone"})
    if unknown:
        problems.append(f"Unknown settings: {', '.join(unknown)}.")
    if "theme" in body:
        if body["theme"] in THEMES:
            changes["theme"] = body["theme"]
        else:
            problems.append(f"theme must be one of {', '.join(THEMES)}.")
    if "timezone" in body:
        zone = body["timezone"]
        if zone is None or zone == "":
            changes["timezone"] = None  # back to the browser's zone
        elif isinstance(zone, str) and len(zone) <= 64:
            checked = time_zone(zone, problems)
            if checked is not None:
                changes["timezone"] = checked
        else:
            problems.append("timezone must be an IANA time zone name such as Europe/Paris.")
    if not problems and not changes:
        problems.append("Send theme, timezone or both.")
    return changes, problems


def save(db: Session, user_id: int, changes: dict[str, str | None]) -> None:
    """Store validated settings for one user."""
    db.execute(update(User).where(User.id == user_id).values(**changes))


def _answer(status: int, body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/api/settings", methods=["POST"])
def save_settings() -> Response:
    """Save the signed-in user's own theme and time zone from a JSON body."""
    # JSON only: a form post would need the CSRF token, which this route does not check.
    if request.mimetype != "application/json":
        return _answer(415, {"error": "unsupported_media_type", "message": "Send JSON."})
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        return _answer(400, {"error": "bad_json", "message": "The body is not JSON."})
    changes, problems = validate(body)
    if problems:
        return _answer(400, {"error": "bad_request", "message": " ".join(problems)})
    with get_services().sessions.begin() as db:
        save(db, current_user.id, changes)
        theme, zone = stored(db, current_user.id)
    return _answer(200, {"theme": theme, "timezone": zone})


def zone_options() -> list[dict[str, str]]:
    """List the zones a user may pick: "browser default" first, then every IANA name."""
    # The same list time_zone() accepts.
    names = sorted(_zone_names() | {"UTC"})
    return [{"label": "Browser default", "value": ""}] + [{"label": n, "value": n} for n in names]
