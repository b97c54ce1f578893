"""Phoenix connection status, shared by every tab through the cache."""

from __future__ import annotations

from services.cache import cache
from services.container import get_services
from services.phoenix import PhoenixStatus

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
