"""The factory: nothing at import time, gunicorn through a factory call, the flask CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import Result

from app import create_app
from devtools.phoenix import free_port
from settings import PROJECT_DIR

from .conftest import TEST_SECRET


def _env(db_url: str, store_url: str, **extra: str) -> dict[str, str]:
    """The environment of an app process: its own database and store, no Phoenix."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "STORE_URL", "PHOENIX_"))
    }
    env.update(
        DATABASE_URL=db_url,
        # A process of its own cannot share this one's chdb directory: it gets its own, or a
        # ClickHouse server when several processes serve the app.
        STORE_URL=store_url,
        SECRET_KEY=TEST_SECRET,
        PHOENIX_ENABLED="false",
        LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def test_importing_app_does_nothing(tmp_path: Path) -> None:
    db_file = tmp_path / "never-created.db"
    store_dir = tmp_path / "never-created-store"
    code = "import app, sys; sys.exit(app._default_server.cache_info().currsize)"
    subprocess.run(
        [sys.executable, "-c", code],
        env=_env(f"sqlite:///{db_file}", f"chdb://{store_dir}"),
        cwd=PROJECT_DIR,
        check=True,
        timeout=60,
    )
    assert not db_file.exists()
    assert not store_dir.exists()


def test_flask_cli_manages_users(settings, tmp_path: Path) -> None:
    # The real entry point once, `flask --app app` in a process of its own ...
    command = ["users", "create", "Cli@Example.com", "--role", "member"]
    created = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *command],
        env=_env(settings.database_url, f"chdb://{tmp_path / 'clickhouse'}"),
        cwd=PROJECT_DIR,
        input="s3cret-password\n",
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert "Created cli@example.com with role member" in created.stdout
    # ... then the same commands through Flask's CLI runner, on the same database.
    runner = create_app(settings).server.test_cli_runner()

    def run(*args: str, stdin: str = "") -> Result:
        return runner.invoke(args=["users", *args], input=stdin)

    assert run("create", "cli@example.com", stdin="another-password\n").exit_code == 1
    assert run("create", "x@example.com", stdin="short\n").exit_code == 1
    assert run("set-role", "cli@example.com", "admin").exit_code == 0
    listing = run("list").output
    assert "cli@example.com" in listing and "admin" in listing and "yes" in listing
    assert run("deactivate", "cli@example.com").exit_code == 0
    assert "cli@example.com                          admin    no" in run("list").output
    missing = run("set-role", "ghost@example.com", "viewer")
    assert missing.exit_code == 1 and "No user with email ghost@example.com" in missing.output


def test_flask_cli_on_unmigrated_database_names_the_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "users", "list"],
        env=_env(f"sqlite:///{tmp_path / 'empty.db'}", f"chdb://{tmp_path / 'clickhouse'}"),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "make migrate" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_setting_stops_python_app_with_the_variable_name(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "app.py"],
        env=_env(
            f"sqlite:///{tmp_path / 'x.db'}", f"chdb://{tmp_path / 'clickhouse'}", PORT="not-a-port"
        ),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "PORT='not-a-port' is invalid" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_gunicorn_serves_the_factory(settings, server_store_url: str) -> None:
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # Two worker processes: one chdb directory cannot serve both, a ClickHouse server can.
    process = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "2", "app:server"],
        env=_env(settings.database_url, server_store_url),
        cwd=PROJECT_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                response = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except requests.RequestException:
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer")
        assert response.status_code == 200
        page = requests.get(f"http://127.0.0.1:{port}/", allow_redirects=False, timeout=5)
        assert page.status_code == 302
    finally:
        process.terminate()
        process.wait(timeout=20)
