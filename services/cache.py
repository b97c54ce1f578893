"""Shared cache: Redis when REDIS_URL is set and answering, else in-process memory."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeAlias, TypeVar
from urllib.parse import urlsplit

from flask import Flask
from flask_caching import Cache
from flask_caching.backends.base import BaseCache
from flask_caching.backends.rediscache import RedisCache
from flask_caching.backends.simplecache import SimpleCache
from redis.exceptions import RedisError

from settings import Settings

log = logging.getLogger(__name__)
cache = Cache()
T = TypeVar("T")
Timeout: TypeAlias = int | timedelta | None
DEFAULT_TIMEOUT_S = 300
LOCAL_THRESHOLD = 10_000
# A down Redis is tried again this often; in between, calls go straight to process memory.
RETRY_AFTER_S = 5.0
# Short socket timeouts: a Redis that hangs must cost a request milliseconds, not seconds.
REDIS_SOCKET_TIMEOUT_S = 0.5


def redis_label(url: str) -> str:
    """Name a Redis URL by host, port and database, never by its password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


class RedisOutage:
    """Track whether Redis answers, and log each change once rather than on every call."""

    def __init__(self, label: str, fallback: str) -> None:
        self.label = label
        self.fallback = fallback
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    def should_try(self) -> bool:
        """Return whether Redis is worth a call now."""
        return not self._down or time.monotonic() >= self._down_until

    def failed(self, exc: Exception) -> None:
        """Note a failed call; log the first one of an outage."""
        with self._lock:
            first = not self._down
            self._down = True
            self._down_until = time.monotonic() + RETRY_AFTER_S
        if first:
            log.warning(
                "Redis at %s is unreachable (%s): %s until it answers again",
                self.label,
                type(exc).__name__,
                self.fallback,
            )

    def answered(self) -> None:
        """Note a successful call; log the end of an outage."""
        if self._down:
            with self._lock:
                was_down, self._down = self._down, False
            if was_down:
                log.warning("Redis at %s answers again: %s no longer", self.label, self.fallback)


class ExpiringCounters:
    """Count in process memory, each counter expiring a fixed time after its first count."""

    def __init__(self) -> None:
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def count(self, key: str, ttl_s: int) -> int:
        """Add one to `key` and return the new count."""
        now = time.monotonic()
        with self._lock:
            if len(self._counts) > LOCAL_THRESHOLD:
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            expires, value = self._counts.get(key, (0.0, 0))
            if expires <= now:
                expires, value = now + ttl_s, 0
            self._counts[key] = (expires, value + 1)
            return value + 1

    def uncount(self, key: str) -> None:
        """Take one back from a live counter, keeping its expiry."""
        with self._lock:
            expires, value = self._counts.get(key, (0.0, 0))
            if expires > time.monotonic() and value > 0:
                self._counts[key] = (expires, value - 1)

    def get(self, key: str) -> int:
        """Return the live count of `key`, 0 once it expired."""
        expires, value = self._counts.get(key, (0.0, 0))
        return value if expires > time.monotonic() else 0

    def delete(self, key: str) -> None:
        """Forget `key`."""
        with self._lock:
            self._counts.pop(key, None)


class ResilientCache(BaseCache):
    """Use Redis while it answers and process memory while it does not, so pages keep serving."""

    def __init__(self, primary: BaseCache | None, local: BaseCache, outage: RedisOutage) -> None:
        super().__init__(default_timeout=DEFAULT_TIMEOUT_S)
        self.primary = primary
        self.local = local
        self.outage = outage
        self.counters = ExpiringCounters()

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> ResilientCache:
        """Build from flask-caching's configuration (its CACHE_TYPE hook)."""
        local = SimpleCache(threshold=LOCAL_THRESHOLD, default_timeout=kwargs["default_timeout"])
        url = config.get("CACHE_REDIS_URL") or ""
        outage = RedisOutage(redis_label(url) if url else "-", "using the in-process cache")
        primary = RedisCache.factory(app, dict(config), list(args), dict(kwargs)) if url else None
        return cls(primary, local, outage)

    def _call(
        self, redis_call: Callable[[BaseCache], T], local_call: Callable[[BaseCache], T]
    ) -> T:
        if self.primary is not None and self.outage.should_try():
            try:
                result = redis_call(self.primary)
            except RedisError as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return result
        return local_call(self.local)

    def _both(self, call: Callable[[BaseCache], T]) -> T:
        return self._call(call, call)

    def get(self, key: str) -> Any:
        """Return the cached value or None."""
        return self._both(lambda c: c.get(key))

    def set(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store a value."""
        return bool(self._both(lambda c: c.set(key, value, timeout)))

    def add(self, key: str, value: Any, timeout: Timeout = None) -> bool:
        """Store a value unless the key exists."""
        return bool(self._both(lambda c: c.add(key, value, timeout)))

    def delete(self, key: str) -> bool:
        """Forget a key."""
        return bool(self._both(lambda c: c.delete(key)))

    def clear(self) -> bool:
        """Forget everything this cache holds."""
        return bool(self._both(lambda c: c.clear()))

    def count(self, key: str, ttl_s: int) -> int:
        """Add one to a counter that expires `ttl_s` after its first count; return the count."""

        def in_redis(c: BaseCache) -> int:
            # SETNX with an expiry, then INCR, which keeps that expiry.
            c.add(key, 0, timeout=ttl_s)
            return int(c.inc(key) or 0)

        return self._call(in_redis, lambda _c: self.counters.count(key, ttl_s))

    def uncount(self, key: str) -> None:
        """Take one back from a live counter, never below zero."""

        def in_redis(c: BaseCache) -> None:
            if int(c.get(key) or 0) > 0:
                c.dec(key)

        self._call(in_redis, lambda _c: self.counters.uncount(key))

    def counted(self, key: str) -> int:
        """Return a counter's current value."""
        return self._call(lambda c: int(c.get(key) or 0), lambda _c: self.counters.get(key))

    def forget_count(self, key: str) -> None:
        """Reset a counter."""
        self._call(lambda c: c.delete(key), lambda _c: self.counters.delete(key))


def shared() -> ResilientCache:
    """Return this app's cache backend."""
    backend = cache.cache
    assert isinstance(backend, ResilientCache)
    return backend


def init_app(server: Flask, settings: Settings) -> None:
    """Configure the cache for this app."""
    config: dict[str, object] = {
        "CACHE_TYPE": f"{__name__}.ResilientCache",
        "CACHE_DEFAULT_TIMEOUT": DEFAULT_TIMEOUT_S,
    }
    if settings.redis_url:
        config |= {
            "CACHE_REDIS_URL": settings.redis_url,
            "CACHE_KEY_PREFIX": "dashboard:",
            "CACHE_OPTIONS": {
                "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_S,
                "socket_timeout": REDIS_SOCKET_TIMEOUT_S,
            },
        }
    cache.init_app(server, config=config)
