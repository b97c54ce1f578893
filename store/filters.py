"""What an analyst narrowed the facts to, and the WHERE clause that applies it to a table.

The prompt filter is a set of our Prompt ids and/or template hashes that the caller resolves
from our database; `None` means any prompt and an empty set means none. Every value from a user
becomes a server-side {name:Type} parameter; no filter value is ever spliced into the SQL.

Facts name their template group (our Prompt row id) and the version the span stated. Which
prompt a group belongs to, and which version label it shows, is our database's to say and an
admin's to change (services/prompt_identity.py): the caller passes that as a PromptMap, and
queries apply it when they group (prompt_sql, version_sql) and filter by version, so past spans
follow a merge or a relabel without being rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class PromptSet:
    """Prompts picked by our Prompt row ids and/or template hashes; a row matches either."""

    ids: tuple[str, ...] = ()
    hashes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptMap:
    """Each template group's prompt and version label, as parallel arrays (group i -> i)."""

    groups: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    # Moves with every admin change (a rename too, which the arrays do not show): results
    # cached under the filters' key then miss.
    revision: int = 0

    def groups_of(self, prompt: str | None = None, labels: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Return the groups of a prompt (any when None) that show one of `labels` (any if ())."""
        return tuple(
            group
            for group, owner, label in zip(self.groups, self.prompts, self.labels, strict=True)
            if (prompt is None or owner == prompt) and (not labels or label in labels)
        )

    def params(self) -> dict[str, Any]:
        """Return the map as the query parameters prompt_sql and version_sql refer to."""
        return {
            "map_groups": list(self.groups),
            "map_prompts": list(self.prompts),
            "map_labels": list(self.labels),
        }


def prompt_sql(group: str = "prompt_id") -> str:
    """Return the SQL of a group's prompt under the map; unknown groups keep their own id."""
    # A group the map does not know (created after the map was read) stands for itself.
    return (
        f"transform({group}, {{map_groups:Array(String)}}, {{map_prompts:Array(String)}}, {group})"
    )


def version_sql(group: str = "prompt_id", version: str = "prompt_version") -> str:
    """Return the SQL of a group's version label under the map; unknown groups keep theirs."""
    return (
        f"transform({group}, {{map_groups:Array(String)}}, {{map_labels:Array(String)}}, {version})"
    )


@dataclass(frozen=True)
class Filters:
    """What an analyst narrowed the facts to; the time range is half-open [start, end)."""

    project: str | None = None
    prompts: PromptSet | None = None
    versions: tuple[str, ...] = ()
    model: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    # How groups map to prompts and labels; None reads the facts' own group ids and versions.
    # Part of the cache key: a merge or relabel changes every answer that groups by version.
    prompt_map: PromptMap | None = None

    def key(self) -> str:
        """Return a stable digest of the filters, for cache keys."""
        raw = json.dumps(asdict(self), default=str, sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Columns:
    """How one table names the span facts that filters apply to."""

    start: str
    status: str


SPANS = Columns(start="start_time", status="status")
ANNOTATIONS = Columns(start="span_start_time", status="span_status")
# The pre-aggregated slices of both (store/slices.py) name their time `slice`.
SPAN_SLICES = Columns(start="slice", status="status")
ANNOTATION_SLICES = Columns(start="slice", status="span_status")


def where(filters: Filters, columns: Columns = SPANS) -> tuple[str, dict[str, Any]]:
    """Build a WHERE clause with parameters; no filter value is ever spliced into the SQL."""
    clauses = ["1"]
    params: dict[str, Any] = {}
    if filters.project is not None:
        clauses.append("project = {project:String}")
        params["project"] = filters.project
    if filters.prompts is not None:
        either = []
        if filters.prompts.ids:
            either.append("prompt_id IN {prompt_ids:Array(String)}")
            params["prompt_ids"] = list(filters.prompts.ids)
        if filters.prompts.hashes:
            either.append("template_hash IN {template_hashes:Array(String)}")
            params["template_hashes"] = list(filters.prompts.hashes)
        clauses.append("(" + " OR ".join(either) + ")" if either else "0")
    if filters.versions and filters.prompt_map is not None:
        # Versions are the labels the map shows: the groups that show them.
        clauses.append("prompt_id IN {version_groups:Array(String)}")
        params["version_groups"] = list(filters.prompt_map.groups_of(labels=filters.versions))
    elif filters.versions:
        clauses.append("prompt_version IN {versions:Array(String)}")
        params["versions"] = list(filters.versions)
    if filters.model is not None:
        clauses.append("model = {model:String}")
        params["model"] = filters.model
    if filters.status is not None:
        clauses.append(f"{columns.status} = {{status:String}}")
        params["status"] = filters.status
    if filters.start is not None:
        clauses.append(f"{columns.start} >= {{start:DateTime64(6, 'UTC')}}")
        params["start"] = filters.start
    if filters.end is not None:
        clauses.append(f"{columns.start} < {{end:DateTime64(6, 'UTC')}}")
        params["end"] = filters.end
    return " AND ".join(clauses), params
