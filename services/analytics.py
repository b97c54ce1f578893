"""What pages share around the facts store: the store, the sync watermark, cached results.

Every aggregate is computed by the store (store/analytics.py, store/views.py); nothing here
loads facts. A result is cached per sync watermark and filters, so tabs with the same filters
share one computation and a redraw recomputes only when new data arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Flask
from sqlalchemy.orm import Session

from db.models import SyncStatus
from services.cache import cache
from services.container import get_services
from store.analytics import Filters, bucket_size
from store.facts import FactStore

T = TypeVar("T")
CACHE_S = 3600

__all__ = ["bucket_size", "cached", "fact_store", "watermark"]


def fact_store(app: Flask | None = None) -> FactStore:
    """Return the app's facts store."""
    return get_services(app).store


def watermark(db: Session) -> int:
    """Return the sync's watermark: it moves whenever new data arrived."""
    status = db.get(SyncStatus, 1)
    return int(status.watermark) if status else 0


def cached(kind: str, filters: Filters | str, mark: int, compute: Callable[[], T]) -> T:
    """Return a cached result for these filters at this watermark, computing it once."""
    digest = filters if isinstance(filters, str) else filters.key()
    key = f"analytics:{kind}:{mark}:{digest}"
    hit = cache.get(key)
    if hit is not None:
        result: T = hit
        return result
    value = compute()
    cache.set(key, value, timeout=CACHE_S)
    return value
