"""Prompt identity: how spans find their prompt, and the admin's merge, relabel, rename and undo.

The end-to-end half (spans over OTLP into a real Phoenix, compared on the dashboard) is in
tests/test_trust.py; this half covers the rules and the audited changes through the catalog,
the service, the CLI and the page's callback.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from db.models import PromptChange
from services import prompt_filters, prompt_identity
from services.container import get_services
from services.prompt_catalog import GroupSpec, PromptCatalog, registry_key
from services.prompt_identity import PromptIdentityError
from services.span_facts import (
    RegistryVersion,
    aware,
    declared_prompt,
    span_facts,
    template_hash,
)
from tests.seed import rest_llm_span as _span

T1 = "Answer the question: {question}"
T2 = "Answer briefly, citing the policy: {question}"
T3 = "Summarise the ticket: {ticket}"


def test_a_span_declares_its_prompt_by_prompt_id_else_by_the_named_attribute() -> None:
    by_id = declared_prompt(
        {"prompt.id": "faq", "prompt.vendor": "acme", "prompt.url": "https://acme/p/faq"},
        "metadata.prompt_name",
    )
    assert by_id is not None
    assert (by_id.key, by_id.source, by_id.name, by_id.url) == (
        "prompt.id:acme:faq",
        "prompt.id",
        "faq",
        "https://acme/p/faq",
    )
    # Phoenix flattens JSON attributes ("metadata.prompt_name"); a JSON string works as well.
    flat = declared_prompt({"metadata.prompt_name": "support"}, "metadata.prompt_name")
    nested = declared_prompt({"metadata": '{"prompt_name": "support"}'}, "metadata.prompt_name")
    assert flat is not None and nested is not None and flat == nested
    assert flat.key == "attribute:metadata.prompt_name:support" and flat.source == "attribute"
    # Without the setting the attribute means nothing; blank and non-text values are no name.
    assert declared_prompt({"metadata.prompt_name": "support"}, None) is None
    assert declared_prompt({"prompt.id": "  "}, None) is None
    assert declared_prompt({"metadata": "not json"}, "metadata.prompt_name") is None
    assert declared_prompt({"metadata.prompt_name": ["a"]}, "metadata.prompt_name") is None


def _link(catalog: PromptCatalog, spans: list[dict[str, Any]]) -> list[Any]:
    """Link spans as the sync does, returning their facts."""
    return catalog.link([span_facts("p", s, None, catalog.name_attribute) for s in spans])


def _groups(app: Any) -> dict[str, prompt_identity.Group]:
    """Return the groups by id."""
    with get_services(app.server).sessions() as db:
        return {g.id: g for g in prompt_identity.groups(db)}


def test_the_catalog_identifies_prompts_in_order_registry_id_attribute_template(app) -> None:
    sessions = get_services(app.server).sessions
    catalog = PromptCatalog(sessions, "metadata.prompt_name")
    registry_text = T3
    catalog.registry = {
        template_hash(registry_text): RegistryVersion(
            "ticket-summary", "UHJvbXB0OjE=", registry_text, template_hash(registry_text), "v7"
        )
    }
    facts = _link(
        catalog,
        [
            # Two wordings under one prompt.id that state no version: v1 and v2, in order.
            _span(1, **{"llm.prompt_template.template": T1, "prompt.id": "faq"}),
            _span(2, **{"llm.prompt_template.template": T2, "prompt.id": "faq"}),
            _span(3, **{"llm.prompt_template.template": T1, "prompt.id": "faq"}),
            # The same wording without an id is its template's own prompt.
            _span(4, **{"llm.prompt_template.template": T1}),
            # A stated version wins over numbering.
            _span(5, **{"llm.prompt_template.template": T1, "llm.prompt_template.version": "3"}),
            # The registry comes first, even over a prompt.id.
            _span(6, **{"llm.prompt_template.template": T3, "prompt.id": "other"}),
            # No template but a named attribute: a prompt without a template.
            _span(7, **{"metadata.prompt_name": "support"}),
            # Nothing at all: no prompt.
            _span(8),
        ],
    )
    groups = _groups(app)
    seen = [
        (groups[str(f.prompt_id)].prompt, groups[str(f.prompt_id)].label) if f.prompt_id else None
        for f in facts
    ]
    digest = template_hash(T1)[:8]
    assert seen == [
        ("faq", "v1"),
        ("faq", "v2"),
        ("faq", "v1"),
        (f"template-{digest}", "unversioned"),
        (f"template-{digest}", "3"),
        ("ticket-summary", "v7"),
        ("support", "v1"),
        None,
    ]
    assert facts[0].prompt_id == facts[2].prompt_id
    sources = {groups[str(f.prompt_id)].source for f in facts if f.prompt_id}
    assert sources == {"prompt.id", "template", "registry", "attribute"}
    # A second tick (a fresh catalog) finds the same groups and creates none.
    again = _link(
        PromptCatalog(sessions, "metadata.prompt_name"),
        [_span(9, **{"llm.prompt_template.template": T2, "prompt.id": "faq"})],
    )
    assert again[0].prompt_id == facts[1].prompt_id and len(_groups(app)) == len(groups)


def _first_seen(app: Any, group: Any) -> datetime:
    """Return a group's first_seen_at as the page's service reads it (aware, UTC)."""
    return aware(_groups(app)[str(group)].first_seen_at).astimezone(UTC)


def test_a_group_is_first_seen_when_its_earliest_span_started_and_a_backfill_moves_it_back(
    app,
) -> None:
    sessions = get_services(app.server).sessions
    day = datetime(2026, 10, 27, 9, 30, tzinfo=UTC)

    def faq(n: int, start: datetime, template: str = T1) -> dict[str, Any]:
        return _span(n, start, **{"llm.prompt_template.template": template, "prompt.id": "faq"})

    # One page, out of time order: the earliest start counts, not the sync's clock.
    catalog = PromptCatalog(sessions)
    facts = _link(catalog, [faq(1, day + timedelta(days=3)), faq(2, day), faq(3, day, T2)])
    v1, v2 = facts[0].prompt_id, facts[2].prompt_id
    assert _first_seen(app, v1) == day and _first_seen(app, v2) == day
    # Later pages and ticks with newer spans leave it; older spans (a backfill) move it back,
    # in this catalog (its cache) and in a fresh one (the next tick) alike.
    _link(catalog, [faq(4, day + timedelta(days=20))])
    assert _first_seen(app, v1) == day
    _link(catalog, [faq(5, day - timedelta(hours=1)), faq(6, day - timedelta(days=2))])
    assert _first_seen(app, v1) == day - timedelta(days=2)
    fresh = PromptCatalog(sessions)
    _link(fresh, [faq(7, day + timedelta(days=1)), faq(8, day - timedelta(days=9), T2)])
    assert _first_seen(app, v1) == day - timedelta(days=2)
    assert _first_seen(app, v2) == day - timedelta(days=9)
    # A registry version no span uses yet is first seen when registered; its spans move it.
    registered = datetime.now(UTC)
    digest = template_hash(T3)
    ids = fresh.ensure(
        {(digest, "v1", registry_key("UHJvbXB0OjI=")): GroupSpec(T3, "registry", "ticket")}
    )
    (group,) = ids.values()
    assert _first_seen(app, group) >= registered - timedelta(seconds=5)
    fresh.registry = {digest: RegistryVersion("ticket", "UHJvbXB0OjI=", T3, digest, "v1")}
    linked = _link(fresh, [_span(9, day, **{"llm.prompt_template.template": T3})])
    assert linked[0].prompt_id == group and _first_seen(app, group) == day


def test_the_page_shows_first_seen_in_the_display_zone(app, client, auth) -> None:
    sessions = get_services(app.server).sessions
    start = datetime(2026, 10, 27, 9, 30, tzinfo=UTC)
    facts = _link(
        PromptCatalog(sessions),
        [_span(1, start, **{"llm.prompt_template.template": T1, "prompt.id": "faq"})],
    )
    auth.create("admin@example.com", role="admin")
    auth.login("admin@example.com")
    rows: dict[str, dict[str, Any]] = {}
    for label, zone in (("v7", "Europe/Berlin"), ("v8", "UTC")):
        answer = _press(client, "relabel", [str(facts[0].prompt_id)], label, zone=zone)
        assert answer.status_code == 200
        data = answer.get_json()["response"]["prompts-groups"]["rowData"]
        rows[zone] = {row["id"]: row for row in data}[str(facts[0].prompt_id)]
    assert rows["Europe/Berlin"]["first_seen_at"] == "2026-10-27 10:30 CET"
    assert rows["UTC"]["first_seen_at"] == "2026-10-27 09:30 UTC"


def _seed_groups(app: Any) -> dict[str, str]:
    """Create three groups: faq v1, faq v2 (by prompt.id) and a template-only wording."""
    catalog = PromptCatalog(get_services(app.server).sessions)
    facts = _link(
        catalog,
        [
            _span(1, **{"llm.prompt_template.template": T1, "prompt.id": "faq"}),
            _span(2, **{"llm.prompt_template.template": T2, "prompt.id": "faq"}),
            _span(3, **{"llm.prompt_template.template": T3}),
        ],
    )
    return {
        "v1": str(facts[0].prompt_id),
        "v2": str(facts[1].prompt_id),
        "loose": str(facts[2].prompt_id),
    }


def _view(app: Any) -> dict[str, tuple[str | None, str | None]]:
    """Return each group's prompt name and label as pages see them."""
    with get_services(app.server).sessions() as db:
        names = prompt_filters.prompt_names(db)
        mapping = prompt_identity.prompt_map(db)
    return {
        group: (names.name(prompt), label)
        for group, prompt, label in zip(
            mapping.groups, mapping.prompts, mapping.labels, strict=True
        )
    }


def test_merge_relabel_rename_and_undo_are_audited_and_reversible(app) -> None:
    ids = _seed_groups(app)
    sessions = get_services(app.server).sessions
    before = _view(app)
    loose_name = before[ids["loose"]][0]
    with sessions.begin() as db:
        merged = prompt_identity.merge(db, "ada@example.com", [ids["loose"]], "faq")
        relabelled = prompt_identity.relabel(db, "ada@example.com", ids["loose"], "v3")
    assert _view(app)[ids["loose"]] == ("faq", "v3")
    # The emptied prompt now points at faq; its name is free no more but lists nowhere.
    assert loose_name not in prompt_filters_names(app)
    with sessions.begin() as db:
        renamed = prompt_identity.rename(db, "bob@example.com", "faq", "FAQ bot")
    assert {g: v[0] for g, v in _view(app).items()} == dict.fromkeys(ids.values(), "FAQ bot")
    with sessions() as db:
        history = prompt_identity.history(db)
        rows = db.scalars(select(PromptChange).order_by(PromptChange.id)).all()
    assert [c.action for c in reversed(history)] == ["merge", "relabel", "rename"]
    assert [r.actor for r in rows] == ["ada@example.com", "ada@example.com", "bob@example.com"]
    assert all(r.at is not None and json.loads(r.before) != json.loads(r.after) for r in rows)
    # An undo of the merge while the relabel stands is refused: undo in reverse order.
    with sessions.begin() as db, pytest.raises(PromptIdentityError, match="Later changes"):
        prompt_identity.undo(db, "ada@example.com", merged.id)
    with sessions.begin() as db:
        prompt_identity.undo(db, "ada@example.com", renamed.id)
        prompt_identity.undo(db, "ada@example.com", relabelled.id)
        prompt_identity.undo(db, "ada@example.com", merged.id)
    assert _view(app) == before
    assert loose_name in prompt_filters_names(app)
    with sessions.begin() as db, pytest.raises(PromptIdentityError, match="already undone"):
        prompt_identity.undo(db, "ada@example.com", merged.id)
    with sessions() as db:
        assert db.get_one(PromptChange, merged.id).undone_by_id is not None


def prompt_filters_names(app: Any) -> list[str]:
    """Return the prompt names the filter bar offers."""
    with get_services(app.server).sessions() as db:
        return prompt_filters.prompt_names(db).names()


def test_a_new_wording_of_a_merged_away_prompt_follows_the_merge(app) -> None:
    ids = _seed_groups(app)
    sessions = get_services(app.server).sessions
    with sessions.begin() as db:
        prompt_identity.merge(db, "ada@example.com", [ids["v1"], ids["v2"]], "answers")
    facts = _link(
        PromptCatalog(sessions),
        [_span(10, **{"llm.prompt_template.template": "A third wording", "prompt.id": "faq"})],
    )
    assert _view(app)[str(facts[0].prompt_id)] == ("answers", "v3")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db, ids: prompt_identity.merge(db, "a", [], "x"), "at least one"),
        (lambda db, ids: prompt_identity.merge(db, "a", ["nope"], "x"), "not a template group"),
        (lambda db, ids: prompt_identity.merge(db, "a", [str(uuid.uuid4())], "x"), "No template"),
        (lambda db, ids: prompt_identity.merge(db, "a", [ids["v1"]], "  "), "Give a prompt name"),
        (lambda db, ids: prompt_identity.merge(db, "a", [ids["v1"]], "x" * 201), "at most 200"),
        (lambda db, ids: prompt_identity.merge(db, "a", [ids["v1"]], "a\nb"), "control"),
        (lambda db, ids: prompt_identity.relabel(db, "a", ids["v1"], ""), "version label"),
        (lambda db, ids: prompt_identity.rename(db, "a", "nope", "x"), "No prompt named"),
        (lambda db, ids: prompt_identity.rename(db, "a", "faq", "faq"), "already named"),
        (lambda db, ids: prompt_identity.undo(db, "a", "12x"), "not a change number"),
        (lambda db, ids: prompt_identity.undo(db, "a", 999), "No change number"),
    ],
)
def test_bad_changes_get_a_clear_message(app, call: Any, message: str) -> None:
    ids = _seed_groups(app)
    with (
        get_services(app.server).sessions.begin() as db,
        pytest.raises(PromptIdentityError, match=message),
    ):
        call(db, ids)


def test_renaming_onto_a_taken_name_says_merge_instead(app) -> None:
    ids = _seed_groups(app)
    loose = _view(app)[ids["loose"]][0]
    assert loose is not None
    with (
        get_services(app.server).sessions.begin() as db,
        pytest.raises(PromptIdentityError, match="merge"),
    ):
        prompt_identity.rename(db, "a", "faq", loose)


def test_the_cli_lists_merges_and_undoes(app) -> None:
    ids = _seed_groups(app)
    runner = app.server.test_cli_runner()
    listed = runner.invoke(args=["prompts", "list"])
    assert listed.exit_code == 0 and ids["loose"] in listed.output and "faq" in listed.output
    merged = runner.invoke(
        args=["prompts", "merge", "faq", ids["loose"], "--actor", "ops@example.com"]
    )
    assert merged.exit_code == 0, merged.output
    assert "Merged 1 template group into 'faq'" in merged.output
    assert _view(app)[ids["loose"]][0] == "faq"
    history = runner.invoke(args=["prompts", "history"])
    assert "ops@example.com" in history.output
    number = merged.output.split(":")[0].split()[-1]
    undone = runner.invoke(args=["prompts", "undo", number])
    assert undone.exit_code == 0 and _view(app)[ids["loose"]][0] != "faq"
    bad = runner.invoke(args=["prompts", "relabel", "not-an-id", "v2"])
    assert bad.exit_code != 0 and "not a template group id" in bad.output


CHANGE_OUTPUT = (
    "..prompts-message.children...prompts-groups.rowData...prompts-history.children"
    "...prompts-rename-from.options.."
)


def _press(
    client: Any,
    button: str,
    selected: list[str],
    name: str | None = None,
    zone: str | None = "UTC",
) -> Any:
    """Press a button of the prompts page as the browser does, with groups selected."""
    values: dict[str, int | None] = {"merge": None, "relabel": None, "rename": None}
    values[button] = 1
    return client.post(
        "/_dash-update-component",
        json={
            "output": CHANGE_OUTPUT,
            "outputs": [
                {"id": "prompts-message", "property": "children"},
                {"id": "prompts-groups", "property": "rowData"},
                {"id": "prompts-history", "property": "children"},
                {"id": "prompts-rename-from", "property": "options"},
            ],
            "inputs": [
                {"id": f"prompts-{b}", "property": "n_clicks", "value": v}
                for b, v in values.items()
            ]
            + [[]],
            "state": [
                {
                    "id": "prompts-groups",
                    "property": "selectedRows",
                    "value": [{"id": s} for s in selected],
                },
                {"id": "prompts-merge-name", "property": "value", "value": name},
                {"id": "prompts-label", "property": "value", "value": name},
                {"id": "prompts-rename-from", "property": "value", "value": None},
                {"id": "prompts-rename-to", "property": "value", "value": None},
                {"id": "prompts-zone", "property": "data", "value": zone},
            ],
            "changedPropIds": [f"prompts-{button}.n_clicks"],
        },
    )


def test_only_admins_change_prompts_on_the_page(app, client, auth) -> None:
    ids = _seed_groups(app)
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    page = client.get("/prompts")
    assert page.status_code == 200
    refused = _press(client, "merge", [ids["loose"]], "faq")
    assert refused.status_code == 200 and "Only admins" in refused.get_data(as_text=True)
    assert _view(app)[ids["loose"]][0] != "faq"
    auth.logout()
    auth.create("admin@example.com", role="admin")
    auth.login("admin@example.com")
    done = _press(client, "merge", [ids["loose"]], "faq")
    assert done.status_code == 200 and "Merged 1 template group" in done.get_data(as_text=True)
    assert _view(app)[ids["loose"]][0] == "faq"
    bad = _press(client, "relabel", [ids["loose"], ids["v1"]], "v9")
    assert "exactly one" in bad.get_data(as_text=True)
    with get_services(app.server).sessions() as db:
        change = db.scalars(select(PromptChange)).one()
    assert change.actor == "admin@example.com"


def test_the_migration_gives_existing_groups_the_identity_they_had(tmp_path) -> None:
    import sqlalchemy as sa

    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    engine = sa.create_engine(url)
    rows = [
        # Two versions of a registry prompt, and two of a template-only one.
        ("ticket", "v1", "h1", "UHJvbXB0OjE="),
        ("ticket", "v2", "h2", "UHJvbXB0OjE="),
        ("template-aaaaaaaa", "unversioned", "aaaaaaaa11", None),
        ("template-aaaaaaaa", "3", "aaaaaaaa11", None),
    ]
    ids = [uuid.uuid4() for _ in rows]
    with engine.begin() as conn:
        for ident, (name, version, digest, phoenix_id) in zip(ids, rows, strict=True):
            conn.execute(
                sa.text(
                    "INSERT INTO prompts (id, name, version, template, template_hash, "
                    "phoenix_prompt_id, first_seen_at, last_seen_at) VALUES "
                    "(:id, :name, :version, 't', :digest, :pid, :now, :now)"
                ),
                {
                    "id": ident.hex,
                    "name": name,
                    "version": version,
                    "digest": digest,
                    "pid": phoenix_id,
                    "now": datetime.now(UTC),
                },
            )
    upgrade(url)
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT p.id, p.label, p.identity_key, i.name, i.source FROM prompts p "
                "JOIN prompt_identities i ON i.id = p.identity_id ORDER BY p.version"
            )
        ).all()
    engine.dispose()
    by_id = {uuid.UUID(str(r[0])): r[1:] for r in found}
    assert by_id[ids[0]] == ("v1", "registry:UHJvbXB0OjE=", "ticket", "registry")
    assert by_id[ids[1]] == ("v2", "registry:UHJvbXB0OjE=", "ticket", "registry")
    assert by_id[ids[2]] == ("unversioned", "template:aaaaaaaa11", "template-aaaaaaaa", "template")
    assert by_id[ids[3]][0] == "3" and by_id[ids[3]][2] == "template-aaaaaaaa"
