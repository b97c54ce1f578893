"""`make demo`: start a local Phoenix, load demo data once, create the demo login, serve."""

from __future__ import annotations

import sys

from dash import Dash

from app import create_app
from devtools.demo_data import load_demo
from devtools.phoenix import PROJECT_DIR, ensure_running
from services import monitors, users
from services.container import get_services
from settings import Settings

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-password"  # noqa: S105  (printed by `make demo`)
DEMO_DIR = PROJECT_DIR / ".demo"


def ensure_demo_user(app: Dash) -> bool:
    """Create the demo login unless it exists; tell whether it was created."""
    with get_services(app.server).sessions.begin() as db:
        if users.get_by_email(db, DEMO_EMAIL) is not None:
            return False
        users.create_user(db, DEMO_EMAIL, DEMO_PASSWORD, role="admin", display_name="Demo Analyst")
        return True


DEMO_MONITOR = {
    "name": "support-answer p95: newest version against the one before",
    "prompt": "support-answer",
    "metric": "p95_ms",
    "rule": "relative",
    "candidate": "newest",
    "baseline": "previous",
    # The last week: v3 (released ten days ago, its retry loop shipped five days ago) against
    # v2, which still serves part of the traffic during the staged rollout.
    "window_hours": 24 * 7,
    "min_effect": 10,
    "min_samples": 150,
}


def ensure_demo_monitor(app: Dash) -> bool:
    """Sync once, then create the demo's monitor unless one exists; tell whether it was made."""
    services = get_services(app.server)
    if services.sync is None:
        return False
    # The monitor names a prompt, which exists once the sync has read its spans.
    services.sync.tick()
    with services.sessions.begin() as db:
        if monitors.list_monitors(db):
            return False
        monitors.create(db, DEMO_EMAIL, DEMO_MONITOR)
    # Evaluate now, so the alerts page shows a state at once rather than after a minute.
    monitors.evaluate_all(services.sessions, services.store, services.settings)
    return True


def main() -> int:
    """Prepare everything the demo needs, reusing what an earlier run left, then serve."""
    phoenix = ensure_running(DEMO_DIR / "phoenix.json", DEMO_DIR / "phoenix")
    print(f"Phoenix: {phoenix.url} (data in {phoenix.workdir}; `make demo-stop` stops it)")
    summary = load_demo(phoenix.url, progress=True)
    if summary.skipped:
        print("Demo data: already loaded, nothing sent.")
    else:
        print(
            f"Demo data: {summary.llm_spans} LLM spans in {len(summary.projects)} projects, "
            f"{len(summary.prompts)} prompts, {summary.annotations} annotations, "
            f"{len(summary.experiment_ids)} experiments."
        )
    settings = Settings.from_env().with_overrides(phoenix_enabled=True, phoenix_url=phoenix.url)
    app = create_app(settings)
    if ensure_demo_user(app):
        print(f"Created the demo login {DEMO_EMAIL}.")
    if ensure_demo_monitor(app):
        print(
            "Created the demo monitor (support-answer p95, newest version against the one before)."
        )
    url = f"http://{settings.host}:{settings.port}"
    print(f"\nDashboard: {url}\nLogin:     {DEMO_EMAIL} / {DEMO_PASSWORD}\n", flush=True)
    app.run(host=settings.host, port=settings.port, debug=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
