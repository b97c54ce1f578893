"""Charts that tell the truth: zero-filled bars, broken lines, greyed small n, one colour a version.

The figure builders are checked on hand-made cells; the bucket arithmetic and the per-bucket
trace counts against the facts store itself, so a drill-down's bounds pick exactly the calls and
traces its point stood for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from components.charts import (
    MIN_CALLS,
    TOO_FEW,
    Buckets,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    clicked_href,
    create_bucket_figure,
    drill_href,
    min_calls_for_quantile,
)
from components.colors import (
    MUTED,
    PALETTE,
    catalogue_colors,
    group_color_key,
    group_order,
    natural_key,
    series_color,
    version_key,
)
from services.filters import parse_query
from services.prompt_filters import PromptNames
from store import analytics as store_analytics
from store.analytics import Filters, GroupKey
from store.facts import FactStore, SpanRow, open_store
from store.filters import PromptMap

T0 = datetime(2026, 11, 20, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _buckets(count: int = 4) -> Buckets:
    return Buckets([T0 + i * HOUR for i in range(count + 1)])


def _series(name: str, cells: dict[int, Cell], color: str = PALETTE[0]) -> ChartSeries:
    return ChartSeries(name, color, {T0 + i * HOUR: cell for i, cell in cells.items()})


def test_counts_are_bars_over_every_bucket_with_zeros() -> None:
    series = _series("v1", {0: Cell(3.0, 3, 2), 2: Cell(5.0, 5, 5)})
    figure = create_bucket_figure(
        _buckets(), [series], "Volume", "LLM calls", Hover("count"), kind="bars"
    )
    (trace,) = figure["data"]
    assert trace["type"] == "bar"
    assert trace["y"] == [3.0, 0.0, 5.0, 0.0]
    assert trace["x"] == [
        "2026-11-20 00:00",
        "2026-11-20 01:00",
        "2026-11-20 02:00",
        "2026-11-20 03:00",
    ]
    # Every tooltip shows the n, and the traces the drill-down will list.
    assert trace["customdata"][0][1:3] == [3, " in 2 traces"]
    assert "n = %{customdata[1]:,} calls" in trace["hovertemplate"]
    assert figure["layout"]["xaxis"]["title"]["text"] == "time (UTC)"


def test_a_line_never_bridges_an_empty_bucket_and_shows_lone_points() -> None:
    series = _series("v1", {0: Cell(120.0, 9), 2: Cell(150.0, 7), 3: Cell(140.0, 6)})
    figure = create_bucket_figure(_buckets(), [series], "Latency", "latency (ms)", Hover("ms"))
    (trace,) = figure["data"]
    assert trace["y"] == [120.0, None, 150.0, 140.0]
    assert trace["connectgaps"] is False
    assert trace["mode"] == "lines+markers"
    assert figure["layout"]["yaxis"]["ticksuffix"] == " ms"


def test_a_rate_from_too_few_calls_is_grey_and_off_the_line() -> None:
    series = _series("v1", {0: Cell(0.1, 40, 30), 1: Cell(1.0, 1, 1), 2: Cell(0.05, 20, 18)})
    figure = create_bucket_figure(
        _buckets(), [series], "Error rate", "error rate", Hover("percent"), min_calls=MIN_CALLS
    )
    line, grey = figure["data"]
    assert line["y"] == [0.1, None, 0.05, None]
    assert grey["y"] == [1.0] and grey["marker"]["color"] == MUTED
    assert grey["showlegend"] is False and grey["legendgroup"] == line["legendgroup"]
    value, n, note, *_ = grey["customdata"][0]
    assert (value, n) == ("100.0%", 1)
    assert note.endswith(f"({TOO_FEW}: under {MIN_CALLS})")


def test_a_percentile_needs_the_calls_to_have_one_above_it() -> None:
    assert [min_calls_for_quantile(q) for q in (0.5, 0.9, 0.95, 0.99)] == [2, 10, 20, 100]
    # A p95 of 12 calls is their slowest call: grey, off the line, its tooltip says why.
    series = _series("v1", {0: Cell(900.0, 40), 1: Cell(2500.0, 12), 2: Cell(880.0, 20)})
    figure = create_bucket_figure(
        _buckets(), [series], "Latency p95", "latency (ms)", Hover("ms"), min_calls=20
    )
    line, grey = figure["data"]
    assert line["y"] == [900.0, None, 880.0, None]
    assert grey["y"] == [2500.0] and grey["customdata"][0][2].endswith(f"({TOO_FEW}: under 20)")


def test_one_percentile_is_one_trace_per_series_in_version_order() -> None:
    names = PromptNames(by_id={"g1": "answer", "g2": "answer", "g3": "answer"})
    keys = [GroupKey("g3", None, "v10"), GroupKey("g1", None, "v2"), GroupKey("g2", None, "v1")]
    ordered = sorted(keys, key=lambda k: group_order(k, names))
    assert [k.prompt_version for k in ordered] == ["v1", "v2", "v10"]
    series = [_series(k.prompt_version or "", {0: Cell(100.0, 6)}) for k in ordered]
    figure = create_bucket_figure(_buckets(), series, "Latency p95", "latency", Hover("ms"))
    assert [t["name"] for t in figure["data"]] == ["v1", "v2", "v10"]
    assert [t["legendrank"] for t in figure["data"]] == [1, 2, 3]


def test_a_version_keeps_its_colour_whatever_else_is_drawn() -> None:
    catalogue = catalogue_colors(
        [("answer", "v1"), ("answer", "v2"), ("answer", "v10"), ("triage", "v1")]
    )
    names = PromptNames(by_id={"g1": "answer", "g2": "answer", "g3": "triage"})
    v2 = GroupKey("g2", None, "v2")
    key = group_color_key(v2, names)
    assert key == version_key("answer", "v2")
    alone = _series("v2", {0: Cell(1.0, 6)}, series_color(key, catalogue))
    others = [
        _series(label, {0: Cell(1.0, 6)}, series_color(version_key(prompt, label), catalogue))
        for prompt, label in (("answer", "v1"), ("triage", "v1"), ("answer", "v10"))
    ]
    first = create_bucket_figure(_buckets(), [alone], "A", "a", Hover("count"), kind="bars")
    second = create_bucket_figure(_buckets(), [*others, alone], "B", "b", Hover("ms"))
    assert first["data"][0]["marker"]["color"] == second["data"][-1]["line"]["color"]
    # One prompt's versions never share a colour (up to the palette's size), and none is grey.
    answer = {catalogue[version_key("answer", v)] for v in ("v1", "v2", "v10")}
    assert len(answer) == 3 and MUTED not in PALETTE
    # Unknown series hash the same in every process.
    assert series_color("model · gpt-4o") == series_color("model · gpt-4o") in PALETTE
    assert natural_key("v2") < natural_key("v10")


def test_bucket_size_follows_the_window_and_the_density() -> None:
    day = (T0, T0 + timedelta(hours=24))
    # Plenty of calls: the window's own size (at most 120 buckets).
    assert store_analytics.chart_bucket_size(*day, 100_000) == timedelta(minutes=15)
    # 50 calls a day would be 0.5 a bucket: coarser until about 3 a bucket, 6 buckets at least.
    assert store_analytics.chart_bucket_size(*day, 50) == timedelta(hours=3)
    assert store_analytics.chart_bucket_size(*day, 0) == timedelta(hours=3)
    week = (T0, T0 + timedelta(days=7))
    assert store_analytics.chart_bucket_size(*week, 10) == timedelta(days=1)


def test_buckets_start_at_local_midnight_across_a_clock_change() -> None:
    start = datetime(2026, 10, 24, 12, tzinfo=UTC)
    edges = store_analytics.bucket_edges(
        start, start + timedelta(days=3), timedelta(days=1), "Europe/Paris"
    )
    local = [e.astimezone(store_analytics.ZoneInfo("Europe/Paris")) for e in edges]
    assert all((t.hour, t.minute) == (0, 0) for t in local)
    # The night the clocks go back has 25 hours.
    assert edges[2] - edges[1] == timedelta(hours=25)


def test_a_drill_down_link_names_exactly_one_bucket_and_series() -> None:
    state = parse_query({"project": "support-bot", "range": "24h", "evaluator": "x"})[0]
    buckets = chart_buckets([T0, T0 + HOUR], [T0 + HOUR], HOUR, "Europe/Paris")
    href = drill_href(state, buckets, T0 + HOUR, prompt="answer", versions=("v2",))
    assert href is not None and href.startswith("/traces?")
    drilled = parse_query(dict(p.split("=", 1) for p in href.split("?", 1)[1].split("&")))[0]
    query = {k: v for k, v in (p.split("=", 1) for p in href.split("?", 1)[1].split("&"))}
    assert query["range"] == "custom" and "evaluator" not in query
    assert drilled.prompt == "answer" and drilled.versions == ("v2",)
    assert drill_href(state, buckets, T0 + 5 * HOUR) is None
    click = {"points": [{"customdata": ["1", 1, "", "", "/traces?x=1"]}]}
    assert clicked_href(click) == "/traces?x=1"
    assert clicked_href({"points": [{"customdata": ["https://evil.example/"]}]}) is None


# Against the store -------------------------------------------------------------------------------


@pytest.fixture
def store(store_db_url: str) -> Iterator[FactStore]:
    """A store of 200 calls in 50 traces over two days, two versions, a quiet stretch between."""
    opened = open_store(store_db_url)
    rows = []
    for i in range(200):
        # Calls 0-99 in the first 10 hours, 100-199 from hour 30 on: hours 10-29 are empty.
        hour = i // 10 if i < 100 else 30 + (i - 100) // 10
        moment = T0 + timedelta(hours=hour, minutes=(i * 7) % 60)
        group = "g1" if i % 3 else "g2"
        rows.append(
            SpanRow(
                f"s{i}",
                f"t{i // 4}",
                "proj",
                group,
                f"h-{group}",
                "v1" if i % 3 else "v2",
                "gpt-4o",
                moment,
                100.0 + i,
                10,
                5,
                15,
                "ERROR" if i % 17 == 0 else "OK",
                0.001,
            )
        )
    opened.write_spans(rows)
    yield opened
    opened.close()


ZONES = ("UTC", "Europe/Paris", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York")
SIZES = (
    timedelta(minutes=15),
    timedelta(minutes=30),
    HOUR,
    3 * HOUR,
    timedelta(days=1),
    timedelta(days=7),
)


def test_bucket_starts_match_the_engine(store: FactStore) -> None:
    moments = [T0 + timedelta(minutes=97 * i) for i in range(40)]
    moments += [datetime(2026, 3, 8, 6, 30, tzinfo=UTC), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)]
    for zone in ZONES:
        for size in SIZES:
            sql = store_analytics._bucket_sql(size, "t")
            rows = store.transport.query(
                f"SELECT {sql} FROM (SELECT arrayJoin({{m:Array(DateTime64(6, 'UTC'))}}) AS t)",  # noqa: S608
                {"m": moments, "tz": zone},
            ).rows
            engine = [store_analytics._bucket_time(r[0]) for r in rows]
            ours = [store_analytics.bucket_start(m, size, zone) for m in moments]
            assert ours == engine, (zone, size)


@pytest.mark.parametrize("mapped", [False, True])
def test_trace_counts_equal_the_traces_page_count_per_bucket(
    store: FactStore, mapped: bool
) -> None:
    base = Filters(project="proj", start=T0, end=T0 + timedelta(days=2))
    if mapped:
        # g1 and g2 both belong to prompt P; the map relabels g2's calls "v2-new".
        base = dataclasses.replace(
            base, prompt_map=PromptMap(("g1", "g2"), ("P", "P"), ("v1", "v2-new"))
        )
    size = 3 * HOUR
    series = store_analytics.time_series(store, base, "version", timezone="Asia/Kolkata", size=size)
    counts = store_analytics.trace_counts(store, base, "version", size, timezone="Asia/Kolkata")
    edges = store_analytics.bucket_edges(base.start, base.end, size, "Asia/Kolkata")  # type: ignore[arg-type]
    buckets = chart_buckets(edges, {p.bucket for p in series.points}, size, "Asia/Kolkata")
    assert len(series.points) > 4
    every = list(buckets.edges)
    for point in series.points:
        end = every[every.index(point.bucket) + 1]
        version = point.key.prompt_version
        assert version is not None
        narrowed = dataclasses.replace(base, start=point.bucket, end=end, versions=(version,))
        ident = (point.key.prompt_id, version, None)
        assert counts[(point.bucket, ident)] == store_analytics.trace_count(store, narrowed)
        assert point.metrics.count == store_analytics.span_count(store, narrowed)
    # Hours 10 to 29 had no calls: their buckets exist, with nothing in them.
    quiet = [b for b in buckets.starts if T0 + 11 * HOUR <= b < T0 + 27 * HOUR]
    assert quiet and not {p.bucket for p in series.points} & set(quiet)
