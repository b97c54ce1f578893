"""Saved views: a page's filters under a name, personal or shared, and each user's default.

Anyone signed in may save personal views; sharing a view with the team is for members and
admins (a viewer's views stay personal). A view stores the URL query as FilterState writes it,
so opening one is opening a link, and a prompt that has since gone shows the page's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from sqlalchemy import delete as sql_delete
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.models import DefaultView, SavedView, User, utcnow
from services.filters import CONTROL_CHARACTERS, parse_query

# The pages whose filter bar can save views; the page name is also its path.
PAGES = ("analytics", "traces", "evaluations")
MAX_NAME_LENGTH = 200
# Who may share a view with the team.
SHARERS = frozenset({"member", "admin"})


class SavedViewError(ValueError):
    """A view that cannot be saved, opened or changed, with a message to show."""


@dataclass(frozen=True)
class ViewEntry:
    """A view as a list shows it: whose it is and where it leads."""

    id: int
    page: str
    name: str
    query: str
    shared: bool
    owner_id: int
    owner_name: str
    mine: bool

    @property
    def path(self) -> str:
        """Return the page path with the view's query, relative to the app's root."""
        return f"/{self.page}{self.query}"


def check_page(page: str) -> str:
    """Return the page if its filters can be saved, else raise SavedViewError."""
    if page not in PAGES:
        raise SavedViewError(
            f"Page {page!r} has no filters to save; use one of: {', '.join(PAGES)}"
        )
    return page


def check_name(name: object) -> str:
    """Return a view name trimmed, or raise SavedViewError saying what is wrong with it."""
    text = name.strip() if isinstance(name, str) else ""
    if not text:
        raise SavedViewError("Name the view.")
    if len(text) > MAX_NAME_LENGTH:
        raise SavedViewError(f"A view name holds at most {MAX_NAME_LENGTH} characters.")
    if CONTROL_CHARACTERS.search(text):
        raise SavedViewError("A view name cannot hold control characters.")
    return text


def normalise_query(query: str | None) -> str:
    """Re-render a URL query through the filters' parser, keeping only what a link may hold."""
    parsed = {k: v[-1] for k, v in parse_qs((query or "").lstrip("?")).items()}
    return parse_query(parsed)[0].query_string()


def _entry(view: SavedView, owner: User, user_id: int) -> ViewEntry:
    return ViewEntry(
        id=view.id,
        page=view.page,
        name=view.name,
        query=view.query,
        shared=view.shared,
        owner_id=view.owner_id,
        owner_name=owner.display_name or owner.email,
        mine=view.owner_id == user_id,
    )


def _user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None or not user.active:
        raise SavedViewError("Sign in to save views.")
    return user


def save(
    db: Session, user_id: int, page: str, name: str, query: str | None, shared: bool = False
) -> ViewEntry:
    """Save the filters under a name, replacing the user's view of that name on the page."""
    check_page(page)
    name = check_name(name)
    user = _user(db, user_id)
    if shared and user.role not in SHARERS:
        raise SavedViewError("Only members and admins can share a view; save it as personal.")
    normalised = normalise_query(query)
    view = db.scalar(
        select(SavedView).where(
            SavedView.owner_id == user_id, SavedView.page == page, SavedView.name == name
        )
    )
    if view is None:
        view = SavedView(owner_id=user_id, page=page, name=name, query=normalised, shared=shared)
        db.add(view)
    else:
        view.query, view.shared, view.updated_at = normalised, shared, utcnow()
    db.flush()
    return _entry(view, user, user_id)


def _visible(db: Session, user_id: int, page: str | None = None) -> list[ViewEntry]:
    query = (
        select(SavedView, User)
        .join(User, User.id == SavedView.owner_id)
        .where(or_(SavedView.owner_id == user_id, SavedView.shared.is_(True)))
        .order_by(SavedView.page, SavedView.name, SavedView.id)
    )
    if page is not None:
        query = query.where(SavedView.page == page)
    return [_entry(view, owner, user_id) for view, owner in db.execute(query)]


def list_for(db: Session, user_id: int, page: str) -> list[ViewEntry]:
    """List the views of a page the user can open: their own, then those the team shares."""
    views = _visible(db, user_id, check_page(page))
    return [v for v in views if v.mine] + [v for v in views if not v.mine]


def list_all(db: Session, user_id: int) -> list[ViewEntry]:
    """List every view the user can open, on every page, their own first."""
    views = _visible(db, user_id)
    return [v for v in views if v.mine] + [v for v in views if not v.mine]


def get(db: Session, user_id: int, view_id: int) -> ViewEntry:
    """Return a view the user can open, or raise SavedViewError."""
    row = db.execute(
        select(SavedView, User)
        .join(User, User.id == SavedView.owner_id)
        .where(SavedView.id == view_id)
    ).first()
    if row is None or not (row[0].owner_id == user_id or row[0].shared):
        raise SavedViewError("That view no longer exists or is not shared with you.")
    return _entry(row[0], row[1], user_id)


def delete(db: Session, user_id: int, view_id: int) -> None:
    """Delete a view; only its owner may."""
    view = db.get(SavedView, view_id)
    if view is None:
        raise SavedViewError("That view no longer exists.")
    if view.owner_id != user_id:
        raise SavedViewError("Only the owner of a view can delete it.")
    # Explicitly, not only by the foreign key: SQLite enforces it only when told to.
    db.execute(sql_delete(DefaultView).where(DefaultView.view_id == view_id))
    db.delete(view)
    db.flush()


def set_default(db: Session, user_id: int, page: str, view_id: int | None) -> None:
    """Open the page with this view when its URL names no filters (None: with none)."""
    check_page(page)
    current = db.get(DefaultView, (user_id, page))
    if view_id is None:
        if current is not None:
            db.delete(current)
        db.flush()
        return
    view = get(db, user_id, view_id)
    if view.page != page:
        raise SavedViewError(f"View {view.name!r} is a view of {view.page}, not of {page}.")
    if current is None:
        db.add(DefaultView(user_id=user_id, page=page, view_id=view_id))
    else:
        current.view_id = view_id
    db.flush()


def default_for(db: Session, user_id: int, page: str) -> ViewEntry | None:
    """Return the user's default view of a page, if they still can open it."""
    current = db.get(DefaultView, (user_id, check_page(page)))
    if current is None:
        return None
    try:
        return get(db, user_id, current.view_id)
    except SavedViewError:
        # Unshared or deleted by its owner since: the page opens as if there were none.
        return None
