"""Migrations on SQLite and PostgreSQL, and the constraints they create."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import create_app
from db.migrate import DatabaseNotMigrated, head_revision, upgrade
from db.models import Prompt, PromptEvaluation, PromptTrace, User
from db.session import make_engine
from settings import Settings

from .conftest import TEST_SECRET


def _prompt(**overrides: object) -> Prompt:
    values: dict[str, object] = {
        "name": "support-answer",
        "version": "v1",
        "template": "Answer {question}",
        "template_hash": "a" * 64,
    }
    values.update(overrides)
    return Prompt(**values)


def check_schema_and_constraints(url: str) -> None:
    """Migrate `url` from empty, then prove every unique and foreign-key constraint."""
    upgrade(url)
    engine = make_engine(url)
    try:
        inspector = sa.inspect(engine)
        assert {"users", "prompts", "prompt_traces", "prompt_evaluations"} <= set(
            inspector.get_table_names()
        )
        with engine.connect() as conn:
            version = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
        assert version == head_revision()

        with Session(engine, expire_on_commit=False) as db:
            prompt = _prompt()
            db.add(prompt)
            db.add(User(email="a@x.io", display_name="A", password_hash="h", role="viewer"))
            db.commit()
            db.add(PromptTrace(prompt_id=prompt.id, phoenix_trace_id="t1", project="p"))
            db.add(PromptEvaluation(prompt_id=prompt.id, phoenix_eval_id="e1"))
            db.commit()

        duplicates = [
            User(email="a@x.io", display_name="B", password_hash="h", role="viewer"),
            _prompt(name="other-name"),
            PromptTrace(prompt_id=prompt.id, phoenix_trace_id="t1", project="q"),
            PromptEvaluation(prompt_id=prompt.id, phoenix_eval_id="e1"),
        ]
        for row in duplicates:
            with Session(engine) as db, pytest.raises(IntegrityError):
                db.add(row)
                db.commit()

        orphans = [
            PromptTrace(prompt_id=uuid.uuid4(), phoenix_trace_id="t2", project="p"),
            PromptEvaluation(prompt_id=uuid.uuid4(), phoenix_eval_id="e2"),
        ]
        for row in orphans:
            with Session(engine) as db, pytest.raises(IntegrityError):
                db.add(row)
                db.commit()

        with Session(engine) as db, pytest.raises(IntegrityError):
            db.add(User(email="r@x.io", display_name="R", password_hash="h", role="owner"))
            db.commit()

        # Deleting a prompt removes its links instead of leaving dangling rows.
        with Session(engine) as db:
            db.delete(db.get(Prompt, prompt.id))
            db.commit()
            assert db.scalar(sa.select(sa.func.count()).select_from(PromptTrace)) == 0
            assert db.scalar(sa.select(sa.func.count()).select_from(PromptEvaluation)) == 0
    finally:
        engine.dispose()


def test_sqlite_migrates_and_enforces_constraints(tmp_path) -> None:
    check_schema_and_constraints(f"sqlite:///{tmp_path / 'fresh.db'}")


@pytest.mark.integration
def test_postgresql_migrates_and_enforces_constraints(pg_url: str) -> None:
    check_schema_and_constraints(pg_url)


def test_migrations_downgrade_to_empty_and_back(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    upgrade(url)
    from alembic import command

    from db.migrate import alembic_config

    command.downgrade(alembic_config(url), "base")
    engine = make_engine(url)
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(url)


def test_unmigrated_database_refuses_to_start_and_names_the_command(
    tmp_path, store_db_url: str
) -> None:
    settings = Settings.from_env(
        {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
            "STORE_URL": store_db_url,
            "PHOENIX_ENABLED": "false",
        }
    )
    with pytest.raises(DatabaseNotMigrated, match="make migrate"):
        create_app(settings)
