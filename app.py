"""Application factory: `create_app()` builds the Dash app; importing this module does nothing."""

from __future__ import annotations

import functools
import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import dash
import flask_bootstrap
from dash.exceptions import DependencyException
from flask import Flask, Response, has_request_context, send_from_directory
from flask_login import current_user
from flask_wtf.csrf import generate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import Map

from components import shell, table
from components.shell import create_display_settings, create_navbar, create_shell
from db.migrate import DatabaseNotMigrated, ensure_migrated
from db.session import make_engine, make_session_factory
from services import (
    auth,
    cache,
    export,
    monitor_api,
    monitors,
    proxy,
    security,
    user_settings,
)
from services.cli import prompts_cli, sync_cli, users_cli
from services.container import Services, get_services
from services.phoenix import PhoenixClient
from services.sync import PromptSync
from services.sync_worker import start_worker_on_first_request
from settings import PROJECT_DIR, Settings, SettingsError
from store.facts import open_store
from store.transport import StoreError

log = logging.getLogger(__name__)
# Bootstrap 5 CSS and icons come from the installed bootstrap-flask wheel, never from a CDN.
VENDOR_DIR = Path(flask_bootstrap.__file__).parent / "static" / "bootstrap5"
STYLESHEETS = ["/vendor/css/bootstrap.min.css", "/vendor/css/font/bootstrap-icons.min.css"]


class UnmergedSlashesMap(Map):
    """A URL map that keeps "//" in paths, so the proxy refuses them rather than reroutes them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


class DashboardFlask(Flask):
    """Flask with the URL map above."""

    url_map_class = UnmergedSlashesMap


def create_server(settings: Settings) -> Flask:
    """Build the Flask server with login, the guard, health and the user CLI."""
    # No Flask static folder: Dash serves /assets and /vendor serves Bootstrap.
    server = DashboardFlask(
        __name__, template_folder=str(PROJECT_DIR / "templates"), static_folder=None
    )
    server.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_SECURE=settings.session_cookie_secure,
        REMEMBER_COOKIE_HTTPONLY=True,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_lifetime_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        TESTING=settings.testing,
    )
    if settings.trusted_proxies:
        # The client's own address, scheme and host, as the proxies in front saw them: the
        # login limit counts per address, and the CSRF origin check compares hosts.
        hops = settings.trusted_proxies
        server.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            server.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    engine = make_engine(settings.database_url)
    ensure_migrated(engine)
    phoenix = (
        PhoenixClient(
            settings.phoenix_url,
            api_key=settings.phoenix_api_key,
            connect_timeout_s=settings.phoenix_connect_timeout_s,
            read_timeout_s=settings.phoenix_read_timeout_s,
        )
        if settings.phoenix_enabled
        else None
    )
    sessions = make_session_factory(engine)
    # Migrated at start-up, like the database: every statement is safe to run twice, so
    # replicas starting together are fine.
    store = open_store(settings.store_url)
    sync = (
        PromptSync(phoenix, sessions, store, name_attribute=settings.prompt_name_attribute)
        if phoenix is not None
        else None
    )
    Services(settings, engine, sessions, phoenix, sync, store).init_app(server)
    cache.init_app(server, settings)
    auth.init_app(server)
    proxy.init_app(server, settings)
    server.register_blueprint(export.bp)
    server.register_blueprint(monitor_api.bp)
    server.register_blueprint(user_settings.bp)
    server.cli.add_command(users_cli)
    server.cli.add_command(prompts_cli)
    server.cli.add_command(sync_cli)
    if sync is not None and settings.sync_worker:
        start_worker_on_first_request(server, sync, settings)

    @server.get("/healthz")
    def healthz() -> Response:
        """Answer the liveness probe without touching Phoenix."""
        return Response("ok\n", mimetype="text/plain")

    @server.get("/vendor/<path:filename>")
    def vendor(filename: str) -> Response:
        """Serve Bootstrap's CSS, icons and fonts from the installed package."""
        return send_from_directory(VENDOR_DIR, filename, max_age=86400)

    return server


def create_app(settings: Settings | None = None) -> dash.Dash:
    """Build the Dash app and its Flask server."""
    settings = settings or Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings.check_secret()
    if settings.uses_dev_secret:
        log.warning("SECRET_KEY is the built-in development key (DEV_MODE is on)")
    server = create_server(settings)
    app = dash.Dash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash's hints omit Flask instances
        use_pages=True,
        pages_folder=str(PROJECT_DIR / "pages"),
        assets_folder=str(PROJECT_DIR / "assets"),
        external_stylesheets=STYLESHEETS,
        title="Prompt Analytics",
        update_title=None,  # type: ignore[arg-type]  # None turns the title flicker off
        suppress_callback_exceptions=True,
    )

    def serve_layout() -> dash.html.Div:
        """Build the shell for the signed-in user on every page load."""
        name = current_user.display_name if current_user.is_authenticated else ""
        firing = 0
        if current_user.is_authenticated:
            with get_services(server).sessions() as db:
                firing = monitors.firing_count(db)
        navbar = create_navbar(
            dash.page_registry.values(),
            phoenix_enabled=settings.phoenix_enabled,
            user_name=name,
            csrf_token=generate_csrf() if has_request_context() else "",
            firing=firing,
        )
        display = create_display_settings(
            user_settings.current_theme(),
            user_settings.current_zone(),
            user_settings.zone_options() if current_user.is_authenticated else [],
            signed_in=bool(current_user.is_authenticated),
        )
        return create_shell(navbar, settings.poll_interval_s, display)

    app.layout = serve_layout
    table.init_app(app)
    shell.init_app(app)
    # Dash adds inline scripts (Pages' title callback) when it first serves a page, so their
    # hashes are read per response (a few short strings to hash).
    security.init_app(
        server, app.csp_hashes, callback_max_body_bytes=settings.callback_max_body_bytes
    )
    # Dash raises on an unknown component-suite path; that is a client's 404, not our 500.
    server.register_error_handler(
        DependencyException, lambda _exc: Response("Not found\n", 404, mimetype="text/plain")
    )
    return app


@functools.cache
def _default_server() -> Flask:
    """Build the app once from the environment for gunicorn and the flask CLI."""
    return create_app().server


def __getattr__(name: str) -> Flask:
    """Build the server lazily for `gunicorn app:server` and `flask --app app`."""
    if name in ("server", "application"):
        try:
            return _default_server()
        except (DatabaseNotMigrated, SettingsError, StoreError) as exc:
            # One clear sentence for the operator instead of a traceback; gunicorn then stops.
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(1) from None
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Serve the development server."""
    try:
        settings = Settings.from_env()
        app = create_app(settings)
    except (DatabaseNotMigrated, SettingsError, StoreError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    app.run(host=settings.host, port=settings.port, debug=False)


if __name__ == "__main__":
    main()
