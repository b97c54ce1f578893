"""Parse STORE_URL: where the facts store lives (chdb in-process, or a ClickHouse server)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_DATABASE = "analytics"
# Database names are put into DDL (CREATE DATABASE), where parameters cannot go: keep them plain.
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
SCHEMES = ("chdb", "clickhouse", "clickhouses")


class StoreUrlError(ValueError):
    """Raised when a store URL is malformed."""


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store location: an embedded chdb data path, or an HTTP(S) ClickHouse server."""

    kind: Literal["chdb", "http"]
    database: str
    path: str = ""
    host: str = ""
    port: int = 0
    secure: bool = False
    username: str = "default"
    # Kept out of repr(), hence out of logs and tracebacks.
    password: str = field(default="", repr=False)


def check_database_name(name: str) -> str:
    """Return the name if it is a plain identifier, else raise StoreUrlError."""
    if not DATABASE_NAME.fullmatch(name):
        raise StoreUrlError(
            f"database name {name!r} must be letters, digits and underscores, not starting "
            "with a digit"
        )
    return name


def _only_database_option(query: str) -> str | None:
    """Return ?database= from a URL query, refusing any other option."""
    options = parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(options) - {"database"})
    if unknown:
        raise StoreUrlError(f"unknown option(s) {', '.join(unknown)}; only ?database= is read")
    values = options.get("database")
    return values[-1] if values else None


def parse_store_url(raw: str) -> StoreUrl:
    """Parse chdb://<path>[?database=], clickhouse://u:p@host:8123/db or clickhouses://..."""
    value = raw.strip()
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise StoreUrlError(
            "must start with chdb:// (embedded, e.g. chdb:///srv/clickhouse), clickhouse:// or "
            "clickhouses:// (a server over HTTP or HTTPS)"
        )
    scheme = scheme.lower()
    if scheme == "chdb":
        # Split by hand: urlsplit would take the first path segment of a relative path as a host.
        path, _, query = rest.partition("?")
        if not path:
            raise StoreUrlError("chdb:// needs a data directory, e.g. chdb:///srv/clickhouse")
        if "#" in path:
            raise StoreUrlError("the chdb data directory must not contain '#'")
        database = _only_database_option(query) or DEFAULT_DATABASE
        return StoreUrl(kind="chdb", database=check_database_name(database), path=unquote(path))
    parts = urlsplit(value)
    if not parts.hostname:
        raise StoreUrlError(f"{scheme}:// needs a host, e.g. {scheme}://user:pass@host:8123/db")
    if parts.query or parts.fragment:
        raise StoreUrlError(f"{scheme}:// takes the database as the path, not as an option")
    try:
        port = parts.port
    except ValueError:
        raise StoreUrlError("the port must be a number from 1 to 65535") from None
    secure = scheme == "clickhouses"
    database = parts.path.strip("/") or DEFAULT_DATABASE
    return StoreUrl(
        kind="http",
        database=check_database_name(unquote(database)),
        host=parts.hostname,
        port=port or (8443 if secure else 8123),
        secure=secure,
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
    )
