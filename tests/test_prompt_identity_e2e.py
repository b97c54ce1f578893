"""Prompt identity end to end: OpenInference spans over OTLP into a real Phoenix, synced, then
compared on the dashboard; an admin merges two wordings in the browser, and undoes it.

The expected numbers are computed here from the plan (numpy), never by the code under test.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest

from devtools.demo import ensure_demo_user
from devtools.phoenix import PhoenixServer
from services import prompt_filters, prompt_identity
from services.container import Services
from tests.browser import click, login, save_screenshot
from tests.conftest import synced_phoenix_app
from tests.otlp_sets import PlannedSpan, send_spans

pytestmark = [pytest.mark.integration]

UID = uuid.uuid4().hex[:8]
PROJECT = f"identity-{UID}"
FAQ = f"faq-{UID}"
ROUTER = f"router-{UID}"
MERGED = f"summary-{UID}"
# Wordings: two under one prompt.id, two under one metadata.prompt_name, two with neither.
W1, W2 = f"Answer the question ({UID}): {{q}}", f"Answer briefly, citing policy ({UID}): {{q}}"
W5, W6 = f"Route the ticket ({UID}): {{t}}", f"Route the ticket to a team ({UID}): {{t}}"
W3, W4 = f"Summarise ({UID}): {{doc}}", f"Summarise in three bullets ({UID}): {{doc}}"


@dataclass(frozen=True)
class Wording:
    """One wording's planned calls: its template and each call's latency."""

    template: str
    latencies: tuple[float, ...]
    fields: dict[str, Any]


WORDINGS = {
    "w1": Wording(W1, tuple(100.0 + 7 * i for i in range(12)), {"prompt_id": FAQ}),
    "w2": Wording(W2, tuple(260.0 + 11 * i for i in range(12)), {"prompt_id": FAQ}),
    "w5": Wording(W5, tuple(50.0 + 3 * i for i in range(8)), {"metadata": {"prompt_name": ROUTER}}),
    "w6": Wording(W6, tuple(90.0 + 5 * i for i in range(8)), {"metadata": {"prompt_name": ROUTER}}),
    "w3": Wording(W3, tuple(400.0 + 13 * i for i in range(10)), {}),
    "w4": Wording(W4, tuple(330.0 + 17 * i for i in range(10)), {}),
}


def _spans(anchor: datetime, key: str) -> list[PlannedSpan]:
    """Plan one wording's calls, a minute apart, with whole-millisecond latencies."""
    wording = WORDINGS[key]
    return [
        PlannedSpan.planned(
            PROJECT,
            f"{key}-{i}",
            start=anchor + timedelta(minutes=i),
            latency_ms=latency,
            model="gpt-4o-mini",
            template=wording.template,
            prompt_tokens=100,
            completion_tokens=20,
            total_tokens=120,
            **wording.fields,
        )
        for i, latency in enumerate(wording.latencies)
    ]


@dataclass(frozen=True)
class Synced:
    """The synced app and a logged-in admin's client."""

    app: Any
    client: Any
    services: Services


@pytest.fixture(scope="module")
def synced(
    phoenix_server: PhoenixServer,
    migrated_sqlite_template: Path,
    chdb_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Synced]:
    """Send the wordings in order (so first-seen order is the plan's), sync once, log in."""
    anchor = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    for key in ("w1", "w2", "w5", "w6", "w3", "w4"):
        send_spans(phoenix_server.url, _spans(anchor, key))
    with synced_phoenix_app(
        phoenix_server.url,
        migrated_sqlite_template,
        chdb_dir,
        tmp_path_factory.mktemp("identity"),
        PROMPT_NAME_ATTRIBUTE="metadata.prompt_name",
    ) as done:
        ensure_demo_user(done.app)
        yield Synced(done.app, done.client, done.services)


def export(synced: Synced, table: str, **query: str) -> list[dict[str, str]]:
    """Download a table's CSV export of the analytics page as the logged-in analyst."""
    response = synced.client.get(
        f"/api/export/analytics/{table}.csv?{urlencode({'project': PROJECT, **query})}"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))


def prompt_key(synced: Synced, name: str) -> str:
    """Return the id of the prompt of that name, as comparison sides name it."""
    with synced.services.sessions() as db:
        names = prompt_identity.identity_names(db)
    return next(ident for ident, found in names.items() if found == name)


def versions(synced: Synced, prompt: str) -> dict[str, dict[str, str]]:
    """Return the versions table of one prompt, by version label."""
    return {r["prompt_version"]: r for r in export(synced, "versions", prompt=prompt)}


def assert_version(row: dict[str, str], latencies: tuple[float, ...]) -> None:
    """Check a versions row against numpy over the planned latencies."""
    assert int(row["count"]) == len(latencies)
    p50, p95 = np.quantile(np.array(latencies), [0.5, 0.95])
    assert float(row["p50_ms"]) == pytest.approx(p50, rel=1e-9)
    assert float(row["p95_ms"]) == pytest.approx(p95, rel=1e-9)


def compare(synced: Synced, prompt: str, a: str, b: str) -> dict[str, dict[str, str]]:
    """Download the comparison of two versions of a prompt, by metric."""
    ident = prompt_key(synced, prompt)
    rows = export(synced, "comparison", a=f"{ident}:{a}", b=f"{ident}:{b}")
    return {r["metric"]: r for r in rows}


def test_two_wordings_with_one_prompt_id_compare_as_v1_and_v2(synced: Synced) -> None:
    rows = versions(synced, FAQ)
    assert set(rows) == {"v1", "v2"} and {r["prompt"] for r in rows.values()} == {FAQ}
    assert_version(rows["v1"], WORDINGS["w1"].latencies)
    assert_version(rows["v2"], WORDINGS["w2"].latencies)
    p50 = compare(synced, FAQ, "v1", "v2")["p50 latency (ms)"]
    expected = np.median(WORDINGS["w2"].latencies) - np.median(WORDINGS["w1"].latencies)
    assert float(p50["delta"]) == pytest.approx(expected, rel=1e-9)
    assert (int(p50["n_a"]), int(p50["n_b"])) == (12, 12)


def test_a_named_attribute_identifies_a_prompt_across_wordings(synced: Synced) -> None:
    rows = versions(synced, ROUTER)
    assert set(rows) == {"v1", "v2"}
    assert_version(rows["v1"], WORDINGS["w5"].latencies)
    assert_version(rows["v2"], WORDINGS["w6"].latencies)


def _group_id(synced: Synced, template: str) -> str:
    """Return the id of the template group of a wording."""
    with synced.services.sessions() as db:
        return next(g.id for g in prompt_identity.groups(db) if g.template == template)


def _template_prompt_names(synced: Synced) -> set[str]:
    """Return the prompts the two loose wordings belong to."""
    with synced.services.sessions() as db:
        groups = {g.template: g.prompt for g in prompt_identity.groups(db)}
    return {groups[W3], groups[W4]}


def _in_browser(dash_duo: Any, action: Any, expect: str) -> None:
    """Do something on the prompts page and wait for its message."""
    action()
    dash_duo.wait_for_contains_text("#prompts-message", expect, timeout=20)


def _select(dash_duo: Any, *group_ids: str) -> None:
    """Select exactly these groups' rows in the grid by their checkboxes."""
    selected = "#prompts-groups .ag-row.ag-row-selected .ag-checkbox-input"
    while boxes := dash_duo.driver.find_elements("css selector", selected):
        _click(dash_duo, boxes[0])
    for group in group_ids:
        row = f'#prompts-groups .ag-row[row-id="{group}"]'
        _click(dash_duo, dash_duo.wait_for_element(f"{row} .ag-checkbox-input", timeout=20))
        dash_duo.wait_for_element(f"{row}.ag-row-selected", timeout=10)


def _click(dash_duo: Any, element: Any) -> None:
    """Scroll an element to the middle of the window, then click it."""
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element
    )
    element.click()


def _type(dash_duo: Any, selector: str, text: str) -> None:
    """Replace an input's text."""
    field = dash_duo.find_element(selector)
    field.clear()
    field.send_keys(text)


@pytest.mark.browser
def test_two_wordings_without_an_id_merge_in_the_ui_compare_and_undo_splits_them(
    dash_duo, synced: Synced
) -> None:
    loose = _template_prompt_names(synced)
    assert len(loose) == 2 and MERGED not in loose
    w3, w4 = _group_id(synced, W3), _group_id(synced, W4)
    dash_duo.driver.set_window_size(1440, 900)
    dash_duo.start_server(synced.app, navigate=False)
    login(dash_duo, "/prompts")
    dash_duo.wait_for_element(f'#prompts-groups .ag-row[row-id="{w3}"]', timeout=30)

    _select(dash_duo, w3, w4)
    _type(dash_duo, "#prompts-merge-name", MERGED)
    _in_browser(dash_duo, lambda: click(dash_duo, "#prompts-merge"), "Merged 2")
    for group, label in ((w3, "v1"), (w4, "v2")):
        _select(dash_duo, group)
        _type(dash_duo, "#prompts-label", label)
        _in_browser(dash_duo, lambda: click(dash_duo, "#prompts-relabel"), f"as '{label}'")
    save_screenshot(dash_duo, "prompts")

    # Past calls follow at once: no resync.
    rows = versions(synced, MERGED)
    assert set(rows) == {"v1", "v2"}
    assert_version(rows["v1"], WORDINGS["w3"].latencies)
    assert_version(rows["v2"], WORDINGS["w4"].latencies)
    p95 = compare(synced, MERGED, "v1", "v2")["p95 latency (ms)"]
    expected = float(np.quantile(WORDINGS["w4"].latencies, 0.95)) - float(
        np.quantile(WORDINGS["w3"].latencies, 0.95)
    )
    assert float(p95["delta"]) == pytest.approx(expected, rel=1e-9)

    # Undo all of it, newest first, with the history's buttons (changes 3, 2 and 1).
    for number in (3, 2, 1):
        _click(dash_duo, dash_duo.wait_for_element("#prompts-history-list button", timeout=20))
        dash_duo.wait_for_contains_text("#prompts-message", f"Undid change {number}", timeout=20)
    assert _template_prompt_names(synced) == loose
    assert export(synced, "versions", prompt=MERGED) == []
    for key in ("w3", "w4"):
        rows = versions(synced, _owner(synced, key))
        assert set(rows) == {"unversioned"}
        assert_version(rows["unversioned"], WORDINGS[key].latencies)
    assert dash_duo.get_logs() == []


def _owner(synced: Synced, key: str) -> str:
    """Return the name of the prompt a loose wording belongs to."""
    with synced.services.sessions() as db:
        return next(
            g.prompt for g in prompt_identity.groups(db) if g.template == WORDINGS[key].template
        )


def test_filter_options_offer_labels_of_the_chosen_prompt(synced: Synced) -> None:
    with synced.services.sessions() as db:
        options = prompt_filters.filter_options(db, synced.services.store, FAQ)
    assert FAQ in options["prompt"] and ROUTER in options["prompt"]
    assert options["versions"] == ["v1", "v2"]
