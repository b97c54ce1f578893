"""The monitors' JSON API: /api/monitors and /api/channels, with the caller's role.

Anyone signed in reads; members and admins write monitors; only admins add or remove channels
(a channel makes the server send requests to an address of the caller's choosing). Scripts
authenticate with a bearer token from /api/token; a browser's session works too (same-origin
only, services/security.py). Every body is parsed by services/monitor_rules.py: a bad field gets
a 400 that names it.

    GET    /api/monitors                  every monitor with its state and last result
    POST   /api/monitors                  create (JSON: services/monitor_rules.MonitorSpec)
    GET    /api/monitors/<id>             one monitor, with its recent changes of state
    PUT    /api/monitors/<id>             replace its definition
    DELETE /api/monitors/<id>
    POST   /api/monitors/<id>/pause       and /resume
    GET    /api/channels                  channels, secrets never included
    POST   /api/channels                  {name, kind: webhook|slack|email, target, secret}
    DELETE /api/channels/<id>
    POST   /api/channels/<id>/test        queue a test notification
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_login import current_user
from sqlalchemy.orm import Session

from services import monitors
from services.container import get_services
from services.monitor_rules import MonitorError

bp = Blueprint("monitor_api", __name__)
WRITERS = frozenset({"member", "admin"})


def _answer(status: int, body: Any) -> Response:
    """Answer JSON with a status."""
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _error(status: int, error: str, message: str) -> Response:
    """Answer a refusal the caller can read."""
    return _answer(status, {"error": error, "message": message})


def _body() -> dict[str, Any] | Response:
    """Parse the JSON body, or answer why it cannot be."""
    if request.mimetype != "application/json":
        return _error(415, "unsupported_media_type", "Send the body as application/json.")
    try:
        body = json.loads(request.get_data(as_text=True) or "null")
    except ValueError as exc:
        return _error(400, "bad_json", f"The body is not JSON: {exc}.")
    if not isinstance(body, dict):
        return _error(400, "bad_request", "The body must be a JSON object.")
    return body


def _write(
    action: Callable[[Session, str], Any], status: int = 200, *, admin: bool = False
) -> Response:
    """Run a change as the caller, if their role may write; map errors to clear answers."""
    if admin and current_user.role != "admin":
        # A channel makes this server send requests to an address of the caller's choosing.
        return _error(403, "forbidden", "Only admins add or remove notification channels.")
    if current_user.role not in WRITERS:
        return _error(403, "forbidden", "Viewers read monitors; members and admins change them.")
    try:
        with get_services().sessions.begin() as db:
            result = action(db, current_user.email)
    except MonitorError as exc:
        return _error(400, "invalid_monitor", str(exc))
    except monitors.NotFound as exc:
        return _error(404, "not_found", str(exc))
    return _answer(status, result)


@bp.get("/api/monitors")
def list_monitors() -> Response:
    """List every monitor."""
    with get_services().sessions() as db:
        return _answer(200, [m.as_json() for m in monitors.list_monitors(db)])


@bp.post("/api/monitors")
def create_monitor() -> Response:
    """Create a monitor."""
    body = _body()
    if isinstance(body, Response):
        return body
    return _write(lambda db, actor: monitors.create(db, actor, body).as_json(), 201)


@bp.get("/api/monitors/<int:monitor_id>")
def get_monitor(monitor_id: int) -> Response:
    """Return one monitor and its recent changes of state."""
    with get_services().sessions() as db:
        try:
            view = monitors.get(db, monitor_id)
        except monitors.NotFound as exc:
            return _error(404, "not_found", str(exc))
        history = [
            {
                "at": e.at.isoformat(),
                "from": e.from_state,
                "to": e.to_state,
                "result": json.loads(e.result),
            }
            for e in monitors.events(db, monitor_id)
        ]
    return _answer(200, {**view.as_json(), "events": history})


@bp.put("/api/monitors/<int:monitor_id>")
def update_monitor(monitor_id: int) -> Response:
    """Replace a monitor's definition."""
    body = _body()
    if isinstance(body, Response):
        return body
    return _write(lambda db, _actor: monitors.update_monitor(db, monitor_id, body).as_json())


@bp.delete("/api/monitors/<int:monitor_id>")
def delete_monitor(monitor_id: int) -> Response:
    """Delete a monitor."""

    def delete(db: Session, _actor: str) -> dict[str, Any]:
        monitors.delete_monitor(db, monitor_id)
        return {"deleted": monitor_id}

    return _write(delete)


@bp.post("/api/monitors/<int:monitor_id>/pause")
def pause_monitor(monitor_id: int) -> Response:
    """Pause a monitor."""
    return _write(lambda db, _actor: monitors.set_paused(db, monitor_id, True).as_json())


@bp.post("/api/monitors/<int:monitor_id>/resume")
def resume_monitor(monitor_id: int) -> Response:
    """Resume a paused monitor."""
    return _write(lambda db, _actor: monitors.set_paused(db, monitor_id, False).as_json())


@bp.get("/api/channels")
def list_channels() -> Response:
    """List channels, without their secrets."""
    with get_services().sessions() as db:
        return _answer(200, [c.as_json() for c in monitors.list_channels(db)])


@bp.post("/api/channels")
def create_channel() -> Response:
    """Create a channel."""
    body = _body()
    if isinstance(body, Response):
        return body
    settings = get_services().settings
    return _write(
        lambda db, actor: monitors.create_channel(db, actor, body, settings).as_json(),
        201,
        admin=True,
    )


@bp.delete("/api/channels/<int:channel_id>")
def delete_channel(channel_id: int) -> Response:
    """Delete a channel."""

    def delete(db: Session, _actor: str) -> dict[str, Any]:
        monitors.delete_channel(db, channel_id)
        return {"deleted": channel_id}

    return _write(delete, admin=True)


@bp.post("/api/channels/<int:channel_id>/test")
def test_channel(channel_id: int) -> Response:
    """Queue a test notification to a channel."""
    settings = get_services().settings

    def test(db: Session, actor: str) -> dict[str, Any]:
        monitors.send_test(db, channel_id, settings, actor)
        return {"queued": channel_id}

    return _write(test, 202)
