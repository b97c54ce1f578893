"""Add sync_state, sync_status, span_facts and annotation_facts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:48:23.726407
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "annotation_facts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phoenix_annotation_id", sa.String(length=200), nullable=False),
        sa.Column("phoenix_span_id", sa.String(length=32), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("annotator_kind", sa.String(length=16), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_facts")),
        sa.UniqueConstraint(
            "phoenix_annotation_id", name=op.f("uq_annotation_facts_phoenix_annotation_id")
        ),
    )
    with op.batch_alter_table("annotation_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_annotation_facts_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_annotation_facts_phoenix_span_id"), ["phoenix_span_id"], unique=False
        )

    op.create_table(
        "sync_state",
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("cursor", sa.String(length=200), nullable=True),
        sa.Column("spans_read", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("project", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "sync_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_by", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_status")),
    )
    op.create_table(
        "span_facts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phoenix_span_id", sa.String(length=32), nullable=False),
        sa.Column("phoenix_trace_id", sa.String(length=64), nullable=False),
        sa.Column("project", sa.String(length=200), nullable=False),
        sa.Column("prompt_id", sa.Uuid(), nullable=True),
        sa.Column("prompt_version", sa.String(length=100), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cost", sa.Float(), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompts.id"],
            name=op.f("fk_span_facts_prompt_id_prompts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_span_facts")),
        sa.UniqueConstraint("phoenix_span_id", name=op.f("uq_span_facts_phoenix_span_id")),
    )
    with op.batch_alter_table("span_facts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_span_facts_phoenix_trace_id"), ["phoenix_trace_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_span_facts_project"), ["project"], unique=False)
        batch_op.create_index(batch_op.f("ix_span_facts_prompt_id"), ["prompt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_span_facts_start_time"), ["start_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_span_facts_synced_at"), ["synced_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("span_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_span_facts_synced_at"))
        batch_op.drop_index(batch_op.f("ix_span_facts_start_time"))
        batch_op.drop_index(batch_op.f("ix_span_facts_prompt_id"))
        batch_op.drop_index(batch_op.f("ix_span_facts_project"))
        batch_op.drop_index(batch_op.f("ix_span_facts_phoenix_trace_id"))

    op.drop_table("span_facts")
    op.drop_table("sync_status")
    op.drop_table("sync_state")
    with op.batch_alter_table("annotation_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_facts_phoenix_span_id"))
        batch_op.drop_index(batch_op.f("ix_annotation_facts_name"))

    op.drop_table("annotation_facts")
