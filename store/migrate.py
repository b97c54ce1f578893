"""Apply the store's schema migrations: `python -m store.migrate` or `migrate(store)`."""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime

from store.facts import FactStore, open_store
from store.migrations import MIGRATIONS, MIGRATIONS_TABLE, Migration

log = logging.getLogger(__name__)


def applied_versions(store: FactStore) -> set[int]:
    """Return the versions already recorded in schema_migrations."""
    store.transport.command(MIGRATIONS_TABLE)
    result = store.transport.query("SELECT version FROM schema_migrations FINAL")
    return {int(row[0]) for row in result.rows}


def migrate(store: FactStore, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply every migration not yet recorded, in order; return the versions applied now."""
    done = applied_versions(store)
    applied = []
    for migration in sorted(migrations, key=lambda m: m.version):
        if migration.version in done:
            continue
        for statement in migration.statements:
            store.transport.command(statement)
        # Recorded after its statements: a crash in between re-runs them, which is harmless.
        store.transport.insert(
            "schema_migrations",
            ("version", "name", "applied_at"),
            [(migration.version, migration.name, datetime.now(UTC))],
        )
        log.info("store migration %04d_%s applied", migration.version, migration.name)
        applied.append(migration.version)
    return applied


def main(argv: list[str] | None = None) -> int:
    """Migrate the store named by STORE_URL (or --url)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="store URL; default: STORE_URL from the settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.url:
        url = args.url
    else:
        from settings import Settings

        url = Settings.from_env().store_url
    with open_store(url, migrate=False) as store:
        applied = migrate(store)
        log.info("store %s: %d migration(s) applied", store.database, len(applied))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
