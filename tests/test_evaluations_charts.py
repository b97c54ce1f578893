"""The evaluations page: one evaluator at a time (its scale, its labels), a full-width table.

The page's callbacks are called as Dash calls them, on the seed's 0-1 correctness scores beside a
1-5 "tone" evaluator and a label-only "review" (tests/test_evaluator_kpis.evaluated_app).
"""

from __future__ import annotations

import sys
from typing import Any

import dash_bootstrap_components as dbc
import pytest

from app import create_app
from components.colors import PALETTE
from tests.test_evaluator_kpis import REVIEW_LABELS, _find, evaluated_app  # noqa: F401


def _page() -> Any:
    return sys.modules["pages.evaluations"]


def _redraw(app: Any, search: str) -> tuple[Any, ...]:
    with app.server.test_request_context("/"):
        return tuple(_page().redraw(None, search))


def _scored(figure: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in figure["data"] if t.get("type") == "box"]


def test_the_score_charts_show_one_evaluators_scale(evaluated_app) -> None:  # noqa: F811
    scores, labels, trend, *_rest, options, placeholder, note, _notice = _redraw(evaluated_app, "")
    # By default the evaluator with the most annotations, named in the picker.
    assert placeholder == "correctness (most annotations)" and note is None
    assert {o["value"] for o in options} == {"correctness", "review", "tone"}
    assert "correctness" in scores["layout"]["title"]["text"]
    boxes = _scored(scores)
    assert boxes and max(max(b["upperfence"]) for b in boxes) <= 1
    # A box per version, each in its own place that names the scores behind it.
    assert all(" · n = " in y for b in boxes for y in b["y"])
    assert scores["layout"]["xaxis"]["title"]["text"] == "correctness score"
    assert "correctness" in trend["layout"]["title"]["text"]
    assert {t["name"] for t in trend["data"]} <= {b["name"] for b in boxes}

    # The URL's evaluator: its own 1-5 scale, nothing of the 0-1 one beside it.
    scores, _labels, trend, *_rest = _redraw(evaluated_app, "?evaluator=tone")
    boxes = _scored(scores)
    assert boxes and min(min(b["lowerfence"]) for b in boxes) >= 1
    assert max(max(b["upperfence"]) for b in boxes) > 1
    assert "tone" in trend["layout"]["title"]["text"]
    values = [y for t in trend["data"] for y in t["y"] if y is not None]
    assert values and min(values) >= 1
    # Every point's tooltip keeps its n.
    for t in trend["data"]:
        assert "n = %{customdata[1]:,} scores" in t["hovertemplate"]
        assert all(row[1] > 0 for row, y in zip(t["customdata"], t["y"], strict=True) if y)

    # A label-only evaluator has no scale: the charts say so, its labels are in the shares.
    scores, labels, trend, *_rest = _redraw(evaluated_app, "?evaluator=review")
    assert "gave labels, no scores" in scores["layout"]["annotations"][0]["text"]
    assert "gave labels, no scores" in trend["layout"]["annotations"][0]["text"]
    assert "review" in labels["layout"]["title"]["text"]
    assert {t["name"] for t in labels["data"]} <= set(REVIEW_LABELS)

    # An evaluator the data does not have: the default, and a note why.
    scores, *_rest, note, _notice = _redraw(evaluated_app, "?evaluator=nope")
    assert "correctness" in scores["layout"]["title"]["text"]
    assert "Ignored evaluator='nope'" in note.children


def test_versions_keep_their_analytics_colours_and_labels_take_greys(evaluated_app) -> None:  # noqa: F811
    scores, labels, trend, *_ = _redraw(evaluated_app, "")
    with evaluated_app.server.test_request_context("/"):
        analytics = sys.modules["pages.analytics"].redraw(None, "prompt_version", "", "p50")
    latency = {t["meta"]: t["line"]["color"] for t in analytics[1]["data"] if "line" in t}
    assert trend["data"]
    for line in trend["data"]:
        assert line["line"]["color"] == latency[line["meta"]], line["name"]
    by_name = {t["name"]: t["line"]["color"] for t in trend["data"]}
    for box in _scored(scores):
        assert box["marker"]["color"] == by_name[box["name"]]
    # Label segments are greys, never a version's colour; a flat bar per version, named on
    # the y axis as the boxes are; the chosen evaluator's labels only.
    assert {t["orientation"] for t in labels["data"]} == {"h"}
    assert not {t["marker"]["color"] for t in labels["data"]} & set(PALETTE)
    assert {t["name"] for t in labels["data"]} == {"pass", "fail"}
    versions = {bar for t in labels["data"] for bar in t["y"]}
    assert versions == {name for name in by_name} and len(versions) == 3
    for t in labels["data"]:
        assert all(row[1] > 0 for row in t["customdata"])


@pytest.mark.parametrize("enabled", [True, False])
def test_the_table_is_full_width_until_a_row_opens_the_pane(settings, enabled: bool) -> None:
    app = create_app(
        settings.with_overrides(phoenix_enabled=enabled, phoenix_url="http://127.0.0.1:9")
    )
    with app.server.test_request_context("/"):
        layout = _page().layout()
        table, pane = _find(layout, "evaluations-table-col"), _find(layout, "evaluations-pane-col")
        assert isinstance(table, dbc.Col) and table.lg == 12
        assert pane.lg == 12 and "d-none" in pane.className
        assert _find(layout, "evaluations-filter-evaluator") is not None
        opened = _page().open_span({"rowId": "abc123:correctness:1"})
        closed = _page().open_span({})
    assert closed == (None, 12, 12, "d-none")
    if enabled:
        body, table_lg, pane_lg, pane_class = opened
        assert body is not None and (table_lg, pane_lg) == (6, 6) and "d-none" not in pane_class
        assert "/redirects/spans/abc123" in str(body.to_plotly_json())
    else:
        assert opened == closed
