"""Infrastructure faults: Redis down and back, PostgreSQL restarted in the middle of a sync."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa

from app import create_app
from db.migrate import upgrade
from db.models import PromptTrace
from devtools.demo_data import send_traces
from devtools.phoenix import PhoenixServer
from devtools.services import (
    DB_NAME,
    HOST,
    Postgres,
    Redis,
    ServiceError,
    restart_postgres,
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
)
from services import cache as cache_module
from services.container import get_services
from services.sync_worker import SyncLock, SyncWorker

from .conftest import AuthActions
from .test_sync import our_counts, phoenix_truth

pytestmark = pytest.mark.integration


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Redis]:
    """A Redis server of this test's own, which it may stop and start again."""
    try:
        server = start_redis(tmp_path)
    except ServiceError as exc:
        pytest.skip(f"redis-server unavailable: {exc}")
    yield server
    stop_redis(server)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A PostgreSQL cluster of this test's own, which it may restart."""
    try:
        server = start_postgres(tmp_path)
    except ServiceError as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield server
    stop_postgres(server)


def redis_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Return what was logged about Redis."""
    return [r.getMessage() for r in caplog.records if "Redis at" in r.getMessage()]


def test_redis_down_keeps_the_app_serving_and_says_so(
    settings, own_redis: Redis, tmp_path: Path, caplog, monkeypatch
) -> None:
    # Try Redis again on every call, so that its return shows without waiting.
    monkeypatch.setattr(cache_module, "RETRY_AFTER_S", 0.0)
    caplog.set_level(logging.WARNING, logger="services.cache")
    url = f"redis://{HOST}:{own_redis.port}/0"
    app = create_app(settings.with_overrides(redis_url=url))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    assert auth.login().status_code == 302
    assert client.get("/").status_code == 200
    assert redis_warnings(caplog) == []

    stop_redis(own_redis, remove=False)
    # Pages, a fresh login, failed-login counting and the proxy token cache all keep working.
    assert client.get("/").status_code == 200
    assert client.get("/traces?range=7d").status_code == 200
    assert AuthActions(app, app.server.test_client()).login().status_code == 302
    guesser = AuthActions(app, app.server.test_client())
    for _ in range(settings.login_max_failures):
        guesser.login(password="wrong-password")
    assert "Too many failed sign-in attempts" in guesser.login().text
    warnings = redis_warnings(caplog)
    assert len(warnings) == 1, warnings  # once per outage, not once per call
    assert "is unreachable" in warnings[0] and "in-process cache" in warnings[0]

    restarted = start_redis(tmp_path, port=own_redis.port)
    try:
        cache_module.cache.set("after-outage", 1)
        assert redis.Redis.from_url(url).exists("dashboard:after-outage") == 1
        assert "answers again" in redis_warnings(caplog)[-1]
    finally:
        stop_redis(restarted)


def test_sync_lock_falls_back_to_the_process_lock_while_redis_is_down(
    own_redis: Redis, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="services.cache")
    url = f"redis://{HOST}:{own_redis.port}/0"
    first, second = SyncLock(url, name="fallback-test"), SyncLock(url, name="fallback-test")
    assert first.acquire()
    stop_redis(own_redis, remove=False)
    # The process lock still admits one holder at a time within this process.
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    assert any("sync lock is this process's own" in m for m in redis_warnings(caplog))


def test_postgresql_restarted_during_sync_loses_and_duplicates_nothing(
    settings, scratch_phoenix: PhoenixServer, own_postgres: Postgres, caplog
) -> None:
    url = f"postgresql+psycopg2://postgres@{HOST}:{own_postgres.port}/{DB_NAME}"
    upgrade(url)
    app = create_app(
        settings.with_overrides(
            phoenix_enabled=True, phoenix_url=scratch_phoenix.url, database_url=url
        )
    )
    services = get_services(app.server)
    assert services.sync is not None
    caplog.set_level(logging.WARNING, logger="services.sync")
    caplog.set_level(logging.WARNING, logger="services.sync_worker")
    worker = SyncWorker(services.sync, SyncLock(""), interval_s=0.02, max_backoff_s=0.2)
    worker.start()
    try:
        for round_ in range(3):
            send_traces(scratch_phoenix.url, count=10, seed=960 + round_)
            # Restart while the worker ticks every 20 ms: some tick's transaction is cut.
            threading.Event().wait(0.1)
            restart_postgres(own_postgres)
    finally:
        worker.stop()
    services.sync.tick()
    try:
        assert our_counts(services) == phoenix_truth(scratch_phoenix.url)
        # Each span once as the pages read it (FINAL), whatever was replayed.
        spans = services.store.transport.query(
            "SELECT count(), uniqExact(span_id) FROM llm_spans FINAL"
        ).rows[0]
        assert spans[0] == spans[1]
        with services.sessions() as db:
            # And each linked trace once.
            traces = db.scalar(sa.select(sa.func.count(sa.distinct(PromptTrace.phoenix_trace_id))))
            assert traces == db.scalar(sa.select(sa.func.count()).select_from(PromptTrace))
    finally:
        services.engine.dispose()
        services.store.close()
    failures = [r.getMessage() for r in caplog.records if "on the database" in r.getMessage()]
    assert failures, "no tick met the restart; the test proved nothing"
    assert not [r for r in caplog.records if r.exc_info], "a database fault logged a traceback"
