"""The benchmark harness itself: alternation, statistics and the results table."""

from __future__ import annotations

from bench.common import Stats, interleave
from bench.suites import TABLE_END, TABLE_START, render_table, write_table


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
