"""Shared fixtures: settings, app, client, auth, the store, and real Phoenix, PostgreSQL, Redis.

The facts store: chdb opens one data directory per process, so the whole session shares one
directory (`chdb_dir`) and each test gets a database of its own in it, dropped afterwards. Tests
that serve the app from several processes use the ClickHouse HTTP server that `make test`
starts (TEST_CLICKHOUSE_URL, `server_store_url`), again with a database per test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from app import create_app
from db.migrate import upgrade
from db.session import make_engine
from devtools.demo import ensure_demo_user
from devtools.demo_data import DemoSummary, load_demo
from devtools.phoenix import (
    DEFAULT_VENV,
    PhoenixServer,
    RoleKeys,
    create_role_keys,
    free_port,
    start_phoenix,
)
from devtools.signin import csrf_token
from services import users
from services.container import get_services
from settings import Settings
from store.facts import open_store
from store.transport import ChdbTransport

# The fault-injecting stand-in for Phoenix and its fixtures (tests/test_faults.py).
from .faults import fault_server_for, faulty_phoenix  # noqa: F401

IN_CI = bool(os.environ.get("CI"))
TEST_SECRET = "test-secret-key-0123456789-abcdefghijklmnop"
PASSWORD = "correct horse battery"
# Phoenix builds its UI links under the prefix our reverse proxy serves it at.
PHOENIX_UI_ENV = {"PHOENIX_HOST_ROOT_PATH": "/phoenix"}
# Debian's Chromium; dash[testing] reads this when it starts the browser.
os.environ.setdefault("DASH_TEST_CHROMEPATH", "/usr/bin/chromium")
# `make test` runs the modules on several pytest-xdist workers (gw0, gw1, ...); each gets its own
# Phoenix, chdb directory and databases, and these per-worker slots of what is shared by number.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def pytest_configure(config: pytest.Config) -> None:
    """Give each worker its own range of ports for the apps dash_duo serves (58050 + 100 n)."""
    from dash.testing.application_runners import BaseDashRunner

    BaseDashRunner._next_port = 58050 + 100 * WORKER


def require_service(name: str, value: str | None) -> str:
    """Return a service URL; skip without it, except in CI where it is mandatory."""
    if value:
        return value
    if IN_CI:
        pytest.fail(f"{name} is required when CI is set; run the suite through `make test`")
    pytest.skip(f"{name} is not set; `make test` starts it")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrate one SQLite file per session; tests copy it instead of migrating again."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


# chdb opens one data directory per process, and a test module that imports this fixture gets
# its own copy of it (tests/test_store.py does): the directory and its engine live here, once.
_ENGINE: dict[str, Any] = {}


@pytest.fixture(scope="session")
def chdb_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chdb data directory of this test process, its engine kept open throughout."""
    if "path" not in _ENGINE:
        _ENGINE["path"] = tmp_path_factory.mktemp("clickhouse")
        keeper = ChdbTransport(_ENGINE["path"], "default")  # no engine restart per test
        # Shut the engine down with the session: left to interpreter exit, it complains.
        request.addfinalizer(keeper.close)
    path: Path = _ENGINE["path"]
    return path


def unique_database() -> str:
    """Return a fresh store database name for one test."""
    return f"t_{uuid.uuid4().hex}"


def drop_store(url: str) -> None:
    """Delete a test's store database, keeping the session's disk small."""
    with open_store(url, migrate=False) as store:
        store.drop()


@pytest.fixture
def store_db_url(chdb_dir: Path) -> Iterator[str]:
    """A STORE_URL of the test's own database in the session's chdb directory."""
    url = f"chdb://{chdb_dir}?database={unique_database()}"
    yield url
    drop_store(url)


@pytest.fixture
def server_store_url() -> Iterator[str]:
    """A STORE_URL on the ClickHouse HTTP server, for apps served by several processes."""
    base = require_service("TEST_CLICKHOUSE_URL", os.environ.get("TEST_CLICKHOUSE_URL"))
    url = f"{base.rstrip('/')}/{unique_database()}"
    yield url
    drop_store(url)


@pytest.fixture
def settings(tmp_path: Path, migrated_sqlite_template: Path, store_db_url: str) -> Settings:
    """Settings for one test: a fresh migrated SQLite file and store, no Phoenix, no Redis."""
    db_path = tmp_path / "dashboard.db"
    shutil.copy(migrated_sqlite_template, db_path)
    return Settings.from_env(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{db_path}",
            "STORE_URL": store_db_url,
            "PHOENIX_ENABLED": "false",
            "SYNC_WORKER": "false",
            "LOG_LEVEL": "WARNING",
        }
    ).with_overrides(testing=True)


def close_app(server: Any) -> None:
    """Release what an app holds: its database connections and its store."""
    services = get_services(server)
    services.engine.dispose()
    services.store.close()


@pytest.fixture
def app(settings: Settings):
    """The Dash app built by the factory."""
    dash_app = create_app(settings)
    yield dash_app
    close_app(dash_app.server)


@pytest.fixture
def client(app) -> FlaskClient:
    """A Flask test client for the app's server."""
    return app.server.test_client()


class AuthActions:
    """Create users and log in and out through the real login form."""

    def __init__(self, app, client: FlaskClient) -> None:
        self._app = app
        self._client = client

    def create(
        self, email: str = "analyst@example.com", role: str = "member", password: str = PASSWORD
    ) -> str:
        """Create a user and return the email."""
        with get_services(self._app.server).sessions.begin() as db:
            users.create_user(db, email, password, role=role, display_name="Ana Lyst")
        return email

    def login(
        self,
        email: str = "analyst@example.com",
        password: str = PASSWORD,
        next_url: str = "/",
        **environ: str,
    ):
        """Load the login form, then post it with its CSRF token, as a browser would."""
        form = self._client.get("/login", environ_base=environ).get_data(as_text=True)
        return self._client.post(
            "/login",
            data={
                "email": email,
                "password": password,
                "next": next_url,
                "csrf_token": csrf_token(form),
            },
            environ_base=environ,
        )

    def logout(self):
        """Sign out through the confirmation form."""
        form = self._client.get("/logout").get_data(as_text=True)
        return self._client.post("/logout", data={"csrf_token": csrf_token(form)})


@pytest.fixture
def auth(app, client: FlaskClient) -> AuthActions:
    """Helpers to create users and log in."""
    return AuthActions(app, client)


@pytest.fixture(scope="session")
def phoenix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A real Phoenix on free loopback ports for the whole session."""
    if not (DEFAULT_VENV / "bin" / "phoenix").exists() and not os.environ.get("PHOENIX_BIN"):
        require_service("Phoenix (.phoenix-venv)", None)
    server = start_phoenix(tmp_path_factory.mktemp("phoenix"), extra_env=PHOENIX_UI_ENV)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scratch_phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A second Phoenix that tests may add spans to, stop and restart (on the same ports)."""
    if not (DEFAULT_VENV / "bin" / "phoenix").exists() and not os.environ.get("PHOENIX_BIN"):
        require_service("Phoenix (.phoenix-venv)", None)
    server = start_phoenix(
        tmp_path_factory.mktemp("scratch-phoenix"),
        port=free_port(),
        grpc_port=free_port(),
        extra_env=PHOENIX_UI_ENV,
    )
    load_demo(server.url, llm_spans=60, seed=3)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def demo_loaded(phoenix_server: PhoenixServer) -> DemoSummary:
    """Load a small, seeded slice of the demo data into the session's Phoenix once."""
    return load_demo(phoenix_server.url, llm_spans=90, seed=11)


@dataclass(frozen=True)
class AuthPhoenix:
    """A real Phoenix with auth on, and the dashboard's keys for it."""

    server: PhoenixServer
    admin_secret: str
    keys: RoleKeys


@pytest.fixture
def synced_app(settings: Settings, phoenix_server: PhoenixServer, demo_loaded: DemoSummary):
    """An app whose sync has read the session's demo slice, with the demo login, no worker."""
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    ensure_demo_user(app)
    return app


@pytest.fixture(scope="session")
def phoenix_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthPhoenix]:
    """A real Phoenix with auth on; VIEWER and MEMBER keys made through its admin secret."""
    if not (DEFAULT_VENV / "bin" / "phoenix").exists() and not os.environ.get("PHOENIX_BIN"):
        require_service("Phoenix (.phoenix-venv)", None)
    admin_secret = f"admin-{secrets.token_hex(16)}-x9"
    server = start_phoenix(
        tmp_path_factory.mktemp("phoenix-auth"),
        extra_env={
            **PHOENIX_UI_ENV,
            "PHOENIX_ENABLE_AUTH": "true",
            "PHOENIX_SECRET": f"secret-{secrets.token_hex(16)}-y7",
            "PHOENIX_ADMIN_SECRET": admin_secret,
        },
    )
    try:
        yield AuthPhoenix(server, admin_secret, create_role_keys(server.url, admin_secret))
    finally:
        server.stop()


@pytest.fixture
def phoenix_settings(settings: Settings, phoenix_server: PhoenixServer) -> Settings:
    """Settings that point at the real test Phoenix."""
    return settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the throwaway server."""
    admin_url = require_service("TEST_PG_ADMIN_URL", os.environ.get("TEST_PG_ADMIN_URL"))
    base_url = require_service("TEST_PG_URL", os.environ.get("TEST_PG_URL"))
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        sa.make_url(admin_url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield str(sa.make_url(base_url).set(database=name).render_as_string(hide_password=False))
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The throwaway Redis, emptied after the test: database 1 + n of worker n."""
    import redis

    base = require_service("TEST_REDIS_URL", os.environ.get("TEST_REDIS_URL"))
    url = urlsplit(base)._replace(path=f"/{WORKER + 1}").geturl()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def sqlite_engine(settings: Settings) -> Iterator[sa.Engine]:
    """An engine on the test's migrated SQLite file."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def pytest_setup_options():
    """Start Chromium headless, without the background traffic this closed network refuses."""
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in (
        "--headless=new",
        "--window-size=1440,900",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ):
        options.add_argument(flag)
    return options


@dataclass(frozen=True)
class SyncedApp:
    """An app synced once from a real Phoenix, and a logged-in analyst's client."""

    app: Any
    client: FlaskClient
    services: Any


@contextlib.contextmanager
def synced_phoenix_app(
    phoenix_url: str,
    migrated_template: Path,
    chdb_dir: Path,
    workdir: Path,
    **env: str,
) -> Iterator[SyncedApp]:
    """Build an app on a fresh database and store, sync it once from Phoenix, log in.

    The sync runs as the worker's first tick does (a tick, then settling parts and building the
    closed days' slices); the background worker stays off. `env` adds settings (PROMPT_NAME_...).
    """
    from services.sync_worker import SyncLock, SyncWorker

    db_path = workdir / "dashboard.db"
    shutil.copy(migrated_template, db_path)
    store_url = f"chdb://{chdb_dir}?database={unique_database()}"
    settings = Settings.from_env(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{db_path}",
            "STORE_URL": store_url,
            "PHOENIX_ENABLED": "false",
            "SYNC_WORKER": "false",
            "LOG_LEVEL": "WARNING",
            **env,
        }
    ).with_overrides(testing=True, phoenix_enabled=True, phoenix_url=phoenix_url)
    app = create_app(settings)
    try:
        services = get_services(app.server)
        assert services.sync is not None
        services.sync.tick()
        SyncWorker(services.sync, SyncLock(""), interval_s=1.0).maintain()
        client = app.server.test_client()
        auth = AuthActions(app, client)
        auth.create()
        assert auth.login().status_code == 302
        yield SyncedApp(app, client, services)
    finally:
        close_app(app.server)
        drop_store(store_url)
