"""Prompt names for the facts store: resolve a name to a PromptSet, and label versions by prompt.

The store knows prompts by our Prompt row id and template hash; analysts know them by name.
Names live in our SQL `prompts` table, one row per (template, version), so one name is a set.
A version label such as "v2" can belong to several prompts: where that can mix, it is shown
as "prompt · version".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Prompt
from services.analytics import cached, watermark
from services.filters import FilterState
from store import analytics as store_analytics
from store.analytics import Filters, GroupKey, PromptSet
from store.facts import FactStore

NO_PROMPT = "(no prompt)"
NO_VERSION = "(none)"
SEPARATOR = " · "


@dataclass(frozen=True)
class PromptNames:
    """Our prompt names by Prompt row id and by template hash."""

    by_id: Mapping[str, str]
    by_hash: Mapping[str, str]

    def name(self, prompt_id: str | None, template_hash: str | None = None) -> str | None:
        """Return the name of a prompt known by id or template hash, or None."""
        if prompt_id is not None and prompt_id in self.by_id:
            return self.by_id[prompt_id]
        if template_hash is not None:
            return self.by_hash.get(template_hash)
        return None

    def names(self) -> list[str]:
        """List every prompt name, sorted."""
        return sorted(set(self.by_id.values()))


def prompt_names(db: Session) -> PromptNames:
    """Read every prompt's name from our database (a row per prompt version: small)."""
    rows = db.execute(select(Prompt.id, Prompt.template_hash, Prompt.name)).all()
    return PromptNames(
        by_id={str(ident): name for ident, _hash, name in rows},
        by_hash={template_hash: name for _id, template_hash, name in rows},
    )


def prompt_set(db: Session, name: str | None) -> PromptSet | None:
    """Resolve a prompt name to its versions' ids and hashes; None (any prompt) for no name."""
    if name is None:
        return None
    rows = db.execute(select(Prompt.id, Prompt.template_hash).where(Prompt.name == name)).all()
    # An unknown name resolves to the empty set: it matches nothing, as it should.
    return PromptSet(
        ids=tuple(sorted(str(ident) for ident, _hash in rows)),
        hashes=tuple(sorted({template_hash for _id, template_hash in rows})),
    )


def resolve(db: Session, state: FilterState, now: datetime | None = None) -> Filters:
    """Turn the URL's filter state into store filters, the prompt name into its PromptSet."""
    return state.to_filters(prompt_set(db, state.prompt), now)


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
    """List what the filter bar offers: prompt names from our database, the rest from facts."""

    def compute() -> dict[str, list[str]]:
        options = store_analytics.filter_options(store, prompt_set(db, prompt))
        return {
            "project": list(options.projects),
            "prompt": prompt_names(db).names(),
            "versions": list(options.versions),
            "model": list(options.models),
        }

    # The distinct values change only when the sync writes: cached per watermark.
    return cached("filter-options", f"prompt={prompt!r}", watermark(db), compute)


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
