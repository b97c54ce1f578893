"""Run the sync in the background: one holder per deployment, backing off while Phoenix is down."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError

from services import monitors, notify
from services.cache import REDIS_SOCKET_TIMEOUT_S, RedisOutage, redis_label
from services.phoenix import PhoenixError
from services.sync import PromptSync, TickResult
from settings import Settings
from store import slices
from store.transport import StoreError

log = logging.getLogger(__name__)
# Closed days are merged and sliced after a tick that wrote, and at least this often.
MAINTAIN_INTERVAL_S = 60.0


class SyncLock:
    """Hold the right to sync for one deployment: in Redis when configured, else in-process.

    While Redis is down the process lock stands in, so each replica may sync on its own;
    the sync's upserts make that safe, only wasteful, until Redis answers again.
    """

    _process_lock = threading.Lock()

    def __init__(self, redis_url: str, name: str = "dashboard:sync-lock", ttl_s: int = 30):
        self._owned = False
        self._redis_lock: Any = None
        self.outage = RedisOutage(
            redis_label(redis_url) if redis_url else "-", "the sync lock is this process's own"
        )
        if redis_url:
            import redis

            client = redis.Redis.from_url(
                redis_url,
                socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
                socket_timeout=REDIS_SOCKET_TIMEOUT_S,
            )
            self._redis_lock = client.lock(name, timeout=ttl_s, blocking=False, thread_local=False)

    def acquire(self) -> bool:
        """Take the lock without waiting, or renew it if we hold it already."""
        if self._redis_lock is not None and self.outage.should_try():
            try:
                held = self._acquire_redis()
            except RedisError as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                self._release_process()
                return held
        if not self._owned:
            self._owned = self._process_lock.acquire(blocking=False)
        return self._owned

    def _acquire_redis(self) -> bool:
        """Renew the Redis lock if ours, else try to take it."""
        if self._redis_lock.owned():
            self._redis_lock.reacquire()
            return True
        return bool(self._redis_lock.acquire(blocking=False))

    def _release_process(self) -> None:
        """Give the in-process stand-in back once Redis holds the lock again."""
        if self._owned:
            self._owned = False
            self._process_lock.release()

    def release(self) -> None:
        """Give the lock up if we hold it."""
        if self._redis_lock is not None:
            try:
                if self._redis_lock.owned():
                    self._redis_lock.release()
            except RedisError as exc:
                # Its expiry frees it anyway.
                log.info("could not release the Redis sync lock: %s", type(exc).__name__)
        self._release_process()


class SyncWorker:
    """Run ticks forever, backing off while Phoenix is unreachable; then watch the monitors."""

    def __init__(
        self,
        sync: PromptSync,
        lock: SyncLock,
        interval_s: float,
        max_backoff_s: float = 60,
        settings: Settings | None = None,
    ):
        self.sync = sync
        # With settings the worker also evaluates monitors and sends their notifications.
        self.settings = settings
        self.lock = lock
        self.interval_s = interval_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.delays: list[float] = []  # the waits between ticks, for logs and tests
        self._maintained_at = float("-inf")

    def run_once(self) -> TickResult | None:
        """Tick if this process holds the deployment's lock, then keep the store's days."""
        if not self.lock.acquire():
            return None
        result = self.sync.tick()
        now = time.monotonic()
        if result.changed or now - self._maintained_at >= MAINTAIN_INTERVAL_S:
            self._maintained_at = now
            self.maintain()
            # After a tick that brought data, and once a minute: on this replica only (the lock).
            self.watch_monitors()
        if self.settings is not None:
            # Every tick: notifications whose retry is due go out without waiting a minute.
            notify.dispatch(self.sync.sessions, self.settings)
        return result

    def watch_monitors(self) -> None:
        """Evaluate every active monitor and queue the notifications its changes call for."""
        if self.settings is None:
            return
        summary = monitors.evaluate_all(self.sync.sessions, self.sync.store, self.settings)
        if summary.changed:
            log.info(
                "monitors: %d evaluated, %d changed state, %d notifications queued",
                summary.evaluated,
                summary.changed,
                summary.notifications,
            )

    def maintain(self) -> None:
        """Merge each closed day into one part, then build the slices of closed days.

        Under the sync lock, so one replica does it. Reads are right without either: merging
        makes FINAL free on a day, and slices let a redraw skip the day's rows.
        """
        store = self.sync.store
        store.settle()
        slices.refresh(store)

    def run(self) -> None:
        """Loop until stopped."""
        delay = self.interval_s
        while not self._stop.is_set():
            try:
                result = self.run_once()
                delay = self.interval_s
                if result and result.changed:
                    log.info(
                        "sync read %d spans, %d annotations", result.spans_read, result.annotations
                    )
            except PhoenixError as exc:
                self.sync.record_failure(exc)
                delay = self._backoff(delay)
                log.warning("sync failed, retrying in %.0f s: %s", delay, exc)
            except DBAPIError as exc:
                # A restarting database: a cut transaction rolls back, and a page whose facts
                # landed but whose cursor did not is read again, its writes skipping what exists.
                delay = self._backoff(delay)
                log.warning(
                    "sync failed on the database, retrying in %.0f s: %s",
                    delay,
                    str(exc.orig or exc).strip().splitlines()[0],
                )
            except StoreError as exc:
                # A ClickHouse server restarting: as with the database, a page whose facts did
                # not land keeps its cursor and is read again; its rewrite collapses on read.
                delay = self._backoff(delay)
                log.warning("sync failed on the facts store, retrying in %.0f s: %s", delay, exc)
            except Exception:  # keep the worker alive; the log has the traceback
                log.exception("sync tick crashed")
                delay = self._backoff(delay)
            self.delays.append(delay)
            self._stop.wait(delay)
        self.lock.release()

    def _backoff(self, delay: float) -> float:
        """Double the wait after a failure, between the interval and the cap."""
        return min(self.max_backoff_s, max(self.interval_s, delay * 2))

    def start(self) -> None:
        """Run in a daemon thread."""
        self.thread = threading.Thread(target=self.run, name="phoenix-sync", daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        """Ask the loop to end and wait for it."""
        self._stop.set()
        if self.thread is not None:
            self.thread.join(timeout_s)


def lock_ttl(settings: Settings) -> int:
    """Hold the lock long enough to survive a slow tick, short enough for a quick takeover."""
    return max(10, 3 * settings.sync_interval_s)


def start_worker_on_first_request(server: Flask, sync: PromptSync, settings: Settings) -> None:
    """Start this process's sync worker when it serves its first request, never in CLI runs."""
    started = threading.Lock()
    workers: list[SyncWorker] = []

    def ensure_started() -> None:
        """Start the worker once, whichever request thread comes first."""
        if workers:
            return
        with started:
            if not workers:
                worker = SyncWorker(
                    sync,
                    SyncLock(settings.redis_url, ttl_s=lock_ttl(settings)),
                    settings.sync_interval_s,
                    settings=settings,
                )
                worker.start()
                workers.append(worker)
                server.extensions["sync_worker"] = worker

    server.before_request(ensure_started)
