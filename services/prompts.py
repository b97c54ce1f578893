"""Phoenix's prompt registry joined with our synced prompt versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Prompt, PromptIdentity
from services.cache import cache
from services.phoenix import PhoenixClient
from services.prompt_catalog import registry_key
from services.span_facts import registry_text, template_hash

CACHE_S = 30


@dataclass(frozen=True)
class PromptVersionDetail:
    """One registry version: its template, tags, and the label our facts know it by."""

    prompt_id: str
    prompt_name: str
    version_id: str
    template: str
    tags: list[str]
    label: str | None
    model: str | None
    # The prompt our pages know the version's calls by (an admin may have renamed or merged it).
    synced_prompt: str | None = None


def registry(phoenix: PhoenixClient) -> list[dict[str, Any]]:
    """List registry prompts with their versions, newest version first."""
    key = f"prompt-registry:{phoenix.base_url}"
    hit = cache.get(key)
    if hit is not None:
        cached: list[dict[str, Any]] = hit
        return cached
    prompts = [
        {"id": p["id"], "name": p["name"], "versions": phoenix.prompt_versions(p["id"])}
        for p in phoenix.prompts()
    ]
    cache.set(key, prompts, timeout=CACHE_S)
    return prompts


def version_detail(
    phoenix: PhoenixClient, db: Session, prompt: dict[str, Any], version: dict[str, Any]
) -> PromptVersionDetail:
    """Describe a registry version and find its label among the synced prompt versions."""
    text = registry_text(version.get("template") or {})
    # The registry's own group of this template first, else any group of it.
    found = db.execute(
        select(Prompt.label, Prompt.version, PromptIdentity.name)
        .join(PromptIdentity, PromptIdentity.id == Prompt.identity_id)
        .where(Prompt.template_hash == template_hash(text))
        .order_by((Prompt.identity_key == registry_key(prompt["id"])).desc(), Prompt.first_seen_at)
        .limit(1)
    ).first()
    label, synced_prompt = (found[0] or found[1], found[2]) if found else (None, None)
    tags = [t["name"] for t in phoenix.prompt_version_tags(version["id"])]
    return PromptVersionDetail(
        prompt_id=prompt["id"],
        prompt_name=prompt["name"],
        version_id=version["id"],
        template=text,
        tags=tags,
        label=label,
        model=version.get("model_name"),
        synced_prompt=synced_prompt,
    )
