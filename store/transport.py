"""Talk to ClickHouse in-process (chdb) or over HTTP (clickhouse-connect): the only difference.

Both transports take the same SQL, with server-side parameters written `{name:Type}`, and give
back the same Python values, because both read results as Arrow (ClickHouse's own encoder) and
both write rows as JSONCompactEachRow (one encoder here). Parameter values are rendered by
`encode_param`, the one place that turns a Python value into ClickHouse's parameter text.

What chdb 4.4 (engine 26.9) allows, found by trying it and confirmed by its documentation:

* One data directory per process: while any connection to one path is open, connecting to
  another raises "EmbeddedServer already initialized with path ...". So every store in a process
  shares one engine, and tests isolate themselves by database name, not by directory.
* One process per data directory: ClickHouse locks `<path>/status`; a second process (another
  gunicorn worker, a `make migrate` while the app runs, even in read-only mode) fails with
  "Cannot lock file ... Another server instance in same directory is already running". Embedded
  mode therefore means one process (gunicorn with threads, not workers); several processes or
  replicas need a ClickHouse server (clickhouse:// or clickhouses://).
* Any number of connections to the open path may exist, and queries on different connections
  run in parallel from different threads. Session state (current database, SET settings) is per
  connection. A connection costs about 0.07 ms to open, so this transport opens one per
  statement: nothing is shared between threads, and no lock is held during a query. Only opening
  and closing the engine itself is guarded by a lock.
* The engine shuts down when its last connection closes, so each engine keeps one "anchor"
  connection open while any transport uses it; the last `close()` releases it.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

from store.url import StoreUrl, check_database_name

DEFAULT_INSERT_ROWS = 10_000
DEFAULT_STREAM_ROWS = 10_000
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Settings go into a chdb connection string (path?name=value&...): keep both sides plain.
SETTING_VALUE = re.compile(r"[A-Za-z0-9_./+:-]*")


class StoreError(RuntimeError):
    """Raised when the store cannot run a statement or open its data."""


@dataclass(frozen=True)
class Result:
    """Rows of a query with their column names."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        """Return the rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class Transport(Protocol):
    """What the store needs from ClickHouse, whichever way it is reached."""

    database: str

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, OPTIMIZE, INSERT ... SELECT)."""

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Result:
        """Run a query whose result is small and return all its rows."""

    def stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        batch_rows: int = DEFAULT_STREAM_ROWS,
    ) -> Generator[Result, None, None]:
        """Yield a large result batch by batch, never holding it all; close() stops it early."""

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        batch_rows: int = DEFAULT_INSERT_ROWS,
    ) -> int:
        """Insert rows in batches of batch_rows (one INSERT each); return how many were sent."""

    def release_memory(self) -> None:
        """Give memory that finished queries freed back to the OS, where the engine is ours."""

    def close(self) -> None:
        """Release the connection or engine."""


# Values ---------------------------------------------------------------------------------------


def _utc_text(moment: datetime) -> str:
    """Render an instant as ClickHouse's DateTime64(6) text in UTC; naive times are UTC."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _quoted(value: str) -> str:
    """Quote a string as a ClickHouse literal, the form elements take inside an array parameter."""
    out = []
    for char in value:
        if char in "\\'":
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif char == "\0":
            out.append("\\0")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def _check_text(value: str) -> None:
    """Refuse text that is not valid Unicode (lone surrogates): it cannot be sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise StoreError("text holds a lone surrogate, which is not valid Unicode") from None


def _element(value: Any) -> str:
    """Render one element of an array parameter."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        _check_text(value)
        return _quoted(value)
    if isinstance(value, datetime):
        return _quoted(_utc_text(value))
    return encode_param(value)


def encode_param(value: Any) -> str:
    """Render a value as the text a `{name:Type}` parameter is parsed from.

    ClickHouse reads a top-level parameter in its escaped text format (backslash escapes, no
    quotes) and the elements of an Array parameter as quoted literals. Strings are never spliced
    into SQL: the engine parses this text with the declared type, so a hostile string can only
    ever be a value.
    """
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StoreError(f"parameter value {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        _check_text(value)
        return (
            value.replace("\\", "\\\\")
            .replace("\n", "\\n")
            .replace("\t", "\\t")
            .replace("\r", "\\r")
            .replace("\0", "\\0")
        )
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return "[" + ",".join(_element(item) for item in items) + "]"
    raise StoreError(f"cannot pass a {type(value).__name__} as a query parameter")


def _json_default(value: Any) -> Any:
    """Render what json cannot: times as ClickHouse reads them (UTC, microseconds)."""
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, date):
        return value.isoformat()
    raise StoreError(f"cannot store a {type(value).__name__}")


_ENCODER = json.JSONEncoder(default=_json_default, allow_nan=False, ensure_ascii=False)


def json_rows(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """Encode rows as JSONCompactEachRow (one array per row), the format both transports send."""
    width = len(columns)
    lines = []
    for row in rows:
        if len(row) != width:
            raise StoreError(f"a row has {len(row)} values for {width} columns")
        try:
            lines.append(_ENCODER.encode(row))
        except ValueError:
            raise StoreError("a row holds NaN or infinity, which the store does not keep") from None
    try:
        return ("\n".join(lines) + "\n").encode() if lines else b""
    except UnicodeEncodeError:
        raise StoreError("a row holds a lone surrogate, which is not valid Unicode") from None


INSERT_FORMAT = "JSONCompactEachRow"


def check_identifier(name: str) -> str:
    """Return a table or column name if it is a plain identifier, else raise StoreError."""
    if not IDENTIFIER.fullmatch(name):
        raise StoreError(f"{name!r} is not a plain identifier")
    return name


def _insert_head(table: str, columns: Sequence[str]) -> str:
    """Build `INSERT INTO table (columns)` from checked identifiers."""
    names = ", ".join(check_identifier(column) for column in columns)
    return f"INSERT INTO {check_identifier(table)} ({names})"


def _batches(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    """Group rows into lists of at most size."""
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _from_arrow(table: Any) -> Result:
    """Convert an Arrow table or record batch to a Result of plain Python values."""
    columns = tuple(str(name) for name in table.schema.names)
    values = [column.to_pylist() for column in table.columns]
    return Result(columns, list(zip(*values, strict=True)) if values else [])


def _sliced(batch: Any, rows: int) -> Iterator[Result]:
    """Yield an Arrow batch as Results of at most `rows` rows (slices share the batch's memory)."""
    for start in range(0, batch.num_rows, max(1, rows)):
        yield _from_arrow(batch.slice(start, rows))


def _check_settings(settings: Mapping[str, str | int]) -> dict[str, str]:
    """Validate session settings (names and plain values) and render them as text."""
    checked = {}
    for name, value in settings.items():
        text = str(value)
        if not IDENTIFIER.fullmatch(name) or not SETTING_VALUE.fullmatch(text):
            raise StoreError(f"setting {name}={text!r} is not a plain name and value")
        checked[name] = text
    return checked


def _engine_message(error: BaseException) -> str:
    """Return the first line of an engine error, the part that says what went wrong."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# chdb -----------------------------------------------------------------------------------------


class _Engine:
    """The process's embedded ClickHouse, bound to one data directory, and who uses it."""

    def __init__(self, path: str) -> None:
        from chdb import state  # imported here: importing chdb starts an engine

        self.path = path
        self.state = state
        try:
            self.anchor = state.connect(path)
        except Exception as exc:
            raise StoreError(
                f"chdb could not open {path}: {_engine_message(exc)} (chdb lets one process at "
                "a time open a data directory; run one process, or use a ClickHouse server)"
            ) from None
        self.users = 0


_ENGINES: dict[str, _Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _acquire_engine(path: str) -> _Engine:
    """Return the process's engine for path, starting it on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(path)
        if engine is None:
            if _ENGINES:
                (other,) = _ENGINES
                raise StoreError(
                    f"chdb already has {other} open in this process and can open only one data "
                    f"directory per process, so {path} cannot be opened"
                )
            engine = _ENGINES[path] = _Engine(path)
        engine.users += 1
        return engine


def _release_engine(engine: _Engine) -> None:
    """Drop one user of the engine, shutting it down after the last."""
    with _ENGINES_LOCK:
        engine.users -= 1
        if engine.users == 0:
            engine.anchor.close()
            _ENGINES.pop(engine.path, None)


class ChdbTransport:
    """ClickHouse in this process through chdb, one connection per statement."""

    def __init__(
        self, path: str | Path, database: str, settings: Mapping[str, str | int] | None = None
    ) -> None:
        resolved = str(Path(path).expanduser().resolve())
        if "?" in resolved or "&" in resolved:
            raise StoreError(f"chdb data directory {resolved!r} must not contain '?' or '&'")
        self.database = check_database_name(database)
        self.settings = _check_settings(settings or {})
        Path(resolved).mkdir(parents=True, exist_ok=True)
        self._engine = _acquire_engine(resolved)
        self._closed = False
        self._purge = True
        # A connection of its own, with no database selected yet: the anchor is never used for
        # statements, so no two threads ever share a connection.
        bootstrap = self._engine.state.connect(resolved)
        try:
            bootstrap.query(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        except Exception as exc:
            _release_engine(self._engine)
            raise StoreError(
                f"could not create database {self.database}: {_engine_message(exc)}"
            ) from None
        finally:
            bootstrap.close()
        options = {"database": self.database, **self.settings}
        self._connection_string = resolved + "?" + "&".join(f"{k}={v}" for k, v in options.items())

    @property
    def path(self) -> str:
        """Return the data directory."""
        return self._engine.path

    def _connect(self) -> Any:
        """Open a connection to our database with our session settings."""
        if self._closed:
            raise StoreError("the store was closed")
        return self._engine.state.connect(self._connection_string)

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""
        self._run(sql, params, "CSV")

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Result:
        """Run a query and return its rows."""
        return _from_arrow(self._run(sql, params, "arrowtable"))

    def _run(self, sql: str, params: Mapping[str, Any] | None, fmt: str) -> Any:
        """Run one statement on a fresh connection in the given output format."""
        encoded = {name: encode_param(value) for name, value in (params or {}).items()}
        connection = self._connect()
        try:
            return connection.query(sql, fmt, params=encoded)
        except Exception as exc:
            raise StoreError(f"the store refused a statement: {_engine_message(exc)}") from None
        finally:
            connection.close()

    def stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        batch_rows: int = DEFAULT_STREAM_ROWS,
    ) -> Generator[Result, None, None]:
        """Yield the result in batches from chdb's streaming query, on its own connection."""
        encoded = {name: encode_param(value) for name, value in (params or {}).items()}
        connection = self._connect()
        try:
            try:
                running = connection.send_query(sql, "Arrow", params=encoded)
                reader = running.record_batch(rows_per_batch=batch_rows)
            except Exception as exc:
                raise StoreError(f"the store refused a query: {_engine_message(exc)}") from None
            try:
                for batch in reader:
                    yield from _sliced(batch, batch_rows)
            finally:
                running.close()  # cancels the query if the consumer stopped early
        finally:
            connection.close()

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        batch_rows: int = DEFAULT_INSERT_ROWS,
    ) -> int:
        """Insert rows as JSONCompactEachRow, one INSERT per batch."""
        head = _insert_head(table, columns)
        sent = 0
        connection = self._connect()
        try:
            for batch in _batches(rows, batch_rows):
                data = json_rows(columns, batch)
                try:
                    with connection.send_insert(head, INSERT_FORMAT) as inserter:
                        inserter.append(data)
                        inserter.finish()
                except Exception as exc:
                    raise StoreError(
                        f"the store refused rows for {table}: {_engine_message(exc)}"
                    ) from None
                sent += len(batch)
        finally:
            connection.close()
        return sent

    def release_memory(self) -> None:
        """Purge the engine's allocator: memory freed by queries goes back to the OS now.

        The engine's jemalloc keeps freed pages for reuse for a while; in a web process that is
        resident memory nobody uses, and the next large query fragments it further (measured at
        10M spans: RSS 700 MB after a redraw and a peak creeping from 715 to 830 MB over five
        redraws; purged, RSS returns to 357 MB and the peak stays at 715 MB). It takes 15-20 ms.
        """
        if self._closed or not self._purge:
            return
        try:
            self._run("SYSTEM JEMALLOC PURGE", None, "CSV")
        except StoreError:
            self._purge = False  # a build without jemalloc: nothing to purge, never ask again

    def close(self) -> None:
        """Release this transport's hold on the engine."""
        if not self._closed:
            self._closed = True
            _release_engine(self._engine)


# HTTP -----------------------------------------------------------------------------------------


class _Encoded:
    """A parameter already rendered by encode_param; clickhouse-connect sends str() as is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        """Return the rendered text."""
        return self.text


def _http_params(params: Mapping[str, Any] | None) -> dict[str, _Encoded]:
    """Render parameters with encode_param, so both transports send identical text."""
    return {name: _Encoded(encode_param(value)) for name, value in (params or {}).items()}


class HttpTransport:
    """A ClickHouse server over HTTP(S) through clickhouse-connect."""

    def __init__(
        self,
        url: StoreUrl,
        settings: Mapping[str, str | int] | None = None,
        *,
        client: Any = None,
        connect_timeout_s: float = 10,
        timeout_s: float = 300,
    ) -> None:
        self.database = check_database_name(url.database)
        self.settings = _check_settings(settings or {})
        if client is None:
            import clickhouse_connect

            try:
                client = clickhouse_connect.get_client(
                    host=url.host,
                    port=url.port,
                    username=url.username,
                    password=url.password,
                    secure=url.secure,
                    settings=self.settings,
                    connect_timeout=connect_timeout_s,
                    send_receive_timeout=timeout_s,
                    # No HTTP session: one client then serves many threads at once.
                    autogenerate_session_id=False,
                )
            except Exception as exc:
                raise StoreError(
                    f"could not reach ClickHouse at {url.host}:{url.port}: {_engine_message(exc)}"
                ) from None
        self._client = client
        exists = self._call(
            "check the database",
            lambda: client.query_arrow(
                "SELECT name FROM system.databases WHERE name = {name:String}",
                parameters=_http_params({"name": self.database}),
                use_strings=True,
            ),
        )
        if not exists.num_rows:
            # Only when missing: a deployment may grant this user no CREATE on the server.
            self._call(
                "create the database",
                lambda: client.command(f"CREATE DATABASE IF NOT EXISTS {self.database}"),
            )
        client.database = self.database

    def _call(self, what: str, action: Any) -> Any:
        """Run a driver call, turning its errors into StoreError."""
        try:
            return action()
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"the store could not {what}: {_engine_message(exc)}") from None

    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing."""
        self._call("run a statement", lambda: self._client.command(sql, _http_params(params)))

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Result:
        """Run a query and return its rows."""
        table = self._call(
            "run a query",
            lambda: self._client.query_arrow(sql, _http_params(params), use_strings=True),
        )
        return _from_arrow(table)

    def stream(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        batch_rows: int = DEFAULT_STREAM_ROWS,
    ) -> Generator[Result, None, None]:
        """Yield the result as the server streams it, block by block."""
        context = self._call(
            "run a query",
            lambda: self._client.query_arrow_stream(sql, _http_params(params), use_strings=True),
        )
        with context as blocks:
            for block in blocks:
                yield from _sliced(block, batch_rows)

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        batch_rows: int = DEFAULT_INSERT_ROWS,
    ) -> int:
        """Insert rows as JSONCompactEachRow, one INSERT per batch."""
        check_identifier(table)
        sent = 0
        for batch in _batches(rows, batch_rows):
            data = json_rows(columns, batch)
            self._call(
                f"insert rows into {table}",
                lambda data=data: self._client.raw_insert(
                    table,
                    column_names=[check_identifier(column) for column in columns],
                    insert_block=data,
                    fmt=INSERT_FORMAT,
                ),
            )
            sent += len(batch)
        return sent

    def release_memory(self) -> None:
        """Do nothing: the server manages its own memory, outside this process."""

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
