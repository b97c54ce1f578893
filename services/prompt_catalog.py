"""Link synced spans to template groups, and groups to the prompts they belong to.

A span's prompt is the first of (the README's "How prompts are identified"):

1. Phoenix's prompt registry, when a registry version has the span's template;
2. OpenInference's `prompt.id` (with `prompt.vendor`; `prompt.url` is kept as the link);
3. the span attribute named by PROMPT_NAME_ATTRIBUTE (for example `metadata.prompt_name`);
4. the template itself (its SHA-256), named `template-<first 8 hex digits>`.

Each distinct (template, stated version, identity key) is a template group: one row of our
`prompts` table, whose id the span's facts carry. A group belongs to a prompt identity (one row
of `prompt_identities`, found by the key) and shows a version label: the version the spans
state, the registry's label, or, for prompts named by id or attribute that state none, v1, v2,
... in the order their wordings first appeared. Admins may move groups and relabel them
(services/prompt_identity.py); pages apply that when they query, so the facts never change.

A group is first seen at the earliest start of the spans that carry it, over everything synced
so far: a later sync that reads older spans (a backfill) moves it back, never on. A registry
version no span uses yet is first seen when the sync registers it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.models import Prompt, PromptIdentity, utcnow
from services.fact_writer import KEYS_PER_STATEMENT, upsert
from services.span_facts import UNVERSIONED, RegistryVersion, SpanFacts, aware

# (template hash or "", version the spans state, identity key): a group's natural key.
GroupKey = tuple[str, str, str]
GROUP_COLUMNS = ("template_hash", "version", "identity_key")
# Sources whose wordings are numbered v1, v2, ... when their spans state no version.
NUMBERED_SOURCES = frozenset({"prompt.id", "attribute"})
# Redirects of merged prompts are followed this far (a longer chain is a cycle).
MAX_REDIRECTS = 16


class PromptRowMissing(RuntimeError):
    """A prompt row was neither found nor created: something deleted it meanwhile."""


@dataclass(frozen=True)
class GroupSpec:
    """What a new group needs: its template, and the identity its spans name."""

    template: str
    source: str
    name: str
    url: str | None = None
    phoenix_prompt_id: str | None = None


def template_key(digest: str) -> str:
    """Return the identity key of a prompt known only by its template."""
    return f"template:{digest}"


def template_name(digest: str) -> str:
    """Return the default name of a prompt known only by its template."""
    return f"template-{digest[:8]}"


def registry_key(phoenix_prompt_id: str) -> str:
    """Return the identity key of a registry prompt."""
    return f"registry:{phoenix_prompt_id}"


def _follow(db: Session, ident: uuid.UUID, onward: uuid.UUID | None) -> uuid.UUID:
    """Follow an identity's merges to the one that holds its groups now."""
    for _ in range(MAX_REDIRECTS):
        if onward is None:
            return ident
        nxt = db.execute(
            select(PromptIdentity.id, PromptIdentity.merged_into_id).where(
                PromptIdentity.id == onward
            )
        ).first()
        if nxt is None:
            return ident
        ident, onward = nxt
    return ident


def _find(db: Session, keys: Sequence[str]) -> dict[str, uuid.UUID]:
    """Return the identities these keys lead to (following merges), for keys that have one."""
    found: dict[str, uuid.UUID] = {}
    for start in range(0, len(keys), KEYS_PER_STATEMENT):
        rows = db.execute(
            select(PromptIdentity.key, PromptIdentity.id, PromptIdentity.merged_into_id).where(
                PromptIdentity.key.in_(keys[start : start + KEYS_PER_STATEMENT])
            )
        ).all()
        for key, ident, onward in rows:
            found[key] = _follow(db, ident, onward)
    return found


def _candidates(spec: GroupSpec) -> list[str]:
    """Return the names a new identity may take, in order of preference."""
    wanted = spec.name
    return [wanted, f"{wanted} ({spec.source})"] + [f"{wanted} ({n})" for n in range(2, 10)]


def ensure_identities(db: Session, specs: Mapping[str, GroupSpec]) -> dict[str, uuid.UUID]:
    """Return the identity of each key, creating the new ones under free names: a few statements.

    Another replica may create the same key meanwhile, or take a name: inserts skip any
    conflict, and a key still missing tries its next name.
    """
    keys = sorted(specs)
    found = _find(db, keys)
    for _attempt in range(3):
        missing = [key for key in keys if key not in found]
        if not missing:
            return found
        wanted = sorted({name for key in missing for name in _candidates(specs[key])})
        taken: set[str] = set()
        for start in range(0, len(wanted), KEYS_PER_STATEMENT):
            taken.update(
                db.scalars(
                    select(PromptIdentity.name).where(
                        PromptIdentity.name.in_(wanted[start : start + KEYS_PER_STATEMENT])
                    )
                ).all()
            )
        rows = []
        for key in missing:
            free = [n for n in _candidates(specs[key]) if n not in taken]
            name = free[0] if free else f"{specs[key].name} ({uuid.uuid4().hex[:8]})"
            taken.add(name)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "key": key,
                    "source": specs[key].source,
                    "name": name,
                    "url": specs[key].url,
                    "created_at": utcnow(),
                }
            )
        upsert(db, PromptIdentity.__table__, rows, key=())
        found.update(_find(db, missing))
    if lost := [key for key in keys if key not in found]:
        raise PromptRowMissing(f"could not create the prompt identities {lost}")
    return found


class PromptCatalog:
    """Find or create the template groups that spans link to, remembered for one tick."""

    def __init__(self, sessions: sessionmaker[Session], name_attribute: str | None = None) -> None:
        self.sessions = sessions
        # The span attribute that names prompts (PROMPT_NAME_ATTRIBUTE), read by span_facts.
        self.name_attribute = name_attribute or None
        # Registry versions by template hash, refreshed by the sync's registry read.
        self.registry: dict[str, RegistryVersion] = {}
        self._ids: dict[GroupKey, uuid.UUID] = {}
        # Each group's first_seen_at as our database last told us (or we last set it).
        self._first: dict[uuid.UUID, datetime] = {}
        self._seen: set[uuid.UUID] = set()

    def forget(self) -> None:
        """Start a tick afresh: groups may have been moved or removed since the last one."""
        self._ids.clear()
        self._first.clear()
        self._seen.clear()

    def identify(self, fact: SpanFacts) -> tuple[GroupKey, GroupSpec] | None:
        """Return the group a span belongs to and what creating it needs; None: no prompt."""
        digest = fact.template_hash or ""
        template = fact.template or ""
        entry = self.registry.get(digest) if digest else None
        if entry is not None:
            version = fact.template_version or entry.version_label
            spec = GroupSpec(template, "registry", entry.prompt_name, None, entry.prompt_id)
            return (digest, version, registry_key(entry.prompt_id)), spec
        version = fact.template_version or UNVERSIONED
        if fact.declared is not None:
            declared = fact.declared
            spec = GroupSpec(template, declared.source, declared.name, declared.url)
            return (digest, version, declared.key), spec
        if digest:
            return (digest, version, template_key(digest)), GroupSpec(
                template, "template", template_name(digest)
            )
        return None

    def link(self, facts: Sequence[SpanFacts]) -> list[SpanFacts]:
        """Return the facts with their group's id and the version their spans state."""
        identified = [self.identify(fact) for fact in facts]
        specs = {found[0]: found[1] for found in identified if found is not None}
        earliest: dict[GroupKey, datetime] = {}
        for fact, found in zip(facts, identified, strict=True):
            if found is not None:
                start = aware(fact.start_time).astimezone(UTC)
                earliest[found[0]] = min(earliest.get(found[0], start), start)
        ids = self.ensure(specs, earliest)
        self._backdate({ids[key]: at for key, at in earliest.items()})
        linked: list[SpanFacts] = []
        for fact, found in zip(facts, identified, strict=True):
            if found is None:
                linked.append(fact)
                continue
            key = found[0]
            linked.append(replace(fact, prompt_id=ids[key], prompt_version=key[1]))
        return linked

    def ensure(
        self,
        specs: Mapping[GroupKey, GroupSpec],
        first_seen: Mapping[GroupKey, datetime] | None = None,
    ) -> dict[GroupKey, uuid.UUID]:
        """Return the ids of these groups, creating the groups (and identities) missing.

        A new group is first seen at the earliest start of its spans in ``first_seen``; one
        created before any span uses it (a registry version) at the time it is created.
        """
        missing = [key for key in specs if key not in self._ids]
        if missing:
            with self.sessions.begin() as db:
                self._load(db, missing)
                new = [key for key in missing if key not in self._ids]
                if new:
                    self._create(db, new, specs, first_seen or {})
                    self._load(db, new)
            if lost := [key for key in missing if key not in self._ids]:
                raise PromptRowMissing(f"prompt rows vanished while being created: {lost}")
        ids = {key: self._ids[key] for key in specs}
        self._seen.update(ids.values())
        return ids

    def _backdate(self, earliest: Mapping[uuid.UUID, datetime]) -> None:
        """Move groups' first_seen_at back to the earliest start of their spans, never on.

        A page of spans may hold older ones than any synced before (a backfill, a project
        read late): first_seen_at is the minimum over everything synced. One statement a
        page at most, and none when every group was first seen no later than its spans.
        """
        older = sorted(
            (group, at)
            for group, at in earliest.items()
            if group not in self._first or at < self._first[group]
        )
        if not older:
            return
        # Guarded by the row's own value: another replica may have moved it back further.
        statement = (
            update(Prompt)
            .where(Prompt.id == bindparam("group_id"), Prompt.first_seen_at > bindparam("at"))
            .values(first_seen_at=bindparam("at"))
        )
        # On the connection: one executemany, not the ORM's bulk update by primary key.
        with self.sessions.begin() as db:
            db.connection().execute(
                statement, [{"group_id": group, "at": at} for group, at in older]
            )
        for group, at in older:
            self._first[group] = at

    def _create(
        self,
        db: Session,
        keys: Sequence[GroupKey],
        specs: Mapping[GroupKey, GroupSpec],
        first_seen: Mapping[GroupKey, datetime],
    ) -> None:
        """Insert new groups, each in the identity its key leads to, with its first label."""
        identities = ensure_identities(db, {key[2]: specs[key] for key in keys})
        # New wordings of a prompt named by id or attribute that state no version are numbered
        # after the wordings it has: count those once, then number this batch's in order.
        numbered = sorted(
            {
                identities[key[2]]
                for key in keys
                if key[1] == UNVERSIONED and specs[key].source in NUMBERED_SOURCES
            }
        )
        wordings: dict[uuid.UUID, set[str]] = {ident: set() for ident in numbered}
        if numbered:
            for ident, digest in db.execute(
                select(Prompt.identity_id, Prompt.template_hash)
                .where(Prompt.identity_id.in_(numbered))
                .distinct()
            ).all():
                if ident is not None:
                    wordings[ident].add(digest)
        now = utcnow()
        rows = []
        for digest, version, identity_key in keys:
            spec = specs[(digest, version, identity_key)]
            identity = identities[identity_key]
            label = version
            if version == UNVERSIONED and spec.source in NUMBERED_SOURCES:
                seen = wordings[identity]
                label = f"v{len(seen) + (digest not in seen)}"
                seen.add(digest)
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "name": spec.name,
                    "version": version,
                    "template": spec.template,
                    "template_hash": digest,
                    "phoenix_prompt_id": spec.phoenix_prompt_id,
                    "identity_key": identity_key,
                    "identity_id": identity,
                    "label": label,
                    "first_seen_at": first_seen.get((digest, version, identity_key), now),
                    "last_seen_at": now,
                }
            )
        # Another replica may create the same group meanwhile: keep whichever won.
        upsert(db, Prompt.__table__, rows, key=GROUP_COLUMNS)

    def _load(self, db: Session, keys: Sequence[GroupKey]) -> None:
        """Remember the ids of existing groups for these keys."""
        wanted = set(keys)
        digests = sorted({digest for digest, _version, _key in keys})
        for start in range(0, len(digests), KEYS_PER_STATEMENT):
            rows = db.execute(
                select(
                    Prompt.id,
                    Prompt.template_hash,
                    Prompt.version,
                    Prompt.identity_key,
                    Prompt.first_seen_at,
                ).where(Prompt.template_hash.in_(digests[start : start + KEYS_PER_STATEMENT]))
            ).all()
            for group_id, digest, version, identity_key, first_seen_at in rows:
                if (digest, version, identity_key) in wanted:
                    self._ids[(digest, version, identity_key)] = group_id
                    self._first[group_id] = aware(first_seen_at)

    def adopt_registry(self) -> None:
        """Move groups known only by a template into the registry prompt that now has it.

        Only groups still in their template's own identity move (an admin's choice stands);
        they take the registry's label unless their spans stated a version. The template's
        identity then points at the registry prompt, so this runs once per template.
        """
        if not self.registry:
            return
        keys = {template_key(digest): entry for digest, entry in self.registry.items()}
        with self.sessions.begin() as db:
            wanted = sorted(keys)
            own: list[tuple[str, uuid.UUID]] = []
            for start in range(0, len(wanted), KEYS_PER_STATEMENT):
                own += [
                    (key, ident)
                    for key, ident in db.execute(
                        select(PromptIdentity.key, PromptIdentity.id).where(
                            PromptIdentity.key.in_(wanted[start : start + KEYS_PER_STATEMENT]),
                            PromptIdentity.merged_into_id.is_(None),
                        )
                    ).all()
                ]
            if not own:
                return
            targets = ensure_identities(
                db,
                {
                    registry_key(keys[key].prompt_id): GroupSpec(
                        keys[key].template,
                        "registry",
                        keys[key].prompt_name,
                        None,
                        keys[key].prompt_id,
                    )
                    for key, _ident in own
                },
            )
            for key, ident in own:
                entry = keys[key]
                target = targets[registry_key(entry.prompt_id)]
                groups = db.execute(
                    select(Prompt.id, Prompt.version, Prompt.label).where(
                        Prompt.identity_key == key, Prompt.identity_id == ident
                    )
                ).all()
                for group_id, version, label in groups:
                    stated = version != UNVERSIONED or label not in {version, ""}
                    db.execute(
                        update(Prompt)
                        .where(Prompt.id == group_id)
                        .values(
                            identity_id=target,
                            label=label if stated else entry.version_label,
                            phoenix_prompt_id=entry.prompt_id,
                        )
                    )
                db.execute(
                    update(PromptIdentity)
                    .where(PromptIdentity.id == ident)
                    .values(merged_into_id=target)
                )

    def touch(self, db: Session) -> None:
        """Mark the groups this tick linked or registered as seen now."""
        seen = sorted(self._seen)
        now = utcnow()
        for start in range(0, len(seen), KEYS_PER_STATEMENT):
            db.execute(
                update(Prompt)
                .where(Prompt.id.in_(seen[start : start + KEYS_PER_STATEMENT]))
                .values(last_seen_at=now)
            )
