"""What an analyst narrowed the facts to, and the WHERE clause that applies it to a table.

The prompt filter is a set of our Prompt ids and/or template hashes that the caller resolves
from our database; `None` means any prompt and an empty set means none. Every value from a user
becomes a server-side {name:Type} parameter; no filter value is ever spliced into the SQL.
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
class Filters:
    """What an analyst narrowed the facts to; the time range is half-open [start, end)."""

    project: str | None = None
    prompts: PromptSet | None = None
    versions: tuple[str, ...] = ()
    model: str | None = None
    status: str | None = None
    start: datetime | None = None
    end: datetime | None = None

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
    if filters.versions:
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
