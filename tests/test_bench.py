"""The benchmark harness itself: alternation, statistics and the results table."""

from __future__ import annotations

from dash._utils import stringify_id

from bench.common import Stats, interleave
from bench.page_bench import REDRAWS
from bench.suites import (
    TABLE_END,
    TABLE_START,
    _poll_payloads,
    _seen_watermark,
    render_table,
    write_table,
)
from components.filter_bar import FilterBarAIO
from load.client import parse_dependencies


def test_interleave_alternates_and_pairs_rounds() -> None:
    calls: list[str] = []
    pair = interleave(lambda: calls.append("a"), lambda: calls.append("b"), rounds=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert pair.a.n == pair.b.n == pair.ratio.n == 4


def test_stats_give_median_and_quartiles() -> None:
    stats = Stats.of([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (stats.median, stats.p25, stats.p75, stats.n) == (3.0, 2.0, 4.0, 5)
    assert Stats.of([7.0]) == Stats(7.0, 7.0, 7.0, 1)


def test_table_marks_targets_and_lands_between_the_readme_markers(tmp_path) -> None:
    values = {
        "proxy_overhead_ratio": 1.02,
        "proxy_overhead_ratio_p25": 1.0,
        "proxy_overhead_ratio_p75": 1.05,
        "sync_idle_tick_ratio": 3.0,
        "csv_export_rows_per_s": 90000.0,
    }
    table = render_table(values)
    assert (
        "| `proxy_overhead_ratio` | span page through /api/phoenix vs direct "
        "| 1.02 (1 to 1.05) | ≤ 1.10 | yes |" in table
    )
    assert "| `sync_idle_tick_ratio` |" in table and "| **no** |" in table
    assert "90000 | report | report |" in table
    assert "`analytics_growth_ratio` | cold callback 50k ÷ 1k | not run |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{TABLE_START}\nSTALE-ROW\n{TABLE_END}\nrest\n")
    write_table(values, tmp_path / "RESULTS.md", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "STALE-ROW" not in text
    assert table in text and table in (tmp_path / "RESULTS.md").read_text()


def test_poll_payloads_are_the_requests_the_bar_answers(app, client, auth) -> None:
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    for page, extra in (("analytics", []), ("home", ["home-status"])):
        seen: int | None = None
        for tick in range(2):
            answered: list[str] = []
            for payload in _poll_payloads(page, seen):
                response = client.post("/_dash-update-component", json=payload)
                assert response.status_code == 200, response.get_data(as_text=True)
                body = response.json or {}
                answered += list(body["response"])
                seen = _seen_watermark(page, body, seen)
            status = stringify_id(FilterBarAIO.ids.live_status(page))
            # The live status always; the watermark once it moved; home's banner too.
            assert {status, *extra} <= set(answered), (tick, answered)


def test_page_bench_fires_callbacks_the_app_registers(client, auth) -> None:
    auth.create("viewer@example.com", role="viewer")
    auth.login("viewer@example.com")
    callbacks = {
        ".".join(c.outputs[0]): c
        for c in parse_dependencies(client.get("/_dash-dependencies").json or [])
    }
    arriving = {*REDRAWS.values(), "analytics-kpis.children", "analytics-pane.children"}
    arriving.add("analytics-compare.children")
    grids = {f"{page}-grid.getRowsResponse" for page in ("traces", "evaluations")}
    assert arriving | grids <= set(callbacks)
    # The ones the bench times on arrival are the ones the browser fires on arrival.
    assert not any(callbacks[name].prevent_initial_call for name in arriving)
