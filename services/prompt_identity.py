"""Prompt identities as admins shape them: merge groups, relabel, rename, and undo; audited.

Groups (our `prompts` rows, one per template wording and stated version) are what the facts
point at; which prompt each belongs to and which label it shows live here. Every change is one
`prompt_changes` row with who made it, when, and JSON snapshots of the rows before and after;
undo writes the snapshot back when the rows still hold what the change left. Pages read the
result as a PromptMap when they query (store/filters.py), so past spans follow at once.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from db.models import Prompt, PromptChange, PromptIdentity, utcnow
from store import analytics as store_analytics
from store.facts import FactStore
from store.filters import Filters, PromptMap

MAX_NAME = 200
MAX_LABEL = 100
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
HISTORY_ROWS = 50


class PromptIdentityError(ValueError):
    """A change that cannot be made; the message says why, in the user's terms."""


@dataclass(frozen=True)
class Group:
    """One template group as the admin page lists it."""

    id: str
    prompt_id: str
    prompt: str
    source: str
    label: str
    version: str
    template: str
    identity_key: str
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class Change:
    """One audited change, newest first in the history."""

    id: int
    action: str
    summary: str
    actor: str
    at: datetime
    undone: bool
    undoes: int | None


# Reading ------------------------------------------------------------------------------------------


def prompt_map(db: Session) -> PromptMap:
    """Return every group's prompt identity and label, for queries to apply."""
    rows = db.execute(
        select(Prompt.id, Prompt.identity_id, Prompt.label, Prompt.version).order_by(Prompt.id)
    ).all()
    # A group without an identity (a row written by hand) is its own prompt.
    return PromptMap(
        groups=tuple(str(group) for group, _ident, _label, _version in rows),
        prompts=tuple(str(ident or group) for group, ident, _label, _version in rows),
        labels=tuple(label or version for _group, _ident, label, version in rows),
        revision=revision(db),
    )


def revision(db: Session) -> int:
    """Return a number that moves with every admin change to prompts."""
    return int(db.scalar(select(func.max(PromptChange.id))) or 0)


def identity_names(db: Session) -> dict[str, str]:
    """Return every prompt identity's name by its id."""
    rows = db.execute(select(PromptIdentity.id, PromptIdentity.name)).all()
    return {str(ident): name for ident, name in rows}


def groups(db: Session) -> list[Group]:
    """List every group with its prompt, label and template, by prompt name then first seen."""
    rows = db.execute(
        select(Prompt, PromptIdentity.name, PromptIdentity.key)
        .join(PromptIdentity, PromptIdentity.id == Prompt.identity_id)
        .order_by(PromptIdentity.name, Prompt.label, Prompt.first_seen_at, Prompt.id)
    ).all()
    return [
        Group(
            id=str(group.id),
            prompt_id=str(group.identity_id),
            prompt=name,
            # How the spans named it, and whether an admin moved it since.
            source=group.identity_key.partition(":")[0]
            + ("" if key == group.identity_key else ", merged"),
            label=group.label or group.version,
            version=group.version,
            template=group.template,
            identity_key=group.identity_key,
            first_seen_at=group.first_seen_at,
            last_seen_at=group.last_seen_at,
        )
        for group, name, key in rows
    ]


def calls_per_group(store: FactStore) -> dict[str, int]:
    """Count every group's calls over all time (in the engine: slices and the newest facts)."""
    counts: dict[str, int] = {}
    for row in store_analytics.breakdown(store, Filters(), "version"):
        if row.key.prompt_id is not None:
            counts[row.key.prompt_id] = counts.get(row.key.prompt_id, 0) + row.metrics.count
    return counts


def history(db: Session, limit: int = HISTORY_ROWS) -> list[Change]:
    """List the newest changes first."""
    rows = db.scalars(select(PromptChange).order_by(PromptChange.id.desc()).limit(limit)).all()
    return [
        Change(c.id, c.action, c.summary, c.actor, c.at, c.undone_by_id is not None, c.undoes_id)
        for c in rows
    ]


# Input ------------------------------------------------------------------------------------------


def clean_name(value: Any, what: str = "prompt name", limit: int = MAX_NAME) -> str:
    """Return a name or label from a form, or raise with what is wrong with it."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise PromptIdentityError(f"Give a {what}.")
    if len(text) > limit:
        raise PromptIdentityError(f"A {what} has at most {limit} characters.")
    if CONTROL.search(text):
        raise PromptIdentityError(f"A {what} cannot contain control characters.")
    return text


def _group_ids(db: Session, values: Sequence[Any]) -> list[uuid.UUID]:
    """Parse group ids from a form and check that each exists."""
    ids: list[uuid.UUID] = []
    for value in values:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            raise PromptIdentityError(f"{str(value)[:60]!r} is not a template group id.") from None
    if not ids:
        raise PromptIdentityError("Pick at least one template group.")
    found = set(db.scalars(select(Prompt.id).where(Prompt.id.in_(ids))).all())
    if missing := [str(i) for i in ids if i not in found]:
        raise PromptIdentityError(f"No template group {missing[0]} (it may have been removed).")
    return sorted(set(ids))


# Snapshots ----------------------------------------------------------------------------------------

Snapshot = dict[str, dict[str, dict[str, str | None]]]


def _snapshot(
    db: Session, group_ids: Sequence[uuid.UUID], identity_ids: Sequence[uuid.UUID]
) -> Snapshot:
    """Capture what a change may touch: groups' identity and label, prompts' name and redirect."""
    shot: Snapshot = {"groups": {}, "identities": {}}
    for group in db.scalars(select(Prompt).where(Prompt.id.in_(list(group_ids)))).all():
        shot["groups"][str(group.id)] = {
            "identity_id": str(group.identity_id) if group.identity_id else None,
            "label": group.label,
        }
    for ident in db.scalars(
        select(PromptIdentity).where(PromptIdentity.id.in_(list(identity_ids)))
    ).all():
        shot["identities"][str(ident.id)] = {
            "name": ident.name,
            "merged_into_id": str(ident.merged_into_id) if ident.merged_into_id else None,
        }
    return shot


def _restore(db: Session, shot: Snapshot) -> None:
    """Write a snapshot back, parking names first so that swapped names never collide."""
    idents = shot.get("identities", {})
    # A swap of names would collide half-way: park every name first.
    for ident in idents:
        db.execute(
            update(PromptIdentity)
            .where(PromptIdentity.id == uuid.UUID(ident))
            .values(name=f"\x00{ident}")
        )
    for ident, values in idents.items():
        onward = values["merged_into_id"]
        db.execute(
            update(PromptIdentity)
            .where(PromptIdentity.id == uuid.UUID(ident))
            .values(name=values["name"], merged_into_id=uuid.UUID(onward) if onward else None)
        )
    for group, values in shot.get("groups", {}).items():
        owner = values["identity_id"]
        db.execute(
            update(Prompt)
            .where(Prompt.id == uuid.UUID(group))
            .values(identity_id=uuid.UUID(owner) if owner else None, label=values["label"])
        )


def _record(
    db: Session, actor: str, action: str, summary: str, before: Snapshot, after: Snapshot
) -> PromptChange:
    """Write the audit row of a change."""
    change = PromptChange(
        action=action,
        summary=summary,
        actor=actor,
        at=utcnow(),
        before=json.dumps(before, sort_keys=True),
        after=json.dumps(after, sort_keys=True),
    )
    db.add(change)
    db.flush()
    return change


def _identity_by_name(db: Session, name: str) -> PromptIdentity | None:
    """Return the identity of that name, if any."""
    return db.scalar(select(PromptIdentity).where(PromptIdentity.name == name))


# Changes ------------------------------------------------------------------------------------------


def merge(db: Session, actor: str, group_values: Sequence[Any], name: Any) -> PromptChange:
    """Put template groups into the prompt of that name (created if new); return the audit row.

    A prompt whose every group moves points at the target from then on, so new groups whose
    spans carry its key join the target too.
    """
    target_name = clean_name(name)
    ids = _group_ids(db, group_values)
    target = _identity_by_name(db, target_name)
    created = target is None
    if target is None:
        target = PromptIdentity(
            id=uuid.uuid4(), key=f"manual:{uuid.uuid4()}", source="manual", name=target_name
        )
        db.add(target)
        db.flush()
    sources = set(db.scalars(select(Prompt.identity_id).where(Prompt.id.in_(ids))).all()) - {
        None,
        target.id,
    }
    touched_identities = [i for i in sources if i is not None]
    before = _snapshot(db, ids, touched_identities)
    if created:
        # Undo leaves the new prompt without groups: it then lists nowhere.
        before["identities"][str(target.id)] = {"name": target.name, "merged_into_id": None}
    db.execute(update(Prompt).where(Prompt.id.in_(ids)).values(identity_id=target.id))
    for ident in touched_identities:
        remaining = db.scalar(select(func.count()).where(Prompt.identity_id == ident))
        if not remaining:
            db.execute(
                update(PromptIdentity)
                .where(PromptIdentity.id == ident)
                .values(merged_into_id=target.id)
            )
    after = _snapshot(db, ids, [*touched_identities, target.id])
    summary = (
        f"Merged {len(ids)} template group{'s' if len(ids) != 1 else ''} into {target_name!r}."
    )
    return _record(db, actor, "merge", summary, before, after)


def relabel(db: Session, actor: str, group_value: Any, label: Any) -> PromptChange:
    """Give one template group the version label pages show and compare it by."""
    text = clean_name(label, "version label", MAX_LABEL)
    (group_id,) = _group_ids(db, [group_value])
    before = _snapshot(db, [group_id], [])
    old = before["groups"][str(group_id)]["label"]
    db.execute(update(Prompt).where(Prompt.id == group_id).values(label=text))
    after = _snapshot(db, [group_id], [])
    return _record(db, actor, "relabel", f"Relabelled {old!r} as {text!r}.", before, after)


def rename(db: Session, actor: str, old_name: Any, new_name: Any) -> PromptChange:
    """Rename a prompt; a name another prompt has is refused (merge into it instead)."""
    old = clean_name(old_name)
    new = clean_name(new_name)
    ident = _identity_by_name(db, old)
    if ident is None:
        raise PromptIdentityError(f"No prompt named {old!r}.")
    if new == old:
        raise PromptIdentityError(f"The prompt is already named {new!r}.")
    if _identity_by_name(db, new) is not None:
        raise PromptIdentityError(
            f"A prompt named {new!r} exists; merge {old!r}'s groups into it instead."
        )
    before = _snapshot(db, [], [ident.id])
    ident.name = new
    db.flush()
    after = _snapshot(db, [], [ident.id])
    return _record(db, actor, "rename", f"Renamed {old!r} to {new!r}.", before, after)


def undo(db: Session, actor: str, change_id: Any) -> PromptChange:
    """Undo one change, when no later change has touched the same rows since."""
    try:
        number = int(str(change_id))
    except ValueError:
        raise PromptIdentityError(f"{str(change_id)[:40]!r} is not a change number.") from None
    change = db.get(PromptChange, number)
    if change is None:
        raise PromptIdentityError(f"No change number {number}.")
    if change.undone_by_id is not None:
        raise PromptIdentityError(f"Change {number} is already undone.")
    if change.action == "undo":
        raise PromptIdentityError("An undo cannot be undone; make the change again instead.")
    before: Snapshot = json.loads(change.before)
    after: Snapshot = json.loads(change.after)
    groups_touched = [uuid.UUID(g) for g in after.get("groups", {})]
    idents_touched = [uuid.UUID(i) for i in after.get("identities", {})]
    now = _snapshot(db, groups_touched, idents_touched)
    if now != after:
        raise PromptIdentityError(
            f"Later changes touched the same prompts; undo those first (change {number})."
        )
    _restore(db, before)
    restored = _snapshot(db, groups_touched, idents_touched)
    record = _record(db, actor, "undo", f"Undid change {number}: {change.summary}", now, restored)
    record.undoes_id = change.id
    change.undone_by_id = record.id
    db.flush()
    return record
