"""Typed, frozen configuration read once from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from store.url import parse_store_url

PROJECT_DIR = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = f"sqlite:///{PROJECT_DIR / 'instance' / 'dashboard.db'}"
# A default lets a laptop start with no set-up, but only with DEV_MODE on: `check_secret` refuses it
# everywhere else, since anyone can read it here and sign cookies and tokens with it.
DEV_SECRET_KEY = "dev-only-secret-key-change-me-0123456789"  # noqa: S105


class SettingsError(ValueError):
    """Raised when an environment variable holds an invalid value."""


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected one of true/false, 1/0, yes/no, on/off")


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be 0 or a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:6006")
    return raw.strip().rstrip("/")


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg2://")):
        raise ValueError("must start with sqlite:// or postgresql+psycopg2://")
    # SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3; we ship psycopg2.
    return value.replace("postgresql://", "postgresql+psycopg2://", 1)


def _redis_url(raw: str) -> str:
    value = raw.strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must be empty or a redis:// URL")
    return value


def _store_url(raw: str) -> str:
    parse_store_url(raw)  # raises StoreUrlError, a ValueError that says what is wrong
    return raw.strip()


def _secret_key(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters (generate one with `make secret`)")
    return raw


def _log_level(raw: str) -> str:
    value = raw.strip().upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return value


def _ui_auth(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"inject", "phoenix-login"}:
        raise ValueError("must be inject or phoenix-login")
    return value


def _text(raw: str) -> str:
    return raw.strip()


def _attribute_name(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*", value):
        raise ValueError("must be empty or a dotted span attribute such as metadata.prompt_name")
    return value


def _smtp_url(raw: str) -> str:
    value = raw.strip()
    if value and urlsplit(value).scheme not in {"smtp", "smtps"}:
        raise ValueError("must be empty or smtp://[user:password@]host[:port] (smtps:// for TLS)")
    if value and not urlsplit(value).hostname:
        raise ValueError("names no host; use smtp://host:port")
    return value


def _public_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if value:
        return _http_url(value)
    return value


def _env(name: str, parse: Callable[[str], Any], help_text: str, *, secret: bool = False) -> Any:
    """Declare a field read from the environment variable `name`."""
    # A secret stays out of repr(), hence out of tracebacks and logs that print the settings.
    return field(repr=not secret, metadata={"env": name, "parse": parse, "help": help_text})


@dataclass(frozen=True)
class Settings:
    """Every knob of the dashboard, with a default and a check."""

    secret_key: str = _env(
        "SECRET_KEY", _secret_key, "Signs session cookies and tokens.", secret=True
    )
    database_url: str = _env(
        "DATABASE_URL", _database_url, "SQLAlchemy URL of our database.", secret=True
    )
    redis_url: str = _env(
        "REDIS_URL", _redis_url, "Redis for cache and locks; empty = in-process.", secret=True
    )
    store_url: str = _env(
        "STORE_URL", _store_url, "Facts store: chdb://<dir> or clickhouse(s)://.", secret=True
    )
    phoenix_enabled: bool = _env(
        "PHOENIX_ENABLED", _parse_bool, "Turns the Phoenix integration on."
    )
    phoenix_url: str = _env("PHOENIX_URL", _http_url, "Base URL of the Phoenix server.")
    phoenix_api_key: str = _env(
        "PHOENIX_API_KEY", _text, "Phoenix API key used for reads.", secret=True
    )
    phoenix_write_api_key: str = _env(
        "PHOENIX_WRITE_API_KEY",
        _text,
        "Phoenix MEMBER key used only for writes by members+.",
        secret=True,
    )
    phoenix_ui_auth: str = _env(
        "PHOENIX_UI_AUTH", _ui_auth, "How /phoenix/ signs in: inject (our keys) or phoenix-login."
    )
    proxy_max_body_bytes: int = _env(
        "PROXY_MAX_BODY_BYTES", _positive_int, "Largest request body the proxy forwards."
    )
    token_ttl_s: int = _env(
        "TOKEN_TTL_S", _positive_int, "Lifetime of /api/token tokens; caps any token's age."
    )
    callback_max_body_bytes: int = _env(
        "CALLBACK_MAX_BODY_BYTES", _positive_int, "Largest Dash callback body accepted (413 above)."
    )
    phoenix_connect_timeout_s: float = _env(
        "PHOENIX_CONNECT_TIMEOUT_S", _positive_float, "Connect timeout toward Phoenix."
    )
    phoenix_read_timeout_s: float = _env(
        "PHOENIX_READ_TIMEOUT_S", _positive_float, "Read timeout toward Phoenix."
    )
    session_lifetime_minutes: int = _env(
        "SESSION_LIFETIME_MINUTES", _positive_int, "Idle time before a login expires."
    )
    session_cookie_secure: bool = _env(
        "SESSION_COOKIE_SECURE", _parse_bool, "Send the session cookie over HTTPS only."
    )
    trusted_proxies: int = _env(
        "TRUSTED_PROXIES",
        _non_negative_int,
        "Reverse proxies in front whose X-Forwarded-For/-Proto/-Host to believe; 0 = none.",
    )
    login_max_failures: int = _env(
        "LOGIN_MAX_FAILURES", _positive_int, "Failed logins per account or address per window."
    )
    login_window_s: int = _env(
        "LOGIN_WINDOW_S", _positive_int, "Length of the login rate-limit window."
    )
    poll_interval_s: int = _env("POLL_INTERVAL_S", _positive_int, "How often pages refresh.")
    sync_worker: bool = _env(
        "SYNC_WORKER", _parse_bool, "Run the Phoenix sync inside the web process."
    )
    prompt_name_attribute: str = _env(
        "PROMPT_NAME_ATTRIBUTE",
        _attribute_name,
        "Span attribute that names prompts when the registry and OpenInference's prompt.id do "
        "not (for example metadata.prompt_name); empty: identify by template.",
    )
    smtp_url: str = _env(
        "SMTP_URL",
        _smtp_url,
        "SMTP server for monitors' email: smtp://[user:password@]host[:port] (STARTTLS when the "
        "server offers it), or smtps:// for TLS from the start. Empty: email channels cannot "
        "send.",
        secret=True,
    )
    smtp_from: str = _env("SMTP_FROM", _text, "Sender address of monitors' email.")
    public_url: str = _env(
        "PUBLIC_URL",
        _public_url,
        "The dashboard's address as users open it (https://dash.example.com); links in "
        "notifications start with it. Empty: http://HOST:PORT.",
    )
    sync_interval_s: int = _env(
        "SYNC_INTERVAL_S", _positive_int, "Seconds between two reads of new Phoenix data."
    )
    log_level: str = _env("LOG_LEVEL", _log_level, "Python log level.")
    host: str = _env("HOST", _text, "Bind address of `python app.py`.")
    port: int = _env("PORT", _positive_int, "Port of `python app.py`.")
    dev_mode: bool = _env(
        "DEV_MODE",
        _parse_bool,
        "Development switch: allows the built-in SECRET_KEY. Never set it in production.",
    )
    testing: bool = False

    @classmethod
    def defaults(cls) -> dict[str, str]:
        """Return the default raw value of every variable."""
        return {
            "SECRET_KEY": DEV_SECRET_KEY,
            "DATABASE_URL": DEFAULT_DATABASE_URL,
            "REDIS_URL": "",
            "STORE_URL": f"chdb://{PROJECT_DIR / 'instance' / 'clickhouse'}",
            "PHOENIX_ENABLED": "true",
            "PHOENIX_URL": "http://127.0.0.1:6006",
            "PHOENIX_API_KEY": "",
            "PHOENIX_WRITE_API_KEY": "",
            "PHOENIX_UI_AUTH": "inject",
            "PROXY_MAX_BODY_BYTES": str(10 * 1024 * 1024),
            "TOKEN_TTL_S": "3600",
            "CALLBACK_MAX_BODY_BYTES": str(1024 * 1024),
            "PHOENIX_CONNECT_TIMEOUT_S": "3",
            "PHOENIX_READ_TIMEOUT_S": "15",
            "SESSION_LIFETIME_MINUTES": "720",
            "SESSION_COOKIE_SECURE": "false",
            "TRUSTED_PROXIES": "0",
            "LOGIN_MAX_FAILURES": "5",
            "LOGIN_WINDOW_S": "300",
            "POLL_INTERVAL_S": "5",
            "SYNC_WORKER": "true",
            "SYNC_INTERVAL_S": "5",
            "PROMPT_NAME_ATTRIBUTE": "",
            "SMTP_URL": "",
            "SMTP_FROM": "prompt-analytics@localhost",
            "PUBLIC_URL": "",
            "LOG_LEVEL": "INFO",
            "HOST": "127.0.0.1",
            "PORT": "8050",
            "DEV_MODE": "false",
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment, failing with the variable's name."""
        env = os.environ if environ is None else environ
        defaults = cls.defaults()
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            if name is None:
                continue
            raw = env.get(name, defaults[name])
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise SettingsError(f"{name}={raw!r} is invalid: {exc}") from None
        return cls(**values)

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """Return (variable, default, meaning) for the README's configuration table."""
        defaults = cls.defaults()
        return [
            (f.metadata["env"], defaults[f.metadata["env"]], f.metadata["help"])
            for f in fields(cls)
            if "env" in f.metadata
        ]

    def with_overrides(self, **changes: Any) -> Settings:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)

    @property
    def uses_dev_secret(self) -> bool:
        """Tell whether the insecure built-in secret key is in use."""
        return self.secret_key == DEV_SECRET_KEY

    def check_secret(self) -> None:
        """Refuse the public built-in SECRET_KEY unless the development switch is on."""
        if self.uses_dev_secret and not self.dev_mode:
            raise SettingsError(
                "SECRET_KEY is unset or is the built-in development key, which anyone can read "
                "in the source. Set SECRET_KEY to a random value of at least 32 characters "
                "(`make secret` prints one), or set DEV_MODE=true on a development machine."
            )
