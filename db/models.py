"""SQLAlchemy 2 models for the dashboard's own tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

Role = Literal["viewer", "member", "admin"]
ROLES: tuple[str, ...] = get_args(Role)


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with stable constraint names, so migrations can refer to them."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    """A person who logs in to the dashboard."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'member', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(512))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Prompt(Base):
    """One version of a prompt template, identified by its template hash."""

    __tablename__ = "prompts"
    __table_args__ = (UniqueConstraint("template_hash", "version", name="uq_prompts_hash_version"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(Text)
    template_hash: Mapped[str] = mapped_column(String(64), index=True)
    phoenix_prompt_id: Mapped[str | None] = mapped_column(String(200))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # The database cascades deletes; the ORM must not null the foreign keys first.
    traces: Mapped[list[PromptTrace]] = relationship(
        back_populates="prompt", cascade="all, delete-orphan", passive_deletes=True
    )
    evaluations: Mapped[list[PromptEvaluation]] = relationship(
        back_populates="prompt", cascade="all, delete-orphan", passive_deletes=True
    )


class PromptTrace(Base):
    """A link from a prompt version to a Phoenix trace."""

    __tablename__ = "prompt_traces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), index=True
    )
    phoenix_trace_id: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prompt: Mapped[Prompt] = relationship(back_populates="traces")


class PromptEvaluation(Base):
    """A link from a prompt version to a Phoenix span annotation."""

    __tablename__ = "prompt_evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prompt_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prompts.id", ondelete="CASCADE"), index=True
    )
    phoenix_eval_id: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prompt: Mapped[Prompt] = relationship(back_populates="evaluations")
