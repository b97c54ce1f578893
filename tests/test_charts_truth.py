"""Charts that tell the truth: zero-filled bars, broken lines, faded small n, one colour a version.

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
    FEW_OPACITY,
    MIN_CALLS,
    TOO_FEW,
    Box,
    Buckets,
    Cell,
    ChartSeries,
    Hover,
    chart_buckets,
    clicked_href,
    create_bucket_figure,
    create_label_bars,
    create_score_box,
    drill_href,
    min_calls_for_quantile,
    too_few_name,
)
from components.colors import (
    LABEL_SHADES,
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


def test_a_rate_from_too_few_calls_is_faded_in_its_colour_and_off_the_line() -> None:
    series = _series("v1", {0: Cell(0.1, 40, 30), 1: Cell(1.0, 1, 1), 2: Cell(0.05, 20, 18)})
    figure = create_bucket_figure(
        _buckets(), [series], "Error rate", "error rate", Hover("percent"), min_calls=MIN_CALLS
    )
    line, few, key = figure["data"]
    assert line["y"] == [0.1, None, 0.05, None]
    # Hollow and faded, but in the series' own colour: whose point it is stays plain.
    assert few["y"] == [1.0] and few["marker"]["color"] == series.color == line["line"]["color"]
    assert few["marker"]["symbol"] == "circle-open" and few["opacity"] == FEW_OPACITY < 1
    assert few["mode"] == "markers" and few["meta"] == line["meta"]
    assert few["showlegend"] is False and few["legendgroup"] == line["legendgroup"]
    value, n, note, *_ = few["customdata"][0]
    assert (value, n) == ("100.0%", 1)
    assert note.endswith(f"({TOO_FEW}: under {MIN_CALLS})")
    # One legend entry explains them: hollow grey, no data, after the series, told by its meta.
    assert key["name"] == key["meta"] == too_few_name(MIN_CALLS) == f"{TOO_FEW} (under 5)"
    assert key["showlegend"] is True and key["legendrank"] > line["legendrank"]
    assert key["marker"]["color"] == MUTED and key["marker"]["symbol"] == "circle-open"
    assert key["y"] == [None] and key["hoverinfo"] == "skip"


def test_one_legend_entry_explains_the_faded_points_of_every_series() -> None:
    series = [
        _series("v1", {0: Cell(900.0, 40), 1: Cell(2500.0, 12)}, PALETTE[0]),
        _series("v2", {0: Cell(800.0, 3), 2: Cell(880.0, 25)}, PALETTE[1]),
        _series("v3", {0: Cell(700.0, 30)}, PALETTE[2]),
    ]
    figure = create_bucket_figure(
        _buckets(), series, "Latency p95", "latency (ms)", Hover("ms"), min_calls=20
    )
    names = [t["name"] for t in figure["data"]]
    assert names == ["v1", f"v1 ({TOO_FEW})", "v2", f"v2 ({TOO_FEW})", "v3", too_few_name(20)]
    faded = {t["legendgroup"]: t["marker"]["color"] for t in figure["data"][1:4:2]}
    assert faded == {"v1": PALETTE[0], "v2": PALETTE[1]}
    shown = [t for t in figure["data"] if t.get("showlegend", True)]
    assert [t["legendrank"] for t in shown] == [1, 2, 3, 4]
    # Without such points, no entry; bars never have them.
    plain = create_bucket_figure(_buckets(), series[2:], "L", "l", Hover("ms"), min_calls=20)
    assert [t["name"] for t in plain["data"]] == ["v3"]
    bars = create_bucket_figure(_buckets(), series, "V", "v", Hover("count"), kind="bars")
    assert [t["name"] for t in bars["data"]] == ["v1", "v2", "v3"]


def test_a_percentile_needs_the_calls_to_have_one_above_it() -> None:
    assert [min_calls_for_quantile(q) for q in (0.5, 0.9, 0.95, 0.99)] == [2, 10, 20, 100]
    # A p95 of 12 calls is their slowest call: faded, off the line, its tooltip says why.
    series = _series("v1", {0: Cell(900.0, 40), 1: Cell(2500.0, 12), 2: Cell(880.0, 20)})
    figure = create_bucket_figure(
        _buckets(), [series], "Latency p95", "latency (ms)", Hover("ms"), min_calls=20
    )
    line, few, key = figure["data"]
    assert line["y"] == [900.0, None, 880.0, None]
    assert few["y"] == [2500.0] and few["customdata"][0][2].endswith(f"({TOO_FEW}: under 20)")
    assert key["name"] == too_few_name(20)


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


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a #RRGGBB colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_palette_is_six_strong_colours_on_white_and_on_the_dark_theme() -> None:
    assert len(PALETTE) == len(set(PALETTE)) == 6
    # Okabe-Ito's black vanished on the dark theme's charts, its yellow on white.
    assert "#000000" not in PALETTE and "#F0E442" not in PALETTE
    for colour in PALETTE:
        assert _contrast(colour, "#FFFFFF") > 2, colour
        assert _contrast(colour, "#212529") > 2.5, colour
    # Six versions of one prompt take all six colours; a seventh shares one.
    catalogue = catalogue_colors([("answer", f"v{i}") for i in range(1, 8)])
    first_six = {catalogue[version_key("answer", f"v{i}")] for i in range(1, 7)}
    assert first_six == set(PALETTE)
    assert catalogue[version_key("answer", "v7")] == catalogue[version_key("answer", "v1")]


def _label_shares(order: list[str]) -> list[tuple[str, str, float, int]]:
    shares = {
        ("correct", "correctness · v1"): 0.8,
        ("incorrect", "correctness · v1"): 0.2,
        ("correct", "correctness · v2"): 0.6,
        ("incorrect", "correctness · v2"): 0.4,
        ("helpful", "helpfulness · v1"): 0.5,
        ("partly helpful", "helpfulness · v1"): 0.3,
        ("unhelpful", "helpfulness · v1"): 0.2,
    }
    items = sorted(shares.items(), key=lambda item: order.index(item[0][0]))
    return [(label, bar, share, 40) for (label, bar), share in items]


EVALUATORS = {
    "correctness · v1": "correctness",
    "correctness · v2": "correctness",
    "helpfulness · v1": "helpfulness",
}


def test_labels_have_their_own_greys_whatever_order_they_arrive_in() -> None:
    arrival = ["unhelpful", "incorrect", "helpful", "partly helpful", "correct"]
    figures = [
        create_label_bars(_label_shares(order), "Label shares", EVALUATORS)
        for order in (arrival, sorted(arrival), arrival[::-1])
    ]
    looks = [
        {
            (t["legendgroup"], t["name"]): (t["marker"]["color"], t["marker"].get("pattern"))
            for t in f["data"]
        }
        for f in figures
    ]
    assert looks[0] == looks[1] == looks[2]
    styles = looks[0]
    # Never a version's colour, nor the grey of too few calls.
    assert not {colour for colour, _ in styles.values()} & {*PALETTE, MUTED}
    # Ranked by name within an evaluator: its labels are as far apart as the greys go.
    assert styles[("correctness", "correct")][0] == LABEL_SHADES[0]
    assert styles[("correctness", "incorrect")][0] == LABEL_SHADES[1]
    helpfulness = [
        styles[("helpfulness", n)][0] for n in ("helpful", "partly helpful", "unhelpful")
    ]
    assert helpfulness == list(LABEL_SHADES[:3])
    # The legend groups labels under their evaluator, in the order the bars come.
    data = figures[1]["data"]
    assert [t["legendgroup"] for t in data] == ["correctness"] * 2 + ["helpfulness"] * 3
    assert data[0]["legendgrouptitle"]["text"] == "correctness"
    assert [t["name"] for t in data[:2]] == ["correct", "incorrect"]


def test_labels_beyond_the_greys_take_a_hatch() -> None:
    names = [f"label {i}" for i in range(6)]
    shares = [(name, "review · v1", 1 / 6, 6) for name in names]
    data = create_label_bars(shares, "Label shares", {"review · v1": "review"})["data"]
    looks = [(t["marker"]["color"], t["marker"].get("pattern", {}).get("shape", "")) for t in data]
    assert len(set(looks)) == 6
    assert [shape for _, shape in looks] == ["", "", "", "", "/", "/"]


def test_label_bars_lie_flat_with_names_that_read_level() -> None:
    figure = create_label_bars(
        _label_shares(["correct", "incorrect", "helpful", "partly helpful", "unhelpful"]),
        "Label shares",
        EVALUATORS,
    )
    layout = figure["layout"]
    assert {t["orientation"] for t in figure["data"]} == {"h"}
    assert layout["barmode"] == "stack"
    # The bars are the y axis' categories, first on top, in the order given.
    assert layout["yaxis"]["categoryarray"] == list(EVALUATORS)
    assert layout["yaxis"]["autorange"] == "reversed" and layout["yaxis"]["automargin"] is True
    assert layout["xaxis"]["tickformat"] and layout["xaxis"]["range"] == [0, 1]
    # The legend below the share axis, from the left; the chart grows with its bars.
    assert layout["legend"]["orientation"] == "h" and layout["legend"]["y"] < 0
    assert layout["height"] >= 300
    tall = create_label_bars([("a", f"e · v{i}", 1.0, 3) for i in range(20)], "Label shares")[
        "layout"
    ]["height"]
    assert tall > layout["height"]
    # Every tooltip gives the share and the n it is a share of.
    first = figure["data"][0]
    assert first["customdata"][0][:2] == ["80.0%", 40]
    assert "n = %{customdata[1]:,} labelled" in first["hovertemplate"]


def test_a_score_box_names_its_n_on_the_axis_and_so_in_every_tooltip() -> None:
    colours = {"v1": PALETTE[0], "v2": PALETTE[1]}
    boxes = [
        Box("v1", "v1", 0.0, 0.25, 0.5, 0.75, 1.0, 1204),
        Box("v2", "v2", 1.0, 2.0, 3.0, 4.0, 5.0, 12),
    ]
    figure = create_score_box(boxes, "Score distribution: tone", colours, "tone score")
    first, second = figure["data"]
    # Flat boxes, each version's name and n on the category axis, first on top.
    assert first["orientation"] == second["orientation"] == "h"
    assert first["y"] == ["v1 · n = 1,204"] and second["y"] == ["v2 · n = 12"]
    assert figure["layout"]["yaxis"]["autorange"] == "reversed"
    assert first["marker"]["color"] == PALETTE[0] and second["line"]["color"] == PALETTE[1]
    # A box per version in its own place: full size, and no legend to repeat the names.
    assert figure["layout"]["boxmode"] == "overlay" and figure["layout"]["showlegend"] is False
    assert figure["layout"]["xaxis"]["title"]["text"] == "tone score"
    # Several versions in one place (an evaluator): side by side, with a legend.
    grouped = create_score_box(
        [Box("v1", "tone", 1, 2, 3, 4, 5, 9), Box("v2", "tone", 1, 2, 3, 4, 5, 9)], "Scores"
    )
    assert grouped["layout"]["boxmode"] == "group" and grouped["layout"]["showlegend"] is True
    assert [t["y"] for t in grouped["data"]] == [["tone"], ["tone"]]


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


def test_a_mean_of_too_few_scores_says_scores_not_calls() -> None:
    series = _series("v1", {0: Cell(0.8, 40), 1: Cell(0.0, 1), 2: Cell(0.75, 20)})
    figure = create_bucket_figure(
        _buckets(), [series], "Mean score", "mean score", Hover("score", "scores"), min_calls=5
    )
    line, faded, key = figure["data"]
    assert line["y"] == [0.8, None, 0.75, None]
    assert faded["name"] == "v1 (too few scores)"
    assert faded["customdata"][0][2].endswith("(too few scores: under 5)")
    assert key["name"] == too_few_name(5, "scores") == "too few scores (under 5)"
