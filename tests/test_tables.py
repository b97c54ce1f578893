"""The table registry: one definition per table, for the page's grid and its CSV export alike."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

import pytest

from pages._shared import page_request, table_context
from services import prompt_filters, tables
from services.container import get_services
from services.filters import FilterState
from services.prompt_filters import version_labels
from store.analytics import MAX_PAGE_ROWS, GroupKey

from .conftest import AuthActions
from .seed import seed


@pytest.fixture
def seeded_app(app: Any) -> Any:
    """The test's app with 60 LLM calls of two prompts that share the version label "v1"."""
    app.seeded = seed(app)
    return app


def _csv(client: Any, path: str) -> list[list[str]]:
    response = client.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(response.get_data(as_text=True), newline="")))


def _signed_in(app: Any) -> Any:
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    return client


def _comparison_args(app: Any) -> dict[str, str]:
    ids = app.seeded.prompt_ids
    return {
        "a": tables.version_value(ids[("alpha", "v1")], "v1"),
        "b": tables.version_value(ids[("beta", "v1")], "v1"),
    }


def test_every_table_shows_on_the_page_what_its_csv_holds(seeded_app) -> None:
    client = _signed_in(seeded_app)
    args = _comparison_args(seeded_app)
    for name, entry in tables.TABLES.items():
        with seeded_app.server.test_request_context("/"):
            context = table_context("?range=24h")
            context = tables.Context(context.store, context.filters, context.names, args)
            page = entry.view(context)
        query = "?range=24h" + (f"&a={args['a']}&b={args['b']}" if name == "comparison" else "")
        header = _csv(client, f"/api/export/analytics/{name}.csv{query}")[0]
        assert [c.id for c in page.columns] == header, name
        assert page.rows, name
        # The grid gets one value per column, keyed by the column's id.
        assert set(tables.records(page)[0]) == set(header), name


def test_paged_tables_never_return_more_than_a_page(seeded_app) -> None:
    paged = [entry for entry in tables.TABLES.values() if entry.paged]
    assert {e.name for e in paged} == {"llm-calls", "traces", "evaluations"}
    with seeded_app.server.test_request_context("/"):
        context = table_context("?range=24h")
        for entry in paged:
            block = entry.view(context, page_request({"startRow": 10, "endRow": 20}))
            assert len(block.rows) == 10 and block.total > 20, entry.name
            greedy = entry.view(context, tables.PageRequest(limit=10 * MAX_PAGE_ROWS))
            assert len(greedy.rows) <= MAX_PAGE_ROWS, entry.name
            assert len(greedy.rows) == greedy.total  # the seed is smaller than a page


def test_paged_tables_sort_in_the_engine(seeded_app) -> None:
    with seeded_app.server.test_request_context("/"):
        context = table_context("?range=24h")
        calls = tables.table("llm-calls")
        request = {
            "startRow": 0,
            "endRow": 5,
            "sortModel": [{"colId": "latency_ms", "sort": "asc"}],
        }
        page = calls.view(context, page_request(request))
        latency = [r["latency_ms"] for r in tables.records(page)]
        assert latency == sorted(latency) and latency[0] == 100.0
        # A column the engine cannot sort by falls back to the newest first.
        unsorted = calls.view(context, page_request({"sortModel": [{"colId": "prompt"}]}))
        times = [r["start_time"] for r in tables.records(unsorted)]
        assert times == sorted(times, reverse=True)


def test_an_export_of_n_rows_streams_n_rows_with_empty_cells_for_unknowns(app) -> None:
    app.seeded = seed(app, spans=2500)
    client = _signed_in(app)
    response = client.get("/api/export/analytics/llm-calls.csv?range=7d")
    assert response.is_streamed
    chunks = list(response.response)
    assert len(chunks) > 2  # flushed every FLUSH_ROWS rows, never built whole
    rows = list(csv.DictReader(io.StringIO(b"".join(chunks).decode(), newline="")))
    assert len(rows) == 2500
    unknown = [r for r in rows if int(r["span_id"].split("-")[1]) % 5 == 0]
    assert unknown and all(r["cost"] == "" and r["total_tokens"] == "" for r in unknown)
    assert not any("nan" in value.lower() for r in rows for value in r.values() if value)
    known = next(r for r in rows if r["span_id"] == "span-000001")
    assert known["cost"] == repr(0.000123456789 * 2)  # full precision
    assert known["start_time"].endswith("+00:00")  # ISO 8601 with its offset
    unnamed = next(r for r in rows if r["span_id"] == "span-000003")
    assert unnamed["prompt"] == "" and unnamed["prompt_version"] == "unversioned"
    assert {r["prompt"] for r in rows} == {"alpha", "beta", ""}


def test_the_comparison_csv_says_yes_or_no_as_the_page_does(seeded_app) -> None:
    client = _signed_in(seeded_app)
    args = _comparison_args(seeded_app)
    rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(
                    f"/api/export/analytics/comparison.csv?a={args['a']}&b={args['b']}"
                ).get_data(as_text=True)
            )
        )
    )
    assert rows and {r["significant"] for r in rows} <= {"yes", "no"}
    assert any("<= 5000 rows" in r["method"] for r in rows)
    # alpha's v1 alone (15 calls), not with beta's v1 too (30); a mean is over the calls with a
    # known value (tokens) or the scored annotations, so its n may be lower.
    calls = {int(r["n_a"]) for r in rows if "latency" in r["metric"] or r["metric"] == "error rate"}
    assert calls == {15}
    assert all(0 < int(r["n_a"]) <= 15 for r in rows)


def test_versions_of_two_prompts_sharing_a_label_stay_apart(seeded_app) -> None:
    ids = seeded_app.seeded.prompt_ids
    with seeded_app.server.test_request_context("/"):
        services = get_services(seeded_app.server)
        with services.sessions() as db:
            names = prompt_filters.prompt_names(db)
        keys = [GroupKey(prompt_id=ids[k], prompt_version=k[1]) for k in ids]
        assert sorted(version_labels(keys, names).values()) == [
            "alpha · v1",
            "alpha · v2",
            "beta · v1",
        ]
        # One prompt alone: its versions need no prompt name.
        alpha = [k for k in keys if names.name(k.prompt_id) == "alpha"]
        assert sorted(version_labels(alpha, names).values()) == ["v1", "v2"]
        module = sys.modules["pages.analytics"]
        outputs = module.redraw(None, "prompt_version", "?range=24h")
        options = outputs[6]
        assert sorted(o["label"] for o in options) == [
            "(no prompt) · unversioned",
            "alpha · v1",
            "alpha · v2",
            "beta · v1",
        ]
        legend = {trace["name"] for trace in outputs[2]["data"]}
        assert {"alpha · v1", "beta · v1"} <= legend


def test_a_prompt_filter_resolves_to_its_versions_only(seeded_app) -> None:
    with seeded_app.server.test_request_context("/"):
        context = table_context("?prompt=beta&range=24h")
        page = tables.table("versions").view(context)
        assert {(r[0], r[1]) for r in page.rows} == {("beta", "v1")}
        nothing = table_context("?prompt=nope&range=24h")
        assert tables.table("llm-calls").view(nothing).total == 0
        with get_services(seeded_app.server).sessions() as db:
            message = prompt_filters.unknown_filter_message(
                db, context.store, FilterState(prompt="nope")
            )
        assert message == "No prompt named 'nope' has synced data yet."
