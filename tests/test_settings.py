"""Settings: defaults, validation that names the variable, immutability."""

from __future__ import annotations

import dataclasses

import pytest

from settings import Settings, SettingsError


def test_defaults_serve_a_laptop() -> None:
    settings = Settings.from_env({})
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url == ""
    assert settings.phoenix_enabled is True
    assert settings.phoenix_url == "http://127.0.0.1:6006"
    assert (settings.host, settings.port) == ("127.0.0.1", 8050)
    assert settings.uses_dev_secret


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("SECRET_KEY", "short"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://redis"),
        ("PHOENIX_ENABLED", "maybe"),
        ("PHOENIX_URL", "ftp://phoenix"),
        ("PHOENIX_CONNECT_TIMEOUT_S", "-1"),
        ("PHOENIX_READ_TIMEOUT_S", "soon"),
        ("SESSION_LIFETIME_MINUTES", "0"),
        ("LOGIN_MAX_FAILURES", "many"),
        ("LOGIN_WINDOW_S", "-5"),
        ("POLL_INTERVAL_S", "1.5"),
        ("LOG_LEVEL", "LOUD"),
        ("PORT", "http"),
    ],
)
def test_bad_value_fails_with_the_variable_name(name: str, bad: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}="):
        Settings.from_env({name: bad})


def test_every_variable_is_documented_with_a_default() -> None:
    documented = {name for name, _default, _help in Settings.documented()}
    assert documented == set(Settings.defaults())
    assert all(meaning for _n, _d, meaning in Settings.documented())


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_values_are_parsed() -> None:
    settings = Settings.from_env(
        {"PHOENIX_ENABLED": "off", "PHOENIX_URL": "https://px.example.com/", "PORT": "9000"}
    )
    assert settings.phoenix_enabled is False
    assert settings.phoenix_url == "https://px.example.com"
    assert settings.port == 9000


def test_bare_postgresql_url_uses_the_shipped_driver() -> None:
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db/dash"})
    assert settings.database_url == "postgresql+psycopg2://u:p@db/dash"
