"""Phoenix connection status, shared by every tab through the cache."""

from __future__ import annotations

from services.cache import cache
from services.container import get_services
from services.phoenix import PhoenixError, PhoenixStatus

STATUS_TTL_S = 5


def phoenix_status() -> PhoenixStatus | None:
    """Return Phoenix's status, or None when the integration is off."""
    services = get_services()
    if services.phoenix is None:
        return None
    key = f"phoenix-status:{services.phoenix.base_url}"
    cached = cache.get(key)
    if isinstance(cached, PhoenixStatus):
        return cached
    # One probe per TTL however many tabs poll, so Phoenix sees one client.
    status = services.phoenix.status()
    cache.set(key, status, timeout=STATUS_TTL_S)
    return status


PROJECT_IDS_TTL_S = 300


def phoenix_project_path(project: str | None) -> str:
    """Return the Phoenix UI path of a project by name, or of the project list."""
    services = get_services()
    if services.phoenix is None or not project:
        return "/projects"
    key = f"phoenix-project-ids:{services.phoenix.base_url}"
    ids = cache.get(key)
    if not isinstance(ids, dict) or project not in ids:
        try:
            ids = {p["name"]: p["id"] for p in services.phoenix.projects()}
        except PhoenixError:
            # The pane then shows the project list; the banner already says Phoenix is down.
            return "/projects"
        cache.set(key, ids, timeout=PROJECT_IDS_TTL_S)
    return f"/projects/{ids[project]}" if project in ids else "/projects"
