"""The facts store: URLs, transports, parameters, migrations, deduplication, deletion, time zones.

Every test gets its own database in one chdb engine shared by the whole test process (chdb opens
one data directory per process). With TEST_CLICKHOUSE_URL set (clickhouse://user:pass@host:8123)
the store tests run against that server as well.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.clickhouse_http import serve_in_thread
from settings import Settings, SettingsError
from store import analytics
from store.facts import (
    FactStore,
    SpanAnnotationRow,
    SpanRow,
    TraceAnnotationRow,
    open_store,
)
from store.migrate import applied_versions, migrate
from store.migrations import MIGRATIONS
from store.transport import (
    ChdbTransport,
    HttpTransport,
    StoreError,
    encode_param,
    json_rows,
)
from store.url import StoreUrlError, parse_store_url

# The session's one chdb directory (see conftest), re-exported for tests/test_store_analytics.py.
from . import conftest

chdb_dir = conftest.chdb_dir

SERVER_ENV = "TEST_CLICKHOUSE_URL"
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# Fixtures (tests/test_store_analytics.py imports them) ----------------------------------------


@pytest.fixture(scope="session")
def chdb_http_url(chdb_dir: Path) -> Iterator[str]:
    """Serve the shared chdb engine over ClickHouse's HTTP interface on loopback."""
    server, base = serve_in_thread(chdb_dir)
    yield f"{base}/analytics"
    server.shutdown()
    server.server_close()


def _backends() -> list[str]:
    """Run on chdb and on chdb over HTTP always, and on a ClickHouse server when one is given."""
    return ["chdb", "http", "server"] if os.environ.get(SERVER_ENV) else ["chdb", "http"]


@pytest.fixture(params=_backends())
def store_url(request: pytest.FixtureRequest, chdb_dir: Path) -> str:
    """The URL of the store under test."""
    if request.param == "chdb":
        return f"chdb://{chdb_dir}"
    if request.param == "http":
        url: str = request.getfixturevalue("chdb_http_url")
        return url
    return os.environ[SERVER_ENV]


def fresh_store(url: str, **kwargs: Any) -> FactStore:
    """Open a migrated store in a database of its own."""
    return open_store(url, database=f"test_{uuid.uuid4().hex[:12]}", **kwargs)


@pytest.fixture
def store(store_url: str) -> Iterator[FactStore]:
    """A migrated store in a database of its own, dropped afterwards."""
    opened = fresh_store(store_url)
    yield opened
    opened.drop()
    opened.close()


def span(index: int, **changes: Any) -> SpanRow:
    """Return a span row with plausible facts."""
    values: dict[str, Any] = {
        "span_id": f"span-{index:06d}",
        "trace_id": f"trace-{index // 3:06d}",
        "project": "support",
        "prompt_id": f"prompt-{index % 2}",
        "template_hash": f"hash-{index % 2}",
        "prompt_version": f"v{index % 3 + 1}",
        "model": ("gpt-4o", "claude")[index % 2],
        "start_time": T0 + timedelta(minutes=7 * index),
        "latency_ms": 100.0 + (index * 37) % 900,
        "prompt_tokens": 100 + index,
        "completion_tokens": 20 + index % 7,
        "total_tokens": 120 + index + index % 7,
        "status": "ERROR" if index % 9 == 0 else "OK",
        "cost": 0.001 * (index % 5 + 1),
    }
    values.update(changes)
    return SpanRow(**values)


def annotation(row: SpanRow, name: str, score: float | None, **changes: Any) -> SpanAnnotationRow:
    """Return an annotation of a span, carrying the span's slicing facts."""
    values: dict[str, Any] = {
        "annotation_id": f"{row.span_id}-{name}",
        "span_id": row.span_id,
        "trace_id": row.trace_id,
        "project": row.project,
        "name": name,
        "annotator_kind": "LLM",
        "label": None if score is None else ("good" if score >= 0.5 else "bad"),
        "score": score,
        "updated_at": row.start_time + timedelta(minutes=1),
        "is_deleted": False,
        "span_start_time": row.start_time,
        "prompt_id": row.prompt_id,
        "template_hash": row.template_hash,
        "prompt_version": row.prompt_version,
        "model": row.model,
        "span_status": row.status,
    }
    values.update(changes)
    return SpanAnnotationRow(**values)


def sample_facts(count: int = 60) -> tuple[list[SpanRow], list[SpanAnnotationRow]]:
    """Spans with some unknown tokens and costs, and two evaluators' annotations."""
    spans = [
        span(
            i,
            total_tokens=None if i % 10 == 3 else 120 + i,
            prompt_tokens=None if i % 10 == 3 else 100 + i,
            cost=None if i % 4 == 1 else 0.001 * (i % 5 + 1),
        )
        for i in range(count)
    ]
    notes = [annotation(s, "correctness", (i % 10) / 10) for i, s in enumerate(spans) if i % 3]
    notes += [annotation(s, "helpfulness", float(1 + i % 5)) for i, s in enumerate(spans[::2])]
    return spans, notes


def same(a: Any, b: Any, rel: float = 1e-9) -> bool:
    """Compare results exactly, except floats, which engine threads may sum in another order."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    if dataclasses.is_dataclass(a) and not isinstance(a, type) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and same(dataclasses.astuple(a), dataclasses.astuple(b), rel)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def everything(store: FactStore) -> dict[str, Any]:
    """Every aggregate the store offers for the whole data, as comparable plain data."""
    window = analytics.Filters(project="support", start=T0, end=T0 + timedelta(days=2))
    return {
        "redraw": analytics.redraw(store, window),
        "kpis": analytics.kpis(store, analytics.Filters()),
        "by_model": analytics.breakdown(store, window, "model"),
        "series": analytics.time_series(store, window, "model"),
        "scores": analytics.score_summary(store, window),
        "trend": analytics.evaluation_trend(store, window),
        "traces": analytics.traces_page(store, window, limit=1000),
        "spans": analytics.spans_page(store, window, limit=1000),
        "trace_scores": analytics.trace_score_summary(store),
    }


# STORE_URL ------------------------------------------------------------------------------------


def test_store_url_defaults_to_an_embedded_store_under_instance() -> None:
    settings_ = Settings.from_env({})
    parsed = parse_store_url(settings_.store_url)
    assert parsed.kind == "chdb" and parsed.database == "analytics"
    assert parsed.path.endswith("/instance/clickhouse")
    assert "store_url" not in repr(settings_)  # it may hold a password


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("chdb:///srv/ch?database=facts", ("chdb", "/srv/ch", "facts", "", 0, False)),
        ("chdb://relative/dir", ("chdb", "relative/dir", "analytics", "", 0, False)),
        ("clickhouse://u:p%40ss@db:8123/facts", ("http", "", "facts", "db", 8123, False)),
        ("clickhouses://db.example.com", ("http", "", "analytics", "db.example.com", 8443, True)),
        ("clickhouse://db", ("http", "", "analytics", "db", 8123, False)),
    ],
)
def test_store_urls_parse(raw: str, expected: tuple[Any, ...]) -> None:
    parsed = parse_store_url(raw)
    got = (parsed.kind, parsed.path, parsed.database, parsed.host, parsed.port, parsed.secure)
    assert got == expected


def test_store_url_keeps_the_password_out_of_repr() -> None:
    parsed = parse_store_url("clickhouse://reader:s3cret%2F@db:8123/facts")
    assert (parsed.username, parsed.password) == ("reader", "s3cret/")
    assert "s3cret" not in repr(parsed)


@pytest.mark.parametrize(
    "bad",
    [
        "mysql://db/x",
        "chdb://",
        "chdb:///x?database=1bad",
        "chdb:///x?max_threads=2",
        "clickhouse://db/bad-name",
        "clickhouse://db:notaport/x",
        "clickhouse:///nohost",
        "clickhouse://db/x?database=y",
        "/srv/clickhouse",
    ],
)
def test_bad_store_urls_fail_naming_the_variable(bad: str) -> None:
    with pytest.raises(StoreUrlError):
        parse_store_url(bad)
    with pytest.raises(SettingsError, match=r"^STORE_URL="):
        Settings.from_env({"STORE_URL": bad})


# Parameters -----------------------------------------------------------------------------------

# Hostile text: quotes, backslashes, escapes, NUL and control characters, SQL, braces, Unicode.
HOSTILE = st.lists(
    st.one_of(
        st.sampled_from(["'", '"', "\\", "`", "\n", "\r", "\t", "\0", "{", "}", ";", "--", "\\N"]),
        # Every code point that is text: lone surrogates cannot be UTF-8 (refused, tested below).
        st.characters(codec="utf-8"),
    ),
    max_size=30,
).map("".join)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HOSTILE)
def test_hostile_strings_come_back_unchanged_as_parameters(store: FactStore, value: str) -> None:
    result = store.transport.query(
        "SELECT {v:String} AS v, length({v:String}) AS n, {a:Array(String)} AS a",
        {"v": value, "a": [value, "x", value]},
    )
    assert result.rows == [(value, len(value.encode()), [value, "x", value])]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HOSTILE)
def test_hostile_filter_values_match_only_themselves(store: FactStore, value: str) -> None:
    project = f"p-{uuid.uuid4().hex}-{value}"
    store.write_spans([span(1, span_id=f"s-{uuid.uuid4().hex}", project=project, model=value)])
    matched = analytics.kpis(store, analytics.Filters(project=project, model=value))
    assert matched.metrics.count == 1
    assert analytics.kpis(store, analytics.Filters(project=project + "'")).metrics.count == 0
    page = analytics.spans_page(store, analytics.Filters(project=project))
    assert page.rows[0][2] == project and page.rows[0][6] == value


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    number=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    real=st.floats(allow_nan=False, allow_infinity=False),
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
def test_numbers_and_times_round_trip_as_parameters(
    store: FactStore, number: int, real: float, moment: datetime
) -> None:
    result = store.transport.query(
        "SELECT {i:Int64} AS i, {f:Float64} AS f, {t:DateTime64(6, 'UTC')} AS t,"
        " {n:Nullable(String)} AS n",
        {"i": number, "f": real, "t": moment, "n": None},
    )
    assert result.rows == [(number, real, moment, None)]


def test_parameter_encoding_refuses_what_it_cannot_say() -> None:
    assert encode_param(True) == "1" and encode_param(date(2026, 1, 2)) == "2026-01-02"
    assert encode_param({"b", "a"}) == "['a','b']"
    for bad in (float("nan"), float("inf"), object()):
        with pytest.raises(StoreError):
            encode_param(bad)
    with pytest.raises(StoreError, match="NaN"):
        json_rows(["x"], [(float("nan"),)])
    for where in (lambda: encode_param("a\ud800"), lambda: json_rows(["x"], [("\udfff",)])):
        with pytest.raises(StoreError, match="Unicode"):
            where()


def test_http_transport_sends_the_same_parameter_text_as_chdb() -> None:
    """clickhouse-connect passes our rendered text through untouched, as param_<name>."""
    from clickhouse_connect.driver.binding import bind_query

    from store.transport import _http_params

    values = {"v": "a'b\\c\nd\t\0", "a": ["x'y", "z\\"], "t": T0}
    query, params = bind_query(
        "SELECT {v:String}, {a:Array(String)}, {t:DateTime64(6)}", _http_params(values)
    )
    assert params == {f"param_{k}": encode_param(v) for k, v in values.items()}
    assert "a'b" not in str(query)


class _FakeClient:
    """Stands in for clickhouse-connect's client: records calls, answers with Arrow tables."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.database = ""

    def query_arrow(self, sql: str, parameters: Any = None, use_strings: bool = True) -> Any:
        import pyarrow as pa

        self.calls.append(("query", sql, {k: str(v) for k, v in (parameters or {}).items()}))
        return pa.table({"x": [1, 2]})

    def command(self, sql: str, parameters: Any = None) -> None:
        self.calls.append(("command", sql))

    def raw_insert(self, table: str, column_names: Any, insert_block: bytes, fmt: str) -> None:
        self.calls.append(("insert", table, tuple(column_names), insert_block, fmt))

    def close(self) -> None:
        self.calls.append(("close",))


def test_http_transport_speaks_clickhouse_connect() -> None:
    client = _FakeClient()
    transport = HttpTransport(parse_store_url("clickhouse://h/facts"), client=client)
    assert client.database == "facts"
    assert client.calls[0][2] == {"name": "facts"}
    assert transport.query("SELECT {p:String}", {"p": "it's"}).rows == [(1,), (2,)]
    assert client.calls[-1] == ("query", "SELECT {p:String}", {"p": "it's"})
    assert transport.insert("llm_spans", ("a", "b"), [(1, T0), (2, None), (3, "x")], 2) == 3
    inserts = [c for c in client.calls if c[0] == "insert"]
    assert [c[3] for c in inserts] == [
        json_rows(("a", "b"), [(1, T0), (2, None)]),
        json_rows(("a", "b"), [(3, "x")]),
    ]
    assert all(c[4] == "JSONCompactEachRow" for c in inserts)
    with pytest.raises(StoreError):
        transport.insert("llm_spans; DROP", ("a",), [(1,)])


# chdb -----------------------------------------------------------------------------------------


def test_chdb_opens_one_data_directory_per_process(chdb_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="one data directory per process"):
        ChdbTransport(tmp_path / "other", "analytics")


def test_a_second_process_cannot_open_the_same_chdb_directory(
    store: FactStore, chdb_dir: Path
) -> None:
    if not isinstance(store.transport, ChdbTransport):
        pytest.skip("chdb only")
    code = (
        "import sys; from store.transport import ChdbTransport, StoreError\n"
        "try:\n    ChdbTransport(sys.argv[1], 'analytics')\n"
        "except StoreError as e:\n    print(e)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(chdb_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    ).stdout
    assert "one process at a time" in output


def test_threads_query_at_once(store: FactStore) -> None:
    store.write_spans([span(i) for i in range(30)])
    failures: list[str] = []

    def work(worker: int) -> None:
        for round_ in range(20):
            result = store.transport.query(
                "SELECT {w:UInt32} AS w, count() FROM llm_spans FINAL"
                " WHERE latency_ms > {r:UInt32}",
                {"w": worker, "r": round_},
            )
            if result.rows != [(worker, 30)]:
                failures.append(repr(result.rows))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_stream_and_queries_interleave(store: FactStore) -> None:
    store.write_spans([span(i) for i in range(50)])
    stream = store.transport.stream("SELECT span_id FROM llm_spans ORDER BY span_id", batch_rows=10)
    first = next(stream)
    assert store.transport.query("SELECT count() FROM llm_spans").rows == [(50,)]
    rest = [row for batch in stream for row in batch.rows]
    assert len(first.rows) + len(rest) == 50
    stopped = store.transport.stream("SELECT number FROM numbers(10000000)", batch_rows=1000)
    next(stopped)
    stopped.close()  # cancels the query
    assert store.transport.query("SELECT 1").rows == [(1,)]


def test_both_transports_read_the_same_numbers(chdb_dir: Path, chdb_http_url: str) -> None:
    spans, notes = sample_facts(200)
    embedded = fresh_store(f"chdb://{chdb_dir}")
    try:
        embedded.write_spans(spans)
        embedded.write_span_annotations(notes)
        over_http = open_store(chdb_http_url, database=embedded.database)
        try:
            assert isinstance(over_http.transport, HttpTransport)
            assert same(everything(over_http), everything(embedded))
            exported = [
                r for _c, rows in analytics.iter_spans(over_http, analytics.Filters()) for r in rows
            ]
            assert sorted(exported) == sorted(
                r for _c, rows in analytics.iter_spans(embedded, analytics.Filters()) for r in rows
            )
        finally:
            over_http.close()
    finally:
        embedded.drop()
        embedded.close()


def test_each_aggregate_gives_engine_memory_back_once(store: FactStore, monkeypatch) -> None:
    store.write_spans([span(i) for i in range(10)])
    calls: list[int] = []
    monkeypatch.setattr(store.transport, "release_memory", lambda: calls.append(1))
    # Two KPIs and a series inside: released once, when the outermost aggregate ends.
    analytics.period_stats(store, timedelta(days=1), T0 + timedelta(days=1))
    assert calls == [1]
    # A redraw also gives it back between its reads of the spans (by key, by bucket and key,
    # the overall quantiles), so that each starts from the engine's base.
    analytics.redraw(store, analytics.Filters())
    assert calls == [1] * 5


def _resident_mb() -> float:
    """Return this process's resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_chdb_gives_freed_query_memory_back_to_the_os(chdb_dir: Path) -> None:
    transport = ChdbTransport(chdb_dir, "default")
    try:
        # About 160 MB of state, freed when the query ends but kept by the engine's allocator.
        transport.query("SELECT length(groupArray(number)) FROM numbers(20000000)")
        held = _resident_mb()
        transport.release_memory()
        assert _resident_mb() < held - 50
    finally:
        transport.close()


def test_errors_are_typed_and_say_why(store: FactStore) -> None:
    with pytest.raises(StoreError, match=r"UNKNOWN_TABLE|does not exist"):
        store.transport.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match="values for"):
        store.transport.insert("llm_spans", ("span_id", "trace_id"), [("only-one",)])


# Migrations -----------------------------------------------------------------------------------


def test_migrations_are_recorded_and_rerun_harmlessly(store: FactStore) -> None:
    assert applied_versions(store) == {m.version for m in MIGRATIONS}
    assert migrate(store) == []
    # A crash between a migration's statements and its version row: they simply run again.
    store.transport.command("TRUNCATE TABLE schema_migrations")
    store.write_spans([span(1)])
    assert migrate(store) == [m.version for m in MIGRATIONS]
    assert analytics.kpis(store, analytics.Filters()).metrics.count == 1


def test_concurrent_migrations_leave_one_version_row(store_url: str) -> None:
    target = fresh_store(store_url, migrate=False)
    try:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                migrate(target)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        rows = target.transport.query("SELECT version FROM schema_migrations FINAL").rows
        assert sorted(rows) == [(m.version,) for m in MIGRATIONS]
        tables = {r[0] for r in target.transport.query("SHOW TABLES").rows}
        assert {"llm_spans", "span_annotations", "trace_annotations"} <= tables
    finally:
        target.drop()
        target.close()


def test_every_time_column_carries_its_zone(store: FactStore) -> None:
    rows = store.transport.query(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase()"
        " AND type LIKE '%DateTime%'"
    ).rows
    # Slices start on whole quarter hours: seconds are enough, and the zone is there too.
    zoned = {"DateTime64(6, 'UTC')", "DateTime('UTC')"}
    bare = [
        t.removeprefix("Nullable(").removesuffix(")") if t.startswith("Nullable(") else t
        for _table, _name, t in rows
    ]
    assert rows and all(t in zoned for t in bare)


def test_python_m_store_migrate(chdb_dir: Path, tmp_path: Path) -> None:
    """`python -m store.migrate` runs; in this process's engine, since chdb allows one."""
    from store.migrate import main

    database = f"test_{uuid.uuid4().hex[:12]}"
    assert main(["--url", f"chdb://{chdb_dir}?database={database}"]) == 0
    with open_store(f"chdb://{chdb_dir}", database=database, migrate=False) as opened:
        assert applied_versions(opened) == {m.version for m in MIGRATIONS}
        opened.drop()


# Deduplication and deletion -------------------------------------------------------------------


def test_unknown_tokens_and_costs_stay_null(store: FactStore) -> None:
    store.write_spans(
        [span(1, total_tokens=None, prompt_tokens=None, completion_tokens=None, cost=None)]
    )
    row = store.transport.query(
        "SELECT total_tokens, prompt_tokens, completion_tokens, cost FROM llm_spans"
    ).rows
    assert row == [(None, None, None, None)]
    metrics = analytics.kpis(store, analytics.Filters()).metrics
    assert (metrics.tokens, metrics.tokens_mean, metrics.tokens_unknown) == (None, None, 1)
    assert (metrics.cost, metrics.cost_mean, metrics.cost_unknown) == (None, None, 1)


def test_rereading_and_two_replicas_never_count_twice(store: FactStore) -> None:
    spans, notes = sample_facts()
    traces = [
        TraceAnnotationRow(
            f"t-{i}",
            f"trace-{i:06d}",
            "support",
            "resolved",
            "HUMAN",
            None,
            1.0 * (i % 2),
            T0,
            False,
        )
        for i in range(5)
    ]
    store.write_spans(spans, synced_at=T0)
    store.write_span_annotations(notes, synced_at=T0)
    store.write_trace_annotations(traces, synced_at=T0)
    before = everything(store)
    assert before["kpis"].metrics.count == len(spans)
    # The same pages read again, then two replicas writing them at once with their own clocks.
    store.write_spans(spans, synced_at=T0 + timedelta(seconds=5))
    store.write_span_annotations(notes, synced_at=T0 + timedelta(seconds=5))
    writers = [
        threading.Thread(
            target=lambda at=at: (
                store.write_spans(spans, synced_at=at),
                store.write_span_annotations(notes, synced_at=at),
                store.write_trace_annotations(traces, synced_at=at),
            )
        )
        for at in (T0 + timedelta(seconds=10), T0 + timedelta(seconds=11))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    raw = store.transport.query("SELECT count() FROM llm_spans").rows[0][0]
    assert raw > len(spans)  # the duplicates are really there, unmerged
    assert same(everything(store), before)
    store.optimize()
    assert store.transport.query("SELECT count() FROM llm_spans").rows == [(len(spans),)]
    assert same(everything(store), before)


def test_deleted_annotations_leave_every_aggregate(store: FactStore, store_url: str) -> None:
    spans, notes = sample_facts()
    store.write_spans(spans)
    store.write_span_annotations(notes, synced_at=T0)
    gone = [n for n in notes if n.name == "correctness"]
    kept = [n for n in notes if n.name != "correctness"]
    deleted = [dataclasses.replace(n, is_deleted=True, score=None, label=None) for n in gone]
    store.write_span_annotations(deleted, synced_at=T0 + timedelta(minutes=1))
    after = everything(store)
    reference = fresh_store_like(store_url, spans, kept)
    try:
        assert same(after, everything(reference))
        names = {s.name for s in after["kpis"].scores}
        assert names == {"helpfulness"}
        store.optimize()
        assert same(everything(store), after)
    finally:
        reference.drop()
        reference.close()


def fresh_store_like(url: str, spans: list[SpanRow], notes: list[SpanAnnotationRow]) -> FactStore:
    """Open another database of the same store holding exactly these facts."""
    other = fresh_store(url)
    other.write_spans(spans)
    other.write_span_annotations(notes)
    return other


def test_settle_merges_closed_days_into_one_part(store: FactStore) -> None:
    spans, _notes = sample_facts()
    for _ in range(3):
        store.write_spans(spans)
    before = everything(store)
    assert store.settle(before=T0 + timedelta(days=3)) >= 1
    parts = store.transport.query(
        "SELECT partition_id, count() FROM system.parts WHERE database = currentDatabase()"
        " AND table = 'llm_spans' AND active GROUP BY partition_id"
    ).rows
    assert parts and all(count == 1 for _partition, count in parts)
    assert same(everything(store), before)


def test_watermark_moves_with_new_facts(store: FactStore) -> None:
    assert store.watermark() is None
    store.write_spans([span(1)], synced_at=T0)
    assert store.watermark() == T0
    store.write_span_annotations([annotation(span(1), "x", 1.0)], synced_at=T0 + timedelta(1))
    assert store.watermark() == T0 + timedelta(1)


# Time zones -----------------------------------------------------------------------------------


def test_a_server_in_another_time_zone_changes_nothing(store: FactStore, store_url: str) -> None:
    spans, notes = sample_facts()
    store.write_spans(spans)
    store.write_span_annotations(notes)
    expected = everything(store)
    kolkata = open_store(
        store_url, database=store.database, settings={"session_timezone": "Asia/Kolkata"}
    )
    try:
        assert kolkata.transport.query("SELECT timezone()").rows == [("Asia/Kolkata",)]
        assert same(everything(kolkata), expected)
        # Written through the Kolkata session, read through the UTC one: the same instants.
        kolkata.write_spans([span(999, start_time=T0 + timedelta(hours=30))])
        row = store.transport.query(
            "SELECT start_time FROM llm_spans WHERE span_id = {id:String}", {"id": "span-000999"}
        ).rows
        assert row == [(T0 + timedelta(hours=30),)]
    finally:
        kolkata.close()


def test_day_buckets_start_at_local_midnight(store: FactStore) -> None:
    # New York moves its clocks on 2024-03-10: local midnight is 05:00 UTC before, 04:00 after.
    times = [datetime(2024, 3, d, h, tzinfo=UTC) for d in (9, 10, 11, 12) for h in (3, 6, 20)]
    store.write_spans([span(i, start_time=t) for i, t in enumerate(times)])
    window = analytics.Filters(
        start=datetime(2024, 3, 1, tzinfo=UTC), end=datetime(2024, 3, 31, tzinfo=UTC)
    )
    series = analytics.time_series(
        store, window, timezone="America/New_York", size=timedelta(days=1)
    )
    starts = sorted({p.bucket for p in series.points})
    assert starts[:3] == [
        datetime(2024, 3, 8, 5, tzinfo=UTC),
        datetime(2024, 3, 9, 5, tzinfo=UTC),
        datetime(2024, 3, 10, 5, tzinfo=UTC),
    ]
    assert starts[3] == datetime(2024, 3, 11, 4, tzinfo=UTC)
    assert sum(p.metrics.count for p in series.points) == len(times)
    utc = analytics.time_series(store, window, size=timedelta(days=1))
    assert {p.bucket.hour for p in utc.points} == {0}
    with pytest.raises(StoreError, match="time zone"):
        analytics.time_series(store, window, timezone="Mars/Olympus")


# Pages ----------------------------------------------------------------------------------------


def test_pages_never_return_more_than_a_page(store: FactStore) -> None:
    store.write_spans([span(i) for i in range(1, 1201)])
    everything_ = analytics.Filters()
    huge = analytics.spans_page(store, everything_, limit=10**9)
    assert huge.limit == analytics.MAX_PAGE_ROWS and len(huge.rows) == analytics.MAX_PAGE_ROWS
    assert huge.total == 1200
    seen: list[str] = []
    for offset in range(0, 1200, 250):
        page = analytics.spans_page(store, everything_, sort="latency_ms", offset=offset, limit=250)
        assert len(page.rows) <= 250
        seen += [row[0] for row in page.rows]
    assert len(seen) == len(set(seen)) == 1200
    latencies = [row[8] for row in analytics.spans_page(store, everything_, sort="latency_ms").rows]
    assert latencies == sorted(latencies, reverse=True)
    traces = analytics.traces_page(store, everything_, limit=7, offset=3)
    assert len(traces.rows) == 7 and traces.total == 401
    # The page title's count, without grouping the traces, says the same.
    assert analytics.trace_count(store, everything_) == 401
    with pytest.raises(StoreError, match="cannot sort"):
        analytics.spans_page(store, everything_, sort="latency_ms; DROP TABLE llm_spans")


def test_traces_page_sums_a_trace_and_marks_errors(store: FactStore) -> None:
    store.write_spans([span(i, total_tokens=None if i == 1 else 10) for i in range(3)])
    page = analytics.traces_page(store, analytics.Filters())
    row = dict(zip(page.columns, page.rows[0], strict=True))
    assert row["llm_calls"] == 3 and row["status"] == "ERROR"
    assert row["total_tokens"] == 20 and row["tokens_unknown"] == 1
    assert row["start_time"] == T0 and row["prompt_version"] == "v1"


def test_export_streams_every_row_once_in_bounded_batches(store: FactStore) -> None:
    store.write_spans([span(i) for i in range(2500)])
    store.write_spans([span(i) for i in range(100)])  # duplicates: exported once
    batches = list(analytics.iter_spans(store, analytics.Filters(), batch_rows=1000))
    assert all(len(rows) <= 1000 for _columns, rows in batches)
    ids = [row[0] for _columns, rows in batches for row in rows]
    assert sorted(ids) == [f"span-{i:06d}" for i in range(2500)]
    assert batches[0][0] == analytics.EXPORT_COLUMNS
    early = analytics.iter_spans(store, analytics.Filters(), batch_rows=100)
    next(early)
    early.close()
    assert store.transport.query("SELECT 1").rows == [(1,)]


def test_filter_options_list_distinct_values(store: FactStore) -> None:
    store.write_spans([span(i) for i in range(6)] + [span(7, project="other", model=None)])
    options = analytics.filter_options(store)
    assert options.projects == ("other", "support")
    assert options.models == ("claude", "gpt-4o")
    assert options.versions == ("v1", "v2", "v3")
    only = analytics.filter_options(store, analytics.PromptSet(ids=("prompt-0",)))
    assert only.versions == ("v1", "v2", "v3") and only.prompt_ids == ("prompt-0", "prompt-1")


def test_json_rows_are_what_clickhouse_reads() -> None:
    encoded = json_rows(("a", "t"), [("x\"'\n", T0), (None, datetime(2026, 1, 1))])
    lines = [json.loads(line) for line in encoded.decode().splitlines()]
    assert lines == [["x\"'\n", "2026-03-02 12:00:00.000000"], [None, "2026-01-01 00:00:00.000000"]]
    with pytest.raises(StoreError, match="cannot store"):
        json_rows(("a",), [(object(),)])


def test_the_newest_traces_from_the_newest_spans_equal_grouping_every_trace(
    store: FactStore,
) -> None:
    # 400 traces of 3 spans; trace 0 also has 60 late spans, so its spans crowd the newest ones
    # while it began first: the short path must notice and fall back, never show a wrong page.
    late = [
        span(10_000 + i, trace_id="trace-000000", start_time=T0 + timedelta(days=30, minutes=i))
        for i in range(60)
    ]
    store.write_spans([span(i) for i in range(1200)] + late)
    filters = analytics.Filters()
    where, params = analytics._where(filters)
    order = "start_time DESC, trace_id DESC"
    for offset, limit in ((0, 10), (0, 100), (37, 5), (390, 10)):
        page = analytics.traces_page(store, filters, offset=offset, limit=limit)
        full = analytics._grouped_traces(store, where, params, order, offset, limit)
        assert page.rows == full.rows, (offset, limit)
        assert page.total == 400
    # With the late spans the newest 20 spans are all trace 0's: undecidable, so it groups all.
    assert analytics._newest_traces(store, where, params, 0, 1) is None
    # Without them, the short path decides on its own and agrees with grouping.
    narrow = analytics.Filters(end=T0 + timedelta(days=20))
    where, params = analytics._where(narrow)
    fast = analytics._newest_traces(store, where, params, 0, 10)
    assert fast is not None
    assert fast.rows == analytics._grouped_traces(store, where, params, order, 0, 10).rows


def test_a_long_parameter_list_reaches_the_engine(store: FactStore) -> None:
    # clickhouse-connect sends parameters this long as a form body, not in the URL.
    store.write_spans([span(i) for i in range(3)])
    wanted = [f"span-{i:06d}" for i in range(5000)]
    found = store.transport.query(
        "SELECT count() FROM llm_spans FINAL WHERE span_id IN {ids:Array(String)}",
        {"ids": wanted},
    )
    assert found.rows[0][0] == 3
