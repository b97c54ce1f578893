"""Start a real Phoenix server on loopback, from its own virtual environment."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devtools.services import free_port

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_VENV = PROJECT_DIR / ".phoenix-venv"


def phoenix_executable() -> Path:
    """Locate the `phoenix` command of Phoenix's own virtual environment."""
    override = os.environ.get("PHOENIX_BIN")
    path = Path(override) if override else DEFAULT_VENV / "bin" / "phoenix"
    if not path.exists():
        raise FileNotFoundError(
            f"Phoenix is not installed at {path}; run `make phoenix-venv` (make demo/test do it)"
        )
    return path


def is_healthy(url: str, timeout_s: float = 2.0) -> bool:
    """Tell whether Phoenix answers its health probe."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class PhoenixServer:
    """A Phoenix process we started, and how to reach it."""

    url: str
    port: int
    grpc_port: int
    workdir: str
    pid: int
    log_path: str

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the process and wait for it to exit."""
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(self.pid):
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)

    @property
    def running(self) -> bool:
        """Tell whether the process is alive and healthy."""
        return _alive(self.pid) and is_healthy(self.url)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        waited = 0  # not our child (started by an earlier run): ask the kernel instead
    if waited == pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start_phoenix(
    workdir: Path,
    *,
    port: int | None = None,
    grpc_port: int | None = None,
    extra_env: Mapping[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> PhoenixServer:
    """Start Phoenix with its data in `workdir` and wait until /healthz answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    grpc_port = grpc_port or free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        # gRPC otherwise binds [::]:4317 on every interface, whatever PHOENIX_HOST says.
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_AGENTS_DISABLE_BASH": "true",
        # No web fonts or update checks from the public internet: offline machines stay quiet.
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        # The dashboard serves Phoenix's UI under /phoenix and strips the prefix.
        "PHOENIX_HOST_ROOT_PATH": "/phoenix",
        **(extra_env or {}),
    }
    # The dashboard's own settings must not leak into Phoenix's process.
    for name in ("DATABASE_URL", "SECRET_KEY", "PHOENIX_API_KEY", "VIRTUAL_ENV"):
        env.pop(name, None)
    log_path = workdir / "phoenix.log"
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [str(phoenix_executable()), "serve"],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so stop() takes its children too
        )
    server = PhoenixServer(
        url=f"http://127.0.0.1:{port}",
        port=port,
        grpc_port=grpc_port,
        workdir=str(workdir),
        pid=process.pid,
        log_path=str(log_path),
    )
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"Phoenix exited with code {process.returncode}; log tail:\n{_tail(log_path)}"
            )
        if is_healthy(server.url, timeout_s=1.0):
            return server
        time.sleep(0.25)
    server.stop()
    raise TimeoutError(
        f"Phoenix did not become healthy in {ready_timeout_s:.0f} s; log tail:\n{_tail(log_path)}"
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_running(state_file: Path, workdir: Path, preferred_port: int = 6006) -> PhoenixServer:
    """Reuse the Phoenix recorded in `state_file` if it is healthy, else start one and record it."""
    if state_file.exists():
        server = PhoenixServer(**json.loads(state_file.read_text()))
        if server.running:
            return server
    port = preferred_port if _port_free(preferred_port) else free_port()
    grpc_port = 4317 if _port_free(4317) else free_port()
    server = start_phoenix(workdir, port=port, grpc_port=grpc_port)
    state_file.parent.mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(asdict(server), indent=2))
    return server


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class RoleKeys:
    """Phoenix API keys for the dashboard: a VIEWER key for reads, a MEMBER key for writes."""

    viewer_key: str
    member_key: str


def _post_json(url: str, body: object, headers: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """POST JSON and return the decoded answer and any Set-Cookie header."""
    request = urllib.request.Request(  # noqa: S310 - the URL is our own Phoenix
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            cookies = "; ".join(
                c.split(";", 1)[0] for c in response.headers.get_all("Set-Cookie") or []
            )
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"POST {url} answered {exc.code}: {exc.read()[:300]!r}") from None
    return (json.loads(raw) if raw.strip() else {}), cookies


def create_role_keys(url: str, admin_secret: str, *, suffix: str = "dashboard") -> RoleKeys:
    """Create a VIEWER and a MEMBER Phoenix user through the admin secret, and a key for each."""
    admin = {"Authorization": f"Bearer {admin_secret}"}
    keys: dict[str, str] = {}
    for role in ("VIEWER", "MEMBER"):
        email = f"{suffix}-{role.lower()}@dashboard.local"
        password = f"{secrets.token_urlsafe(18)}a1"
        user = {
            "email": email,
            "username": f"{suffix}-{role.lower()}",
            "role": role,
            "auth_method": "LOCAL",
            "password": password,
        }
        _post_json(f"{url}/v1/users", {"user": user, "send_welcome_email": False}, admin)
        # Users made by an admin must change their password first, or Phoenix's UI shows only
        # its reset form, also to requests that carry their key.
        _, cookies = _post_json(f"{url}/auth/login", {"email": email, "password": password}, {})
        new_password = f"{secrets.token_urlsafe(18)}b2"
        mutation = (
            "mutation($c: String!, $n: String!) "
            "{ patchViewer(input: {currentPassword: $c, newPassword: $n}) { __typename } }"
        )
        answer, _ = _post_json(
            f"{url}/graphql",
            {"query": mutation, "variables": {"c": password, "n": new_password}},
            {"Cookie": cookies},
        )
        if answer.get("errors"):
            raise RuntimeError(f"Phoenix refused the password change: {answer['errors']}")
        # A user's own key needs that user's session: API keys cannot mint keys.
        _, cookies = _post_json(f"{url}/auth/login", {"email": email, "password": new_password}, {})
        created, _ = _post_json(
            f"{url}/v1/user/api_keys",
            {"data": {"name": f"{suffix}-{role.lower()}"}},
            {"Cookie": cookies},
        )
        keys[role] = created["data"]["key"]
    return RoleKeys(viewer_key=keys["VIEWER"], member_key=keys["MEMBER"])


def main(argv: list[str] | None = None) -> int:
    """Start (or reuse) a Phoenix for the demo, stop it, or make the dashboard's keys."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status", "keys"])
    parser.add_argument("--dir", type=Path, default=PROJECT_DIR / ".demo", help="state folder")
    parser.add_argument("--url", help="Phoenix URL, for `keys`")
    parser.add_argument("--admin-secret", help="Phoenix's PHOENIX_ADMIN_SECRET, for `keys`")
    args = parser.parse_args(argv)
    if args.action == "keys":
        if not args.url or not args.admin_secret:
            parser.error("keys needs --url and --admin-secret")
        keys = create_role_keys(args.url.rstrip("/"), args.admin_secret)
        print(f"PHOENIX_API_KEY={keys.viewer_key}\nPHOENIX_WRITE_API_KEY={keys.member_key}")
        return 0
    state_file = args.dir / "phoenix.json"
    if args.action == "start":
        server = ensure_running(state_file, args.dir / "phoenix")
        print(f"Phoenix is running at {server.url} (pid {server.pid}, data in {server.workdir})")
        return 0
    if not state_file.exists():
        print("No demo Phoenix recorded.")
        return 0 if args.action == "stop" else 1
    server = PhoenixServer(**json.loads(state_file.read_text()))
    if args.action == "status":
        print(f"Phoenix at {server.url}: {'running' if server.running else 'not running'}")
        return 0 if server.running else 1
    server.stop()
    state_file.unlink()
    print("Phoenix stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
