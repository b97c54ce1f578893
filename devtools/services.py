"""Run throwaway PostgreSQL 15, Redis and ClickHouse (HTTP, from chdb) servers for the tests.

    python -m devtools.services run --dir .tmp/services -- python -m pytest
    python -m devtools.services start --dir .tmp/services --env-file .tmp/services/env
    python -m devtools.services stop --dir .tmp/services

Standard library only: it runs before any dependency is installed. The ClickHouse server is
devtools/clickhouse_http.py in a process of its own, run by this same Python (which needs chdb).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

HOST = "127.0.0.1"
DB_NAME = "dashboard_test"
PG_USER = "postgres"
PG_DEFAULT_BIN = Path("/usr/lib/postgresql/15/bin")
STATE_FILE = "state.json"
PORT_ATTEMPTS = 3
# sun_path holds 108 bytes including the trailing NUL.
MAX_SOCKET_PATH = 107
SOCKET_SUFFIX = "/pg-XXXXXXXX/.s.PGSQL.65535"


class ServiceError(Exception):
    """A service could not be started."""


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster living in root."""

    bin_dir: str
    root: str
    port: int = 0

    @property
    def data(self) -> Path:
        """Return the data directory."""
        return Path(self.root) / "data"

    @property
    def log(self) -> Path:
        """Return the server log file."""
        return Path(self.root) / "postgres.log"


@dataclass
class Redis:
    """A throwaway Redis server; proc is only set in the process that spawned it."""

    pid: int
    root: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class ClickHouse:
    """A throwaway ClickHouse HTTP server (chdb behind devtools/clickhouse_http.py)."""

    pid: int
    root: str
    port: int
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Services:
    """Whatever has been started so far."""

    postgres: Postgres | None = None
    redis: Redis | None = None
    clickhouse: ClickHouse | None = None

    def env(self) -> dict[str, str]:
        """Return the URLs to export for the services that are running."""
        env: dict[str, str] = {}
        if self.postgres:
            where = f"postgres@{HOST}:{self.postgres.port}"
            env["TEST_PG_URL"] = f"postgresql+psycopg2://{where}/{DB_NAME}"
            env["TEST_PG_ADMIN_URL"] = f"postgresql://{where}/postgres"
        if self.redis:
            env["TEST_REDIS_URL"] = f"redis://{HOST}:{self.redis.port}/0"
        if self.clickhouse and not os.environ.get("TEST_CLICKHOUSE_URL"):
            # No database: each test appends /<its own>. A real server named by the caller wins.
            env["TEST_CLICKHOUSE_URL"] = f"clickhouse://default@{HOST}:{self.clickhouse.port}"
        return env


class Signals:
    """Turn SIGINT/SIGTERM/SIGHUP into a flag so that cleanup always runs."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.count = 0
        self.child: subprocess.Popen[bytes] | None = None
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        """Record the signal and pass it on to the running command."""
        self.received = self.received or signum
        self.count += 1
        child = self.child
        if child is None or child.poll() is not None:
            return
        if self.count >= 3:
            child.kill()
        elif signum != signal.SIGINT or self.count > 1:
            # A first Ctrl-C already reaches the command through the terminal's process group.
            child.send_signal(signum)

    def exit_code(self) -> int:
        """Return the shell-style exit code for the signal received."""
        return 128 + (self.received or 0)


def say(message: str) -> None:
    """Print a status line to stderr, out of the way of the command's output."""
    print(f"services: {message}", file=sys.stderr, flush=True)


_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    """Return the first port the kernel gives to outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """Return a loopback TCP port that is free now and that no outgoing connection will take."""
    # Below the ephemeral range: a client socket can never hold the port, so a server stopped
    # and restarted on it (as the fault tests do) finds it still free.
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(500):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free loopback port below {low}")


def tail(text: str, lines: int = 15) -> str:
    """Return the last lines of text, indented."""
    return "\n".join("    " + line for line in text.strip().splitlines()[-lines:])


def read_tail(path: Path) -> str:
    """Return the indented end of a log file, or nothing if it is unreadable."""
    return tail(read_from(path, 0))


def read_from(path: Path, offset: int) -> str:
    """Return a log file's text from byte offset on, or nothing if it is unreadable."""
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def size(path: Path) -> int:
    """Return a file's size, 0 if it does not exist yet."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def is_root() -> bool:
    """Tell whether we run as root and must drop to the postgres user."""
    return os.geteuid() == 0


# --- PostgreSQL ---------------------------------------------------------------------------


def pg_bin_dir() -> Path:
    """Find the directory holding initdb and pg_ctl."""
    if override := os.environ.get("PG_BIN"):
        candidates = [Path(override)]
    else:
        found = shutil.which("initdb")
        candidates = [PG_DEFAULT_BIN] + ([Path(found).resolve().parent] if found else [])
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    where = ", ".join(map(str, candidates))
    raise ServiceError(f"no initdb/pg_ctl in {where} (install postgresql-15 or set PG_BIN)")


def pg_command(pg: Postgres, tool: str, *args: str) -> None:
    """Run a PostgreSQL tool as the postgres user, raising ServiceError on failure."""
    command = [str(Path(pg.bin_dir) / tool), *args]
    if is_root():
        command = ["runuser", "-u", PG_USER, "--", *command]
    # PGSSLMODE, PGOPTIONS and friends from a developer's shell would change how tools connect.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    try:
        result = subprocess.run(
            command,
            cwd=pg.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"{tool} failed: {exc}") from exc
    if result.returncode != 0:
        log = read_tail(pg.log)
        raise ServiceError(
            f"{tool} exited with {result.returncode}:\n{tail(result.stdout + result.stderr)}"
            + (f"\n  {pg.log}:\n{log}" if log else "")
        )


def postgres_can_traverse(path: Path) -> bool:
    """Tell whether the postgres user can reach path through all its parents."""
    result = subprocess.run(
        ["runuser", "-u", PG_USER, "--", "test", "-x", str(path)], cwd="/", capture_output=True
    )
    return result.returncode == 0


def make_pg_root(base: Path) -> Path:
    """Create the cluster's directory in base, or under /tmp if postgres cannot use base."""
    owner = None
    if is_root():
        try:
            owner = pwd.getpwnam(PG_USER)
        except KeyError:
            raise ServiceError(f"running as root but there is no {PG_USER!r} user") from None
    reason = None
    if len(str(base) + SOCKET_SUFFIX) > MAX_SOCKET_PATH:
        reason = f"{base} is too long a path for a Unix socket"
    elif owner and not postgres_can_traverse(base):
        reason = f"the {PG_USER} user cannot traverse {base}"
    if reason:
        root = Path(tempfile.mkdtemp(prefix="dash-test-pg-"))
        say(f"PostgreSQL data goes in {root} because {reason}")
    else:
        root = Path(tempfile.mkdtemp(prefix="pg-", dir=base))
    if owner:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    return root


def start_postgres(base: Path) -> Postgres:
    """Create a cluster, start it on a free loopback port and create the test database."""
    began = time.monotonic()
    pg = Postgres(bin_dir=str(pg_bin_dir()), root=str(make_pg_root(base)))
    try:
        pg_command(
            pg,
            "initdb",
            "-D",
            str(pg.data),
            "--auth=trust",
            "-U",
            PG_USER,
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )
        for attempt in range(1, PORT_ATTEMPTS + 1):
            pg.port = free_port()
            logged = size(pg.log)
            # A throwaway cluster needs no durability; skipping fsync speeds up the tests.
            options = (
                f"-h {HOST} -p {pg.port} -k {shlex.quote(pg.root)}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                pg_command(
                    pg,
                    "pg_ctl",
                    "-D",
                    str(pg.data),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(pg.log),
                    "start",
                )
                break
            except ServiceError:
                # Another process grabbed the port between free_port() and the bind.
                if attempt == PORT_ATTEMPTS or "already in use" not in read_from(pg.log, logged):
                    raise
        pg_command(pg, "createdb", "-h", HOST, "-p", str(pg.port), "-U", PG_USER, DB_NAME)
    except BaseException:
        stop_postgres(pg)
        raise
    say(f"PostgreSQL ready on {HOST}:{pg.port} ({time.monotonic() - began:.1f}s)")
    return pg


def restart_postgres(pg: Postgres) -> None:
    """Restart the cluster on its port, cutting every open connection, as a failover would."""
    # -l sends the new postmaster's output to the log, not to the pipe pg_command waits on.
    pg_command(
        pg,
        "pg_ctl",
        "-D",
        str(pg.data),
        "-m",
        "fast",
        "-w",
        "-t",
        "60",
        "-l",
        str(pg.log),
        "restart",
    )


def stop_postgres(pg: Postgres) -> None:
    """Stop the cluster and delete its directory."""
    pid_file = pg.data / "postmaster.pid"
    if pid_file.exists():
        try:
            pg_command(pg, "pg_ctl", "-D", str(pg.data), "-m", "immediate", "-w", "stop")
        except ServiceError as exc:
            say(f"pg_ctl stop failed, killing the postmaster: {exc}")
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGQUIT)
    shutil.rmtree(pg.root, ignore_errors=True)


# --- Redis --------------------------------------------------------------------------------


def redis_binary() -> str:
    """Find redis-server, installing it with apt-get when running as root."""
    if found := shutil.which("redis-server"):
        return found
    if not is_root():
        raise ServiceError("redis-server is not on PATH (e.g. sudo apt-get install redis-server)")
    say("redis-server not found; installing it with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"]
    try:
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServiceError(f"cannot install redis-server with apt-get: {exc}") from exc
    if result.returncode != 0:
        raise ServiceError(
            f"apt-get install redis-server failed:\n{tail(result.stdout + result.stderr)}"
        )
    # PATH may lack /usr/bin when it was what hid redis-server in the first place.
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin")
    if not found:
        raise ServiceError("apt-get installed redis-server but it is still not found")
    return found


def redis_answers(port: int) -> bool:
    """Tell whether a Redis server on port replies +PONG to PING."""
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(base: Path, port: int | None = None) -> Redis:
    """Start redis-server on `port` or a free loopback port and wait until it answers."""
    began = time.monotonic()
    binary = redis_binary()
    root = Path(tempfile.mkdtemp(prefix="redis-", dir=base))
    log = root / "redis.log"
    try:
        # A port that was asked for gets one try: another port would not be what was asked.
        attempts = 1 if port else PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            chosen = port or free_port()
            logged = size(log)
            command = [
                binary,
                "--port",
                str(chosen),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(root),
            ]
            with log.open("ab") as out:
                # Its own session keeps Ctrl-C away from it and lets `start` leave it running.
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            redis = Redis(pid=proc.pid, root=str(root), port=chosen, proc=proc)
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                if redis_answers(chosen):
                    say(f"Redis ready on {HOST}:{chosen} ({time.monotonic() - began:.1f}s)")
                    return redis
                time.sleep(0.05)
            stop_redis(redis, remove=False)
            if attempt == attempts or "already in use" not in read_from(log, logged):
                raise ServiceError(f"redis-server did not answer PING:\n{read_tail(log)}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


def is_redis(pid: int) -> bool:
    """Tell whether pid is still a redis-server rather than a recycled pid."""
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    try:
        return b"redis-server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_redis(redis: Redis, remove: bool = True) -> None:
    """Terminate redis-server and delete its directory."""
    if redis.proc is not None:
        redis.proc.terminate()
        try:
            redis.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            redis.proc.kill()
            redis.proc.wait()
    elif is_redis(redis.pid):
        os.kill(redis.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while is_redis(redis.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if is_redis(redis.pid):
            os.kill(redis.pid, signal.SIGKILL)
    if remove:
        shutil.rmtree(redis.root, ignore_errors=True)


# --- ClickHouse ---------------------------------------------------------------------------


def start_clickhouse(base: Path) -> ClickHouse:
    """Start devtools/clickhouse_http.py on a free loopback port and wait until it answers."""
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="clickhouse-", dir=base))
    try:
        # Imported here: that module imports this one.
        from devtools.clickhouse_http import start_clickhouse_http

        started = start_clickhouse_http(root)
    except (ImportError, RuntimeError, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise ServiceError(f"the ClickHouse HTTP server did not start: {exc}") from exc
    elapsed = time.monotonic() - began
    say(f"ClickHouse (chdb over HTTP) ready on {HOST}:{started.port} ({elapsed:.1f}s)")
    return ClickHouse(pid=started.pid, root=str(root), port=started.port, proc=started.proc)


def stop_clickhouse(clickhouse: ClickHouse) -> None:
    """Stop the server and delete its directory."""
    from devtools.clickhouse_http import ClickHouseHttp

    ClickHouseHttp(clickhouse.pid, clickhouse.port, clickhouse.root, clickhouse.proc).stop()
    shutil.rmtree(clickhouse.root, ignore_errors=True)


# --- Orchestration ------------------------------------------------------------------------


def unavailable(name: str, exc: ServiceError) -> None:
    """Fail when CI is set, otherwise warn that the tests needing name will skip."""
    if os.environ.get("CI"):
        raise ServiceError(f"{name} could not start and CI is set: {exc}") from exc
    say(f"warning: {name} is unavailable, so its tests will skip: {exc}")


def start_all(base: Path, services: Services, signals: Signals) -> None:
    """Start every service into services, stopping early if a signal arrives."""
    base.mkdir(parents=True, exist_ok=True)
    try:
        services.postgres = start_postgres(base)
    except ServiceError as exc:
        unavailable("PostgreSQL", exc)
    if signals.received:
        return
    try:
        services.redis = start_redis(base)
    except ServiceError as exc:
        unavailable("Redis", exc)
    if signals.received:
        return
    try:
        services.clickhouse = start_clickhouse(base)
    except ServiceError as exc:
        unavailable("ClickHouse", exc)


def stop_all(services: Services) -> None:
    """Stop whatever is running, carrying on past individual failures."""
    try:
        if services.postgres:
            stop_postgres(services.postgres)
    except Exception as exc:
        say(f"error while stopping PostgreSQL: {exc}")
    try:
        if services.redis:
            stop_redis(services.redis)
    except Exception as exc:
        say(f"error while stopping Redis: {exc}")
    try:
        if services.clickhouse:
            stop_clickhouse(services.clickhouse)
    except Exception as exc:
        say(f"error while stopping ClickHouse: {exc}")


def run_command(command: list[str], env: dict[str, str], signals: Signals) -> int:
    """Run command to completion and return its shell-style exit code."""
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        say(f"cannot run {command[0]}: {exc}")
        return 127
    signals.child = proc
    code = proc.wait()
    signals.child = None
    return 128 - code if code < 0 else code


def cmd_run(base: Path, command: list[str]) -> int:
    """Start the services, run command with their URLs, and always stop them."""
    signals = Signals()
    services = Services()
    try:
        start_all(base, services, signals)
        if signals.received:
            return signals.exit_code()
        return run_command(command, {**os.environ, **services.env()}, signals)
    finally:
        stop_all(services)


def cmd_start(base: Path, env_file: Path) -> int:
    """Start the services, record them in base and leave them running."""
    state = base / STATE_FILE
    if state.exists():
        say(f"already started ({state}); run `stop --dir {base}` first")
        return 1
    signals = Signals()
    services = Services()
    try:
        start_all(base, services, signals)
        if not signals.received:
            pg, redis, ch = services.postgres, services.redis, services.clickhouse
            record = {
                "postgres": asdict(pg) if pg else None,
                "redis": {"pid": redis.pid, "root": redis.root, "port": redis.port}
                if redis
                else None,
                "clickhouse": {"pid": ch.pid, "root": ch.root, "port": ch.port} if ch else None,
            }
            state.write_text(json.dumps(record, indent=2) + "\n")
            env_file.parent.mkdir(parents=True, exist_ok=True)
            env_file.write_text("".join(f"{k}={v}\n" for k, v in services.env().items()))
            say(f"wrote {env_file}; stop with: python -m devtools.services stop --dir {base}")
            return 0
    except BaseException:
        stop_all(services)
        raise
    stop_all(services)
    return signals.exit_code()


def cmd_stop(base: Path) -> int:
    """Stop what `start` started in base."""
    state = base / STATE_FILE
    try:
        record = json.loads(state.read_text())
    except FileNotFoundError:
        say(f"nothing to stop ({state} does not exist)")
        return 0
    pg, redis, ch = record.get("postgres"), record.get("redis"), record.get("clickhouse")
    stop_all(
        Services(
            postgres=Postgres(**pg) if pg else None,
            redis=Redis(**redis) if redis else None,
            clickhouse=ClickHouse(**ch) if ch else None,
        )
    )
    state.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in args:
        split = args.index("--")
        args, command = args[:split], args[split + 1 :]
    parser = argparse.ArgumentParser(
        prog="python -m devtools.services",
        description="Run throwaway PostgreSQL 15, Redis and ClickHouse servers for the tests.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    run = actions.add_parser("run", help="start the services, run the command after --, stop")
    start = actions.add_parser("start", help="start the services and leave them running")
    stop = actions.add_parser("stop", help="stop what start started")
    for sub in (run, start, stop):
        sub.add_argument("--dir", type=Path, required=True, help="scratch directory")
    start.add_argument("--env-file", type=Path, required=True, help="where to write KEY=VALUE")
    options = parser.parse_args(args)
    if (options.action == "run") != bool(command):
        parser.error("a command after -- is required for run, and only for run")
    base: Path = options.dir.resolve()
    try:
        if options.action == "run":
            return cmd_run(base, command)
        if options.action == "start":
            return cmd_start(base, options.env_file)
        return cmd_stop(base)
    except ServiceError as exc:
        say(f"error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
