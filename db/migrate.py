"""Run Alembic migrations and refuse to serve an unmigrated database."""

from __future__ import annotations

import logging

import click
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from settings import PROJECT_DIR

MIGRATE_COMMAND = "make migrate  (or: alembic upgrade head)"


class DatabaseNotMigrated(click.ClickException):
    """Raised at start-up when the schema is not at the newest revision."""


def alembic_config(database_url: str) -> Config:
    """Build an Alembic config for a database URL."""
    config = Config(str(PROJECT_DIR / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to a revision."""
    command.upgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    """Return the newest revision in the migrations folder."""
    script = ScriptDirectory.from_config(Config(str(PROJECT_DIR / "alembic.ini")))
    head = script.get_current_head()
    assert head is not None
    return head


def ensure_migrated(engine: Engine) -> None:
    """Raise DatabaseNotMigrated, naming the command to run, unless the schema is current."""
    # Alembic announces its context at INFO on every check; that is noise at start-up.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:  # any driver error means we cannot serve: say why and how
        raise DatabaseNotMigrated(
            f"Cannot open the database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    head = head_revision()
    if current != head:
        state = "has no tables yet" if current is None else f"is at revision {current}"
        raise DatabaseNotMigrated(
            f"The database {engine.url.render_as_string(hide_password=True)} {state}; "
            f"the code needs revision {head}. Run: {MIGRATE_COMMAND}"
        )
