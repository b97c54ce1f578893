"""Which version of a prompt a monitor calls newest, and which previous.

A version first appears with the earliest span of its groups; versions that first appear at the
same moment go in natural order (v9 before v10), never in the order of their text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services import monitors
from services.container import get_services
from services.monitor_rules import MonitorSpec
from services.prompt_catalog import PromptCatalog
from services.span_facts import span_facts
from tests.seed import rest_llm_span

DAY = datetime(2026, 10, 27, 9, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)


def _link(app: Any, prompt: str, versions: dict[str, datetime]) -> dict[str, str]:
    """Sync one span of each version (named by prompt.id) starting at its time; their groups."""
    catalog = PromptCatalog(get_services(app.server).sessions)
    groups = {}
    for n, (version, start) in enumerate(versions.items()):
        span = rest_llm_span(
            n + 1,
            start,
            **{
                "llm.prompt_template.template": f"{prompt} {version}: {{q}}",
                "llm.prompt_template.version": version,
                "prompt.id": prompt,
            },
        )
        (fact,) = catalog.link([span_facts("p", span, None)])
        groups[version] = str(fact.prompt_id)
    return groups


def _order(app: Any, prompt: str) -> list[str]:
    with get_services(app.server).sessions() as db:
        return [label for _ident, label, _groups in monitors.versions_in_order(db, prompt)]


def _sides(app: Any, prompt: str) -> tuple[str, str | None]:
    spec = MonitorSpec(name="p95", prompt=prompt, metric="p95_ms", rule="relative")
    with get_services(app.server).sessions() as db:
        sides = monitors.resolve_sides(db, spec, NOW)
    assert isinstance(sides, monitors.Sides), sides
    return sides.candidate, sides.baseline


def test_versions_first_seen_together_go_in_natural_order(app) -> None:
    # A backfill reads every version at once: all first seen at the same moment.
    _link(app, "faq", {"v10": DAY, "v9": DAY, "v2": DAY, "v1": DAY})
    assert _order(app, "faq") == ["v1", "v2", "v9", "v10"]
    assert _sides(app, "faq") == ("v10", "v9")  # newest v10, previous v9: not "v9" vs "v2"


def test_an_earlier_first_span_wins_over_the_label(app) -> None:
    _link(app, "faq", {"v9": DAY, "v10": DAY - timedelta(days=3)})
    assert _order(app, "faq") == ["v10", "v9"]
    assert _sides(app, "faq") == ("v9", "v10")


def test_a_backfill_of_older_spans_reorders_the_versions(app) -> None:
    groups = _link(app, "faq", {"v1": DAY, "v2": DAY + timedelta(days=1)})
    assert _order(app, "faq") == ["v1", "v2"]
    # Older spans of v2 arrive later (a project read late): v2 first appeared before v1.
    _link(app, "faq", {"v2": DAY - timedelta(days=5)})
    assert _order(app, "faq") == ["v2", "v1"]
    with get_services(app.server).sessions() as db:
        (entry,) = [v for v in monitors.versions_in_order(db, "faq") if v[1] == "v2"]
    assert entry[2] == [groups["v2"]]
