"""SQLAlchemy 2 models for the dashboard's own tables."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
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
    # Moves on "sign out everywhere", deactivation, password change and role change; every
    # login session (and so every token) begun under an older epoch stops at its next request.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Display settings, remembered per user: "auto" follows the browser, else light or dark.
    theme: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    # An IANA zone name; None follows the browser's zone.
    timezone: Mapped[str | None] = mapped_column(String(64))


class LoginSession(Base):
    """One sign-in: the cookie and the tokens minted from it live exactly as long as this row."""

    __tablename__ = "login_sessions"

    # SHA-256 of the random id in the signed cookie: a copy of this table signs no one in.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


IdentitySource = Literal["registry", "prompt.id", "attribute", "template", "manual"]
IDENTITY_SOURCES: tuple[str, ...] = get_args(IdentitySource)


class PromptIdentity(Base):
    """A prompt as analysts know it: every wording and version of it, under one unique name."""

    __tablename__ = "prompt_identities"
    __table_args__ = (
        CheckConstraint(
            "source IN ('registry', 'prompt.id', 'attribute', 'template', 'manual')",
            name="source",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # What spans carry that names this prompt (services/prompt_identity.py lists the forms):
    # a template group whose spans carry the same key belongs here unless an admin moved it.
    key: Mapped[str] = mapped_column(String(600), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str | None] = mapped_column(String(2000))
    # Set when an admin merged every group of this prompt into another: new groups whose spans
    # carry this key join that one too. Cleared by an undo.
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prompt_identities.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prompt(Base):
    """One template group: a template wording with one version label, as spans name it.

    Spans link to a group; the group belongs to a prompt identity and shows a version label.
    Both can be changed by an admin (merge, relabel) and are applied when pages query, so past
    spans follow without a resync.
    """

    __tablename__ = "prompts"
    __table_args__ = (
        UniqueConstraint(
            "template_hash", "version", "identity_key", name="uq_prompts_hash_version_identity"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    # The identity's name when the group was created; pages use the identity's current name.
    name: Mapped[str] = mapped_column(String(200))
    # The version as spans state it (or the registry's, or "unversioned"): part of the key.
    version: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(Text)
    # SHA-256 of the template; "" for spans that name a prompt but carry no template.
    template_hash: Mapped[str] = mapped_column(String(64), index=True)
    phoenix_prompt_id: Mapped[str | None] = mapped_column(String(200))
    # The identity key the group's spans carry (part of the key: one wording can serve two
    # prompts that name themselves differently).
    identity_key: Mapped[str] = mapped_column(String(600), default="", server_default="")
    identity_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prompt_identities.id", ondelete="SET NULL"), index=True
    )
    # The version label pages show and compare by; an admin may change it.
    label: Mapped[str] = mapped_column(String(100), default="", server_default="")
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    # The database cascades deletes; the ORM must not null the foreign keys first.
    traces: Mapped[list[PromptTrace]] = relationship(
        back_populates="prompt", cascade="all, delete-orphan", passive_deletes=True
    )
    evaluations: Mapped[list[PromptEvaluation]] = relationship(
        back_populates="prompt", cascade="all, delete-orphan", passive_deletes=True
    )


class PromptChange(Base):
    """One admin change to prompt identities (merge, relabel, rename, undo): who, when, what.

    `before` and `after` are JSON snapshots of the rows the change touched; an undo writes
    `before` back when the rows still hold `after`.
    """

    __tablename__ = "prompt_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_changes.id"))
    undone_by_id: Mapped[int | None] = mapped_column(ForeignKey("prompt_changes.id"))


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


class SyncState(Base):
    """How far the sync has read one Phoenix project, in insertion order."""

    __tablename__ = "sync_state"

    project: Mapped[str] = mapped_column(String(200), primary_key=True)
    # The Relay id of the last span read; Phoenix's cursor includes this row, so it is dropped.
    cursor: Mapped[str | None] = mapped_column(String(200))
    spans_read: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncStatus(Base):
    """The one row that tells pages whether anything changed, and how the sync fares."""

    __tablename__ = "sync_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    # Grows whenever a tick changes data; pages redraw only when it moves.
    watermark: Mapped[int] = mapped_column(BigInteger, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # host:pid of the process that last synced: shows which replica holds the lock.
    synced_by: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SpanFact(Base):
    """The few facts of one Phoenix LLM span that charts aggregate."""

    __tablename__ = "span_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phoenix_span_id: Mapped[str] = mapped_column(String(32), unique=True)
    phoenix_trace_id: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str] = mapped_column(String(200), index=True)
    prompt_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("prompts.id", ondelete="SET NULL"), index=True
    )
    prompt_version: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    cost: Mapped[float | None] = mapped_column(Float)
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class AnnotationFact(Base):
    """Name, label and score of one Phoenix span annotation on an LLM span."""

    __tablename__ = "annotation_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phoenix_annotation_id: Mapped[str] = mapped_column(String(200), unique=True)
    phoenix_span_id: Mapped[str] = mapped_column(String(32), index=True)
    project: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), index=True)
    annotator_kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(200))
    score: Mapped[float | None] = mapped_column(Float)
    explanation: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# Monitors ----------------------------------------------------------------------------------------

MonitorState = Literal["ok", "firing", "resolved", "insufficient"]
MONITOR_STATES: tuple[str, ...] = get_args(MonitorState)


class Channel(Base):
    """Where notifications go: a signed JSON webhook, a Slack incoming webhook, or email."""

    __tablename__ = "channels"
    __table_args__ = (CheckConstraint("kind IN ('webhook', 'slack', 'email')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The webhook URL or the email addresses; a Slack URL is a secret and lives in `secret`.
    target: Mapped[str] = mapped_column(Text, default="")
    # Encrypted with a key derived from SECRET_KEY (services/secret_box.py), or "env:NAME" to
    # read it from the environment at send time. Never sent back to a browser.
    secret: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Monitor(Base):
    """One watched metric of one prompt, with its rule, channels and current state."""

    __tablename__ = "monitors"
    __table_args__ = (
        CheckConstraint("state IN ('ok', 'firing', 'resolved', 'insufficient')", name="state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # The whole definition as validated JSON (services/monitor_rules.py reads and writes it).
    spec: Mapped[str] = mapped_column(Text)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default="insufficient")
    # Bumps on every change of state; a notification is keyed by (monitor, transition, channel).
    transition: Mapped[int] = mapped_column(Integer, default=0)
    state_since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last evaluation's numbers (JSON), shown on the alerts page and in notifications.
    last_result: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class MonitorChannel(Base):
    """A channel a monitor notifies."""

    __tablename__ = "monitor_channels"

    monitor_id: Mapped[int] = mapped_column(
        ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )


class MonitorPoint(Base):
    """One evaluation's numbers, for the alerts page's sparklines (old points are pruned)."""

    __tablename__ = "monitor_points"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(
        ForeignKey("monitors.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    candidate: Mapped[float | None] = mapped_column(Float)
    baseline: Mapped[float | None] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16))


class MonitorEvent(Base):
    """A change of a monitor's state: the history of firings."""

    __tablename__ = "monitor_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(
        ForeignKey("monitors.id", ondelete="CASCADE"), index=True
    )
    transition: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    # The evaluation that caused it (JSON): values, interval, n per side, method, link.
    result: Mapped[str] = mapped_column(Text)


class Notification(Base):
    """One message to one channel, kept until delivered: the outbox survives restarts.

    (monitor, transition, channel) is unique, so a state change enqueued twice (two replicas,
    a retried tick) is one message; a test notification has no monitor transition.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "monitor:<id>:<transition>:channel:<id>" or "test:<uuid>": what makes it one message.
    dedupe_key: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), index=True
    )
    monitor_id: Mapped[int | None] = mapped_column(ForeignKey("monitors.id", ondelete="SET NULL"))
    event: Mapped[str] = mapped_column(String(16))  # firing, resolved, test
    payload: Mapped[str] = mapped_column(Text)  # JSON, as the webhook receives it
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Saved views ----------------------------------------------------------------------------------


class SavedView(Base):
    """A page's filters under a name: a user's own, or shared with the team."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("owner_id", "page", "name", name="uq_saved_views_owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    page: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    # The page's URL query as services/filters.FilterState writes it ("?project=...").
    query: Mapped[str] = mapped_column(Text)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DefaultView(Base):
    """The view a user's page opens with when its URL names no filters."""

    __tablename__ = "default_views"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    page: Mapped[str] = mapped_column(String(32), primary_key=True)
    view_id: Mapped[int] = mapped_column(ForeignKey("saved_views.id", ondelete="CASCADE"))
