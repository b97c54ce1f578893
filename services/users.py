"""Query functions for dashboard users; each takes the session it works in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from db.models import ROLES, User, utcnow

MIN_PASSWORD_LENGTH = 8
# Compared against when the account does not exist, so timing does not reveal which emails exist.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class UserError(ValueError):
    """A user operation was refused; the message says why."""


def normalize_email(email: str) -> str:
    """Return the canonical form of an email address."""
    return email.strip().lower()


def check_role(role: str) -> str:
    """Return the role if it is known, else raise UserError."""
    if role not in ROLES:
        raise UserError(f"Unknown role {role!r}; use one of: {', '.join(ROLES)}")
    return role


def get_by_email(session: Session, email: str) -> User | None:
    """Find a user by email."""
    return session.scalar(select(User).where(User.email == normalize_email(email)))


def get_by_id(session: Session, user_id: int) -> User | None:
    """Find a user by id."""
    return session.get(User, user_id)


def create_user(
    session: Session, email: str, password: str, *, role: str = "viewer", display_name: str = ""
) -> User:
    """Create a user with a hashed password."""
    email = normalize_email(email)
    if "@" not in email or len(email) > 320:
        raise UserError(f"{email!r} is not a valid email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters")
    if get_by_email(session, email) is not None:
        raise UserError(f"A user with email {email} already exists")
    user = User(
        email=email,
        display_name=display_name.strip() or email.split("@")[0],
        password_hash=generate_password_hash(password),
        role=check_role(role),
        active=True,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[User]:
    """Return every user, ordered by email."""
    return list(session.scalars(select(User).order_by(User.email)))


def end_all_sessions(user: User) -> None:
    """Move the user's session epoch, so every sign-in and token made before ends at once."""
    user.session_epoch = (user.session_epoch or 0) + 1


def set_role(session: Session, email: str, role: str) -> User:
    """Change a user's role; their sessions end, so no page runs on with the old role."""
    user = _require(session, email)
    if user.role != check_role(role):
        user.role = role
        end_all_sessions(user)
    return user


def set_active(session: Session, email: str, active: bool) -> User:
    """Activate or deactivate a user; a deactivated user loses access at the next request."""
    user = _require(session, email)
    if user.active and not active:
        end_all_sessions(user)
    user.active = active
    return user


def set_password(session: Session, email: str, password: str) -> User:
    """Set a new password and end every session begun with the old one."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters")
    user = _require(session, email)
    user.password_hash = generate_password_hash(password)
    end_all_sessions(user)
    return user


def sign_out_everywhere(session: Session, email: str) -> User:
    """End every session and token of the user."""
    user = _require(session, email)
    end_all_sessions(user)
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """Return the active user whose password matches, recording the login time."""
    # No address holds a control character, and PostgreSQL refuses a NUL in a query.
    user = get_by_email(session, email) if email.isprintable() else None
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    user.last_login_at = utcnow()
    return user


def _require(session: Session, email: str) -> User:
    user = get_by_email(session, email)
    if user is None:
        raise UserError(f"No user with email {normalize_email(email)}")
    return user
