"""The sync's throughput against Phoenix's own span paging, and its idle tick against history."""

from __future__ import annotations

import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from bench.common import DATA_DIR, Dataset, Results, Stats, log, timed
from db.migrate import upgrade
from db.session import make_engine, make_session_factory
from services.phoenix import PhoenixClient
from services.sync import PromptSync
from store.facts import FactStore, SpanRow, open_store
from store.sync_queries import clear_facts

T = TypeVar("T")
ROUNDS = 5
IDLE_TICKS = 12
# The largest size prepared up to this one: the ratio is a throughput, so a mid size suffices.
PREFERRED = ("10k", "1k", "50k")


@contextmanager
def _fresh_sync(dataset: Dataset, template: Path) -> Iterator[PromptSync]:
    """Yield a sync of the dataset's Phoenix into a fresh, migrated, empty SQLite database."""
    path = DATA_DIR / f"sync-throughput-{dataset.name}.db"
    for leftover in path.parent.glob(f"{path.name}*"):  # the database and its WAL files
        leftover.unlink()
    shutil.copy(template, path)
    engine = make_engine(f"sqlite:///{path}")
    phoenix = PhoenixClient(dataset.phoenix.url)
    # An empty store database of its own, beside the dataset's, dropped afterwards.
    store = open_store(dataset.store_url, database=f"sync_throughput_{dataset.name}")
    clear_facts(store)
    try:
        yield PromptSync(phoenix, make_session_factory(engine), store)
    finally:
        phoenix.close()
        engine.dispose()
        store.drop()
        store.close()


def age_spans(store: FactStore, age: timedelta) -> None:
    """Make every stored span look synced `age` ago: rewritten, as ClickHouse has no UPDATE."""
    columns = [f.name for f in fields(SpanRow)]
    rows = store.transport.query(f"SELECT {', '.join(columns)} FROM llm_spans FINAL")  # noqa: S608
    store.transport.command("TRUNCATE TABLE llm_spans")
    store.write_spans((SpanRow(*row) for row in rows.rows), synced_at=datetime.now(UTC) - age)


def _clocked(action: Callable[[], T]) -> tuple[float, T]:
    """Return how long one call took, in seconds, and what it returned."""
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def _page_everything(phoenix: PhoenixClient, page_size: int) -> int:
    """Page every span of every project through REST, as a client of Phoenix would; count them."""
    count = 0
    for project in phoenix.projects():
        cursor: str | None = None
        while True:
            page = phoenix.span_page(project["name"], cursor=cursor, limit=page_size)
            count += len(page.spans)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
    return count


def sync_vs_paging(datasets: dict[str, Dataset], results: Results) -> None:
    """Time a full sync (rebuild into a fresh database) against paging the same spans."""
    size = next(s for s in PREFERRED if s in datasets)
    dataset = datasets[size]
    template = DATA_DIR / "sync-throughput-template.db"
    if not template.exists():
        upgrade(f"sqlite:///{template}")
    paging_s: list[float] = []
    sync_s: list[float] = []
    spans = llm_spans = 0
    for index in range(ROUNDS + 1):  # the first round warms both sides up and is not kept
        with _fresh_sync(dataset, template) as sync:
            # The same client and page size the sync uses, on the same spans.
            page = partial(_page_everything, sync.phoenix, sync.page_size)
            # A B, then B A, ...: drift on this shared machine hits both sides alike.
            if index % 2 == 0:
                (t_page, counted), (t_sync, tick) = _clocked(page), _clocked(sync.rebuild)
            else:
                (t_sync, tick), (t_page, counted) = _clocked(sync.rebuild), _clocked(page)
        if index == 0:
            continue
        paging_s.append(t_page)
        sync_s.append(t_sync)
        spans, llm_spans = counted, tick.llm_spans
        log.info(
            "round %d: paged %d spans in %.2f s; synced them (%d LLM) in %.2f s",
            index,
            spans,
            t_page,
            llm_spans,
            t_sync,
        )
    # Same spans on both sides, so the ratio of throughputs is the inverse ratio of times.
    ratios = [p / s for p, s in zip(paging_s, sync_s, strict=True)]
    results.add("sync_vs_phoenix_paging_ratio", Stats.of(ratios))
    results.add("sync_vs_phoenix_paging_spans", spans)
    results.add("sync_vs_phoenix_paging_llm_spans", llm_spans)
    results.add("phoenix_paging_spans_per_s", Stats.of([spans / t for t in paging_s]))
    results.add("sync_rebuild_spans_per_s", Stats.of([spans / t for t in sync_s]))
    _idle_ticks(datasets, results)


def _idle_ticks(datasets: dict[str, Dataset], results: Results) -> None:
    """Time idle ticks with the most and the least history prepared, on aged database copies."""
    if len(datasets) < 2:
        log.info("one size prepared: no idle tick comparison")
        return
    sizes = sorted(datasets, key=lambda s: datasets[s].llm_spans)
    small, large = sizes[0], sizes[-1]
    syncs: dict[str, PromptSync] = {}
    engines = []
    stores = []
    for size in (small, large):
        # Aged by an hour, as sync_suite does: nothing is hot, the steady state of an idle tick.
        source = Path(datasets[size].database_url.removeprefix("sqlite:///"))
        copy = source.with_name(f"sync-idle-copy-{size}.db")
        with sqlite3.connect(source) as src, sqlite3.connect(copy) as dst:
            src.backup(dst)
            dst.execute("UPDATE span_facts SET synced_at = datetime(synced_at, '-1 hour')")
        engines.append(engine := make_engine(f"sqlite:///{copy}"))
        # The facts live in the store: aged there too (rewritten; the facts stay the same).
        stores.append(store := open_store(datasets[size].store_url))
        age_spans(store, timedelta(hours=1))
        phoenix = PhoenixClient(datasets[size].phoenix.url)
        syncs[size] = PromptSync(phoenix, make_session_factory(engine), store)
        syncs[size].tick()  # the registry, the horizon and the minute's slice: not idle yet
    ticks: dict[str, list[float]] = {small: [], large: []}
    for index in range(2 * IDLE_TICKS):
        size = (large, small)[index % 2] if index % 4 < 2 else (small, large)[index % 2]
        ticks[size].append(timed(syncs[size].tick))
        time.sleep(0.2)
    ratios = [a / b for a, b in zip(ticks[large], ticks[small], strict=True)]
    # Not sync_suite's keys: that one ticks every 2.5 s for two minutes, at 50k against 1k.
    results.add(f"sync_idle_quick_ms_{large}", Stats.of(ticks[large]), scale=1000)
    results.add(f"sync_idle_quick_ms_{small}", Stats.of(ticks[small]), scale=1000)
    results.add(f"sync_idle_quick_ratio_{large}_vs_{small}", Stats.of(ratios))
    log.info(
        "idle tick: %s %.1f ms, %s %.1f ms (medians)",
        large,
        statistics.median(ticks[large]) * 1000,
        small,
        statistics.median(ticks[small]) * 1000,
    )
    for sync in syncs.values():
        sync.phoenix.close()
    for engine in engines:
        engine.dispose()
    for store in stores:
        store.close()
