"""The per-app bundle of services, reachable from any request or CLI command."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.phoenix import PhoenixClient
from services.sync import PromptSync
from settings import Settings
from store.facts import FactStore

EXTENSION_KEY = "dashboard"


@dataclass(frozen=True)
class Services:
    """Everything a page or command needs, injected by the app factory."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    # None when PHOENIX_ENABLED is off, so no code path can reach Phoenix by accident.
    phoenix: PhoenixClient | None
    sync: PromptSync | None
    # The facts (spans, annotations), always open: pages read them with Phoenix on or off.
    store: FactStore

    def init_app(self, server: Flask) -> None:
        """Attach these services to a Flask app."""
        server.extensions[EXTENSION_KEY] = self


def get_services(app: Flask | None = None) -> Services:
    """Return the services of the given or current app."""
    services: Services = (app or current_app).extensions[EXTENSION_KEY]
    return services
