"""Shared cache: Redis when REDIS_URL is set, else in-process."""

from __future__ import annotations

from flask import Flask
from flask_caching import Cache

from settings import Settings

cache = Cache()


def init_app(server: Flask, settings: Settings) -> None:
    """Configure the cache for this app."""
    config: dict[str, object]
    if settings.redis_url:
        config = {
            "CACHE_TYPE": "RedisCache",
            "CACHE_REDIS_URL": settings.redis_url,
            "CACHE_KEY_PREFIX": "dashboard:",
        }
    else:
        config = {"CACHE_TYPE": "SimpleCache", "CACHE_THRESHOLD": 10_000}
    cache.init_app(server, config={**config, "CACHE_DEFAULT_TIMEOUT": 300})
