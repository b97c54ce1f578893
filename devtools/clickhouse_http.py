"""Serve ClickHouse's HTTP interface from chdb: a ClickHouse for tests that run several processes.

    python -m devtools.clickhouse_http serve --dir .tmp/clickhouse [--port 8123]

No ClickHouse server can be installed here (Debian's is from 2018, and none is on PyPI), and a
chdb directory opens in one process only. This process owns one chdb directory and answers the
HTTP requests clickhouse-connect sends (the real engine runs every statement), so gunicorn
workers, replicas and subprocesses can share one store at `clickhouse://default@127.0.0.1:<port>`.
It serves as much of the protocol as clickhouse-connect uses: parameters as param_<name>,
settings as URL options, results in the format the query names, inserts with their rows in the
body, errors as HTTP 500 with ClickHouse's exception code. Loopback only, no authentication.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devtools.services import HOST, free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
# URL options that are about the exchange, not ClickHouse settings to pass on to the engine.
TRANSPORT_OPTIONS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "compress",
        "decompress",
        "wait_end_of_query",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
    }
)


def _form_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Return the named fields of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields


class ChdbHttpHandler(BaseHTTPRequestHandler):
    """Answer one ClickHouse HTTP request with a chdb connection of its own."""

    path_on_disk = ""

    def log_message(self, *_args: Any) -> None:
        """Keep the output quiet: tests read their own."""

    def do_GET(self) -> None:
        """Answer a query sent in the URL."""
        self._answer()

    def do_POST(self) -> None:
        """Answer a query or an insert sent in the body."""
        self._answer()

    def _answer(self) -> None:
        """Run the request's statement on a chdb connection and send back its bytes."""
        from chdb import state

        url = urlsplit(self.path)
        options = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path == "/ping":
            self._reply(200, b"Ok.\n")
            return
        if self.headers.get_content_type() == "multipart/form-data":
            # clickhouse-connect moves a long query's parameters into a form, as ClickHouse
            # accepts: each part is a field (query, param_<name>).
            options.update(_form_fields(self.headers["Content-Type"], body))
            body = b""
        query = options.get("query")
        if query is None:
            query, body = body.decode(), b""
        params = {k[6:]: v for k, v in options.items() if k.startswith("param_")}
        settings = [
            f"{k}={v}"
            for k, v in options.items()
            if k not in TRANSPORT_OPTIONS and not k.startswith("param_")
        ]
        database = options.get("database", "default")
        try:
            connection = state.connect(
                "?".join([self.path_on_disk, "&".join([f"database={database}", *settings])])
            )
        except Exception as exc:
            self._reply(500, str(exc).encode(), error=_code(exc))
            return
        try:
            named = re.search(r"\s+FORMAT\s+(\w+)\s*;?\s*$", query, re.IGNORECASE)
            if body:  # an INSERT whose rows follow in the body
                head = query[: named.start()] if named else query
                with connection.send_insert(head, named[1] if named else "TSV") as inserter:
                    inserter.append(body)
                    inserter.finish()
                self._reply(200, b"")
                return
            fmt = named[1] if named else options.get("default_format", "TabSeparated")
            self._reply(200, connection.query(query, fmt, params=params).bytes(), fmt)
        except Exception as exc:
            self._reply(500, str(exc).encode(), error=_code(exc))
        finally:
            connection.close()

    def _reply(self, status: int, data: bytes, fmt: str = "", error: str = "") -> None:
        """Send a response with the headers clickhouse-connect reads."""
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-ClickHouse-Timezone", "UTC")
        self.send_header("X-ClickHouse-Summary", '{"read_rows":"0","written_rows":"0"}')
        if fmt:
            self.send_header("X-ClickHouse-Format", fmt)
        if error:
            self.send_header("X-ClickHouse-Exception-Code", error)
        self.end_headers()
        self.wfile.write(data)


def _code(exc: Exception) -> str:
    """Return ClickHouse's exception code from an engine error, 1 when it has none."""
    found = re.search(r"Code: (\d+)", str(exc))
    return found[1] if found else "1"


def make_server(path: Path | str, port: int = 0) -> ThreadingHTTPServer:
    """Return an HTTP server for the chdb directory this process has open (or will open)."""
    handler = type("Handler", (ChdbHttpHandler,), {"path_on_disk": str(path)})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    return server


def serve_in_thread(path: Path | str) -> tuple[ThreadingHTTPServer, str]:
    """Serve in a daemon thread of this process; return the server and its base URL."""
    server = make_server(path)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"clickhouse://default@{HOST}:{server.server_address[1]}"


def answers(port: int, timeout_s: float = 1.0) -> bool:
    """Tell whether the server on port answers /ping."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/ping", timeout=timeout_s) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class ClickHouseHttp:
    """A serving process we started, and how to reach it."""

    pid: int
    port: int
    root: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the base STORE_URL (add /<database> to choose one)."""
        return f"clickhouse://default@{HOST}:{self.port}"

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(self.pid):
            time.sleep(0.05)
        if _alive(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    """Tell whether pid is still our serving process rather than a recycled pid."""
    try:
        return b"devtools.clickhouse_http" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start_clickhouse_http(
    root: Path, *, python: str | None = None, ready_timeout_s: float = 60.0
) -> ClickHouseHttp:
    """Start a serving process with its chdb directory in root; wait until it answers."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = root / "clickhouse-http.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                python or sys.executable,
                "-m",
                "devtools.clickhouse_http",
                "serve",
                "--dir",
                str(root / "data"),
                "--port",
                str(port),
            ],
            cwd=PROJECT_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # keeps Ctrl-C away from it and lets `start` leave it up
        )
    server = ClickHouseHttp(pid=proc.pid, port=port, root=str(root), proc=proc)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text(errors="replace").strip().splitlines()[-15:]
            raise RuntimeError(
                f"the ClickHouse HTTP server exited with {proc.returncode}:\n" + "\n".join(text)
            )
        if answers(port):
            return server
        time.sleep(0.1)
    server.stop()
    raise TimeoutError(f"the ClickHouse HTTP server did not answer in {ready_timeout_s:.0f} s")


def serve(path: Path, port: int) -> None:
    """Open the chdb directory and serve it until SIGTERM or SIGINT."""
    from store.transport import ChdbTransport

    path.mkdir(parents=True, exist_ok=True)
    # Keeps the engine up between requests: it shuts down when its last connection closes.
    keeper = ChdbTransport(path, "default")
    server = make_server(path, port)
    stopping = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        """Stop serving from another thread: shutdown() waits for serve_forever to return."""
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"serving chdb {path} on http://{HOST}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        keeper.close()


def main(argv: list[str] | None = None) -> int:
    """Serve a chdb directory over ClickHouse's HTTP interface."""
    parser = argparse.ArgumentParser(prog="python -m devtools.clickhouse_http", description=__doc__)
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("serve", help="serve a chdb directory until stopped")
    run.add_argument("--dir", type=Path, required=True, help="the chdb data directory")
    run.add_argument("--port", type=int, default=8123, help="loopback port")
    options = parser.parse_args(argv)
    serve(options.dir.resolve(), options.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
