"""Create users, prompts, prompt_traces and prompt_evaluations.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 13:08:40.593915
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "prompts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("template_hash", sa.String(length=64), nullable=False),
        sa.Column("phoenix_prompt_id", sa.String(length=200), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
        sa.UniqueConstraint("template_hash", "version", name="uq_prompts_hash_version"),
    )
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prompts_template_hash"), ["template_hash"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=512), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('viewer', 'member', 'admin')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "prompt_evaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("phoenix_eval_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_evaluations_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_evaluations")),
        sa.UniqueConstraint("phoenix_eval_id", name=op.f("uq_prompt_evaluations_phoenix_eval_id")),
    )
    with op.batch_alter_table("prompt_evaluations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_prompt_evaluations_prompt_id"), ["prompt_id"], unique=False
        )

    op.create_table(
        "prompt_traces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=False),
        sa.Column("phoenix_trace_id", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_prompt_traces_prompt_id_prompts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_traces")),
        sa.UniqueConstraint("phoenix_trace_id", name=op.f("uq_prompt_traces_phoenix_trace_id")),
    )
    with op.batch_alter_table("prompt_traces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_traces_prompt_id"), ["prompt_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("prompt_traces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_traces_prompt_id"))

    op.drop_table("prompt_traces")
    with op.batch_alter_table("prompt_evaluations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_evaluations_prompt_id"))

    op.drop_table("prompt_evaluations")
    op.drop_table("users")
    with op.batch_alter_table("prompts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompts_template_hash"))

    op.drop_table("prompts")
