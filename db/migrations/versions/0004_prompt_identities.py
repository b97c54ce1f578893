"""Add prompt identities, the admin's change log, and each template group's identity and label.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 16:00:00

Existing groups keep their ids (the facts point at them) and get the identity they had: the
registry prompt they were linked to, else their template.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "prompt_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=600), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("merged_into_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('registry', 'prompt.id', 'attribute', 'template', 'manual')",
            name=op.f("ck_prompt_identities_source"),
        ),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["prompt_identities.id"],
            name=op.f("fk_prompt_identities_merged_into_id_prompt_identities"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_identities")),
        sa.UniqueConstraint("key", name=op.f("uq_prompt_identities_key")),
        sa.UniqueConstraint("name", name=op.f("uq_prompt_identities_name")),
    )
    op.create_table(
        "prompt_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("undoes_id", sa.Integer(), nullable=True),
        sa.Column("undone_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["undoes_id"],
            ["prompt_changes.id"],
            name=op.f("fk_prompt_changes_undoes_id_prompt_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["undone_by_id"],
            ["prompt_changes.id"],
            name=op.f("fk_prompt_changes_undone_by_id_prompt_changes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_changes")),
    )
    with op.batch_alter_table("prompt_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_changes_at"), ["at"], unique=False)
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("identity_key", sa.String(length=600), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("identity_id", sa.Uuid(), nullable=True))
        batch_op.add_column(
            sa.Column("label", sa.String(length=100), server_default="", nullable=False)
        )
        batch_op.drop_constraint("uq_prompts_hash_version", type_="unique")
        batch_op.create_unique_constraint(
            "uq_prompts_hash_version_identity", ["template_hash", "version", "identity_key"]
        )
        batch_op.create_index(batch_op.f("ix_prompts_identity_id"), ["identity_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_prompts_identity_id_prompt_identities"),
            "prompt_identities",
            ["identity_id"],
            ["id"],
            ondelete="SET NULL",
        )
    _adopt_existing_groups()


def _adopt_existing_groups() -> None:
    """Give every existing group the identity it had: its registry prompt, else its template."""
    bind = op.get_bind()
    prompts = sa.table(
        "prompts",
        sa.column("id", sa.Uuid()),
        sa.column("name", sa.String()),
        sa.column("version", sa.String()),
        sa.column("template_hash", sa.String()),
        sa.column("phoenix_prompt_id", sa.String()),
        sa.column("identity_key", sa.String()),
        sa.column("identity_id", sa.Uuid()),
        sa.column("label", sa.String()),
    )
    identities = sa.table(
        "prompt_identities",
        sa.column("id", sa.Uuid()),
        sa.column("key", sa.String()),
        sa.column("source", sa.String()),
        sa.column("name", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    rows = bind.execute(
        sa.select(
            prompts.c.id,
            prompts.c.name,
            prompts.c.version,
            prompts.c.template_hash,
            prompts.c.phoenix_prompt_id,
        ).order_by(prompts.c.name, prompts.c.id)
    ).all()
    by_key: dict[str, uuid.UUID] = {}
    taken: set[str] = set()
    now = datetime.now(UTC)
    for row_id, name, version, digest, phoenix_id in rows:
        if phoenix_id:
            key, source = f"registry:{phoenix_id}", "registry"
        else:
            key, source = f"template:{digest}", "template"
        if key not in by_key:
            unique, n = name, 2
            while unique in taken:
                unique, n = f"{name} ({n})", n + 1
            taken.add(unique)
            by_key[key] = uuid.uuid4()
            bind.execute(
                identities.insert().values(
                    id=by_key[key], key=key, source=source, name=unique, created_at=now
                )
            )
        bind.execute(
            prompts.update()
            .where(prompts.c.id == row_id)
            .values(identity_key=key, identity_id=by_key[key], label=version)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_prompts_identity_id_prompt_identities"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_prompts_identity_id"))
        batch_op.drop_constraint("uq_prompts_hash_version_identity", type_="unique")
        batch_op.create_unique_constraint("uq_prompts_hash_version", ["template_hash", "version"])
        batch_op.drop_column("label")
        batch_op.drop_column("identity_id")
        batch_op.drop_column("identity_key")
    with op.batch_alter_table("prompt_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_changes_at"))
    op.drop_table("prompt_changes")
    op.drop_table("prompt_identities")
