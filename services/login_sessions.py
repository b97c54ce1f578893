"""Login sessions in our database: what a signed cookie or token must still match to count."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from db.models import LoginSession, User, utcnow


@dataclass(frozen=True)
class LiveUser:
    """A user whose sign-in is live, detached from the database."""

    id: int
    email: str
    display_name: str
    role: str


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def begin(db: Session, user: User) -> str:
    """Record a new sign-in of `user` and return the random id its cookie carries."""
    # Rows that can never match again are dropped here, so the table holds live sessions only.
    db.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user.id,
            or_(LoginSession.ended_at.is_not(None), LoginSession.epoch != user.session_epoch),
        )
    )
    sid = secrets.token_urlsafe(32)
    db.add(LoginSession(id=_digest(sid), user_id=user.id, epoch=user.session_epoch))
    return sid


def end(db: Session, sid: str) -> None:
    """End one sign-in: its cookie and the tokens minted from it stop working."""
    db.execute(
        update(LoginSession)
        .where(LoginSession.id == _digest(sid), LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def live_user(db: Session, user_id: int, sid: str) -> LiveUser | None:
    """Return the user if this sign-in is still live, in one query by primary keys."""
    row = db.execute(
        select(User.id, User.email, User.display_name, User.role)
        .join(LoginSession, LoginSession.user_id == User.id)
        .where(
            User.id == user_id,
            User.active.is_(True),
            LoginSession.id == _digest(sid),
            LoginSession.ended_at.is_(None),
            LoginSession.epoch == User.session_epoch,
        )
    ).one_or_none()
    return None if row is None else LiveUser(*row)
