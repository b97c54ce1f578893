"""Each user's display settings: theme (auto, light, dark) and time zone.

`display_zone` is what every page buckets and shows times in: the URL's tz=, else the signed-in
user's setting, else UTC.
"""

from __future__ import annotations

from flask import has_request_context
from flask_login import current_user

from services.filters import FilterState


def display_zone(state: FilterState) -> str:
    """Return the time zone a page shows: the URL's, else the user's setting, else UTC."""
    if state.tz:
        return state.tz
    if has_request_context() and current_user.is_authenticated:
        zone = getattr(current_user, "timezone", None)
        if zone:
            return str(zone)
    return "UTC"
