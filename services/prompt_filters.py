"""Prompt names for the facts store: resolve a name to a PromptSet, and label versions by prompt.

The facts name template groups (our `prompts` rows); analysts know prompts by name. A prompt is
an identity (services/prompt_catalog.py says how spans find theirs; admins may merge, relabel
and rename them, services/prompt_identity.py), so one name is a set of groups. Queries get the
groups' prompts and labels as a PromptMap and group by those. A version label such as "v2" can
belong to several prompts: where that can mix, it is shown as "prompt · version".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Prompt, PromptIdentity
from services.analytics import cached, watermark
from services.filters import FilterState
from services.prompt_identity import prompt_map, revision
from store import analytics as store_analytics
from store.analytics import Filters, GroupKey, PromptSet
from store.facts import FactStore
from store.filters import PromptMap

NO_PROMPT = "(no prompt)"
NO_VERSION = "(none)"
SEPARATOR = " · "


@dataclass(frozen=True)
class PromptNames:
    """Prompt names by prompt identity id and by group id, and each group's version label."""

    by_id: Mapping[str, str]
    by_hash: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)

    def name(self, prompt_id: str | None, template_hash: str | None = None) -> str | None:
        """Return the name of a prompt (or of a group's prompt), or None."""
        if prompt_id is not None and prompt_id in self.by_id:
            return self.by_id[prompt_id]
        if template_hash is not None:
            return self.by_hash.get(template_hash)
        return None

    def label(self, group_id: str | None, stated: str | None) -> str | None:
        """Return the version label a group shows, else the version its span stated."""
        if group_id is not None and group_id in self.labels:
            return self.labels[group_id]
        return stated

    def names(self) -> list[str]:
        """List every prompt name, sorted."""
        return sorted(set(self.by_id.values()))


def prompt_names(db: Session) -> PromptNames:
    """Read every prompt's name, each group's prompt name and label (small: a row per group).

    A group without an identity (written by hand, or by code older than identities) is its own
    prompt under the name it was created with.
    """
    rows = db.execute(
        select(
            Prompt.id,
            Prompt.identity_id,
            Prompt.label,
            Prompt.version,
            Prompt.name,
            PromptIdentity.name,
        ).outerjoin(PromptIdentity, PromptIdentity.id == Prompt.identity_id)
    ).all()
    by_id: dict[str, str] = {}
    labels: dict[str, str] = {}
    for group, ident, label, version, own_name, name in rows:
        # Identities that hold no group are not prompts anyone can see.
        if ident is not None and name is not None:
            by_id[str(ident)] = name
        by_id[str(group)] = name if name is not None else own_name
        labels[str(group)] = label or version
    return PromptNames(by_id=by_id, labels=labels)


def prompt_set(db: Session, name: str | None) -> PromptSet | None:
    """Resolve a prompt name to its groups; None (any prompt) for no name."""
    if name is None:
        return None
    rows = db.scalars(
        select(Prompt.id)
        .outerjoin(PromptIdentity, PromptIdentity.id == Prompt.identity_id)
        .where(
            (PromptIdentity.name == name) | (Prompt.identity_id.is_(None) & (Prompt.name == name))
        )
    ).all()
    # An unknown name resolves to the empty set: it matches nothing, as it should.
    return PromptSet(ids=tuple(sorted(str(ident) for ident in rows)))


def resolve(db: Session, state: FilterState, now: datetime | None = None) -> Filters:
    """Turn the URL's filter state into store filters: the prompt's groups and the prompt map."""
    filters = state.to_filters(prompt_set(db, state.prompt), now)
    return with_map(filters, prompt_map(db))


def with_map(filters: Filters, mapping: PromptMap) -> Filters:
    """Return the filters with the groups' prompts and labels for queries to apply."""
    values = {name: getattr(filters, name) for name in Filters.__dataclass_fields__}
    return Filters(**{**values, "prompt_map": mapping})


def prompt_label(key: GroupKey, names: PromptNames) -> str:
    """Name the prompt of a group, or say it has none (or is not in our database)."""
    name = names.name(key.prompt_id, key.template_hash)
    if name is not None:
        return name
    return NO_PROMPT if key.prompt_id is None else f"(prompt {key.prompt_id[:8]})"


def version_labels(keys: Iterable[GroupKey], names: PromptNames) -> dict[GroupKey, str]:
    """Label each (prompt, version) group: "prompt · version" when the groups span prompts."""
    keys = list(keys)
    prompts = {prompt_label(key, names) for key in keys}
    mixed = len(prompts) > 1
    labels = {}
    for key in keys:
        version = key.prompt_version or NO_VERSION
        labels[key] = f"{prompt_label(key, names)}{SEPARATOR}{version}" if mixed else version
    return labels


def filter_options(
    db: Session, store: FactStore, prompt: str | None = None
) -> dict[str, list[str]]:
    """List what the filter bar offers: prompt names and labels from our database, the rest
    from facts."""

    def compute() -> dict[str, list[str]]:
        chosen = prompt_set(db, prompt)
        options = store_analytics.filter_options(store, chosen)
        names = prompt_names(db)
        # Versions are the labels of the groups that have calls (of the chosen prompt).
        wanted = set(options.prompt_ids)
        if chosen is not None:
            wanted &= set(chosen.ids)
        versions = {names.labels[g] for g in wanted if g in names.labels}
        return {
            "project": list(options.projects),
            "prompt": names.names(),
            "versions": sorted(versions),
            "model": list(options.models),
        }

    # The distinct values change only when the sync writes: cached per watermark.
    key = f"prompt={prompt!r}:revision={revision(db)}"
    return cached("filter-options", key, watermark(db), compute)


def unknown_filter_message(db: Session, store: FactStore, state: FilterState) -> str | None:
    """Name the filter value that matches nothing, so the page can say so instead of failing."""
    everything = filter_options(db, store)
    checks = [
        ("project", [state.project] if state.project else [], everything["project"]),
        ("prompt", [state.prompt] if state.prompt else [], everything["prompt"]),
        ("prompt version", list(state.versions), everything["versions"]),
        ("model", [state.model] if state.model else [], everything["model"]),
    ]
    for label, wanted, known in checks:
        for value in wanted:
            if value not in known:
                return f"No {label} named {value!r} has synced data yet."
    return None


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders the numbers inside text by value: v2 before v10."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in _DIGITS.split(text)
        if part
    )
