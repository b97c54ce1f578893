"""Per-evaluator numbers: the score card's evaluator, its URL, label-only evaluators, n columns.

A mean is never taken across evaluators. The card shows one (by default the one with the most
annotations, `evaluator=` in the URL picks another); the versions table has a mean and an n per
evaluator and label shares for an evaluator that gives labels only, checked here against
counts made independently from the rows the test wrote.
"""

from __future__ import annotations

import csv
import io
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import dash_bootstrap_components as dbc
import pytest
from dash import html

from components.kpis import create_kpi_cards, create_period_cards, evaluator_text
from services import evaluators, tables
from services.container import get_services
from services.evaluators import EvaluatorView
from services.filters import FilterState, parse_query
from services.prompt_filters import PromptNames
from store import analytics as store_analytics
from store.analytics import EvaluatorScore, Filters, Kpis, Metrics, PeriodStats, Series
from store.facts import SpanAnnotationRow, SpanRow

from .callbacks import route
from .conftest import AuthActions
from .seed import PROMPT_VERSIONS, seed

# The URL ------------------------------------------------------------------------------------


def test_the_evaluator_round_trips_through_the_url() -> None:
    state, problems = parse_query({"range": "24h", "evaluator": "correctness"})
    assert problems == [] and state.evaluator == "correctness"
    query = state.query_string()
    assert "evaluator=correctness" in query
    parsed, _ = parse_query({k: v[-1] for k, v in parse_qs(query[1:]).items()})
    assert parsed == state and parsed.query_string() == query
    # The default (the most annotations) stays out of the URL, as other defaults do.
    assert FilterState().query_string() == ""
    assert parse_query({"evaluator": ""})[0].evaluator is None
    # Control characters name no evaluator; the value is kept as a name, not refused.
    assert parse_query({"evaluator": "qa\x00 review"})[0].evaluator == "qa review"
    # It picks what a card shows, never which calls count.
    assert state.to_filters(None, datetime(2026, 1, 1, tzinfo=UTC)) == replace(
        state, evaluator=None
    ).to_filters(None, datetime(2026, 1, 1, tzinfo=UTC))


def _score(name: str, mean: float | None, scored: int, annotations: int) -> EvaluatorScore:
    return EvaluatorScore(name, mean, scored, annotations)


SCORES = (
    _score("correctness", 0.73, 1204, 1204),
    _score("helpfulness", 3.5, 300, 300),
    _score("review", None, 0, 1500),  # labels only: the most annotations
)


def test_the_default_is_the_evaluator_with_the_most_annotations() -> None:
    assert evaluators.default_evaluator(SCORES) == "review"
    assert evaluators.default_evaluator(SCORES[:2]) == "correctness"
    # Equal counts: the first by name, so two replicas pick the same.
    tie = (_score("b", 1.0, 5, 5), _score("a", 1.0, 5, 5))
    assert evaluators.default_evaluator(tie) == "a"
    assert evaluators.default_evaluator(()) is None
    assert evaluators.choose(SCORES, None) == evaluators.Choice("review")
    assert evaluators.choose(SCORES, "helpfulness") == evaluators.Choice("helpfulness")


def test_an_unknown_evaluator_gets_a_message_not_an_error() -> None:
    choice = evaluators.choose(SCORES, "nope")
    assert choice.name == "review"
    assert choice.message == (
        "Ignored evaluator='nope': it has no evaluations under these filters; "
        "showing 'review', the evaluator with the most."
    )
    assert evaluators.choose((), "nope").message == (
        "Ignored evaluator='nope': no evaluations match these filters."
    )
    # The picker still shows the URL's value, so the reader sees what was asked for.
    assert {"label": "nope", "value": "nope"} in evaluators.options(SCORES, "nope")


# The cards ----------------------------------------------------------------------------------


def _metrics(count: int = 2000, tokens_unknown: int = 0, cost_unknown: int = 0) -> Metrics:
    return Metrics(
        count, 20, 0.01, 100.0, 250.0, 900.0, 5000, 2.5, tokens_unknown, 1.5, 0.00075, cost_unknown
    )


def _find(component: Any, wanted: str) -> Any:
    """Return the component with that id in a tree, or None."""
    if getattr(component, "id", None) == wanted:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _find(child, wanted)
            if found is not None:
                return found
    return None


def _all(component: Any, kind: type) -> list[Any]:
    """Collect every component of a type in a tree."""
    found = [component] if isinstance(component, kind) else []
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found += _all(child, kind)
    return found


def test_the_card_shows_one_evaluator_with_its_mean_and_n() -> None:
    kpis = Kpis(_metrics(), SCORES[:2])
    cards = create_kpi_cards("analytics", kpis)
    assert _find(cards, "analytics-kpi-score").children == "correctness 0.73 · n = 1,204"
    chosen = evaluators.view(kpis.scores, "helpfulness", {})
    cards = create_kpi_cards("analytics", kpis, chosen)
    assert _find(cards, "analytics-kpi-score").children == "helpfulness 3.50 · n = 300"
    assert _find(cards, "analytics-kpi-count").children == "2,000"
    assert _find(cards, "analytics-kpi-cost").children == "$1.50"


def test_a_label_only_evaluator_shows_label_shares_not_a_missing_mean() -> None:
    kpis = Kpis(_metrics(), SCORES)
    labels = {"review": (("good", 900), ("bad", 450), ("unsure", 100), ("spam", 50))}
    shown = evaluators.view(kpis.scores, "review", labels)
    assert shown is not None and shown.label_only and shown.labelled == 1500
    cards = create_kpi_cards("analytics", kpis, shown)
    text = _find(cards, "analytics-kpi-score").children
    # The three most frequent labels with their shares, and how many labels they are out of.
    assert text == "review: good 60.0% · bad 30.0% · unsure 6.7% · n = 1,500"
    assert "Eval labels" in str(cards.to_plotly_json())
    # Without its label counts the card still says what it has, not a blank mean.
    assert evaluator_text(EvaluatorView("review", None, 0, 12)) == ("review: labels only · n = 12")


def test_unknown_tokens_and_cost_show_in_a_note_and_a_tooltip() -> None:
    cards = create_kpi_cards("analytics", Kpis(_metrics(tokens_unknown=1234, cost_unknown=1), ()))
    assert (
        _find(cards, "analytics-kpi-tokens-unknown").children == "1,234 calls without token count"
    )
    assert _find(cards, "analytics-kpi-cost-unknown").children == "1 call without cost"
    tips = {t.target: t.children for t in _all(cards, dbc.Tooltip)}
    assert set(tips) == {"analytics-kpi-tokens", "analytics-kpi-cost"}
    assert tips["analytics-kpi-tokens"].startswith("1,234 calls have no token count")
    assert _find(cards, "analytics-kpi-score").children == "\u2013"  # no evaluations: a dash
    none_unknown = create_kpi_cards("analytics", Kpis(_metrics(), ()))
    assert _all(none_unknown, dbc.Tooltip) == []


def _period(current: tuple[EvaluatorScore, ...], previous: tuple[EvaluatorScore, ...]) -> Any:
    series = Series(timedelta(hours=1), "UTC", ())
    return PeriodStats(Kpis(_metrics(), current), Kpis(_metrics(), previous), series)


def test_the_change_on_home_compares_the_same_evaluator() -> None:
    stats = _period(
        (_score("a", 0.8, 100, 100), _score("b", 0.5, 10, 10)),
        (_score("b", 0.25, 10, 10), _score("a", 0.4, 100, 100)),
    )
    default = create_period_cards("home", "24h", stats)
    assert _find(default, "home-24h-score").children == "a 0.80 · n = 100"
    assert "+100% vs previous" in str(default.to_plotly_json())
    picked = create_period_cards("home", "24h", stats, "b")
    assert _find(picked, "home-24h-score").children == "b 0.50 · n = 10"
    assert "+100% vs previous" in str(picked.to_plotly_json())
    gone = create_period_cards("home", "24h", _period((), stats.previous.scores), "b")
    assert _find(gone, "home-24h-score").children == "b \u2013 · n = 0"
    assert "no earlier data" in str(gone.to_plotly_json())
    # A label-only evaluator: its top label's share moved in percentage points.
    labelled = _period((_score("r", None, 0, 10),), (_score("r", None, 0, 20),))
    labels = ({"r": (("good", 6), ("bad", 4))}, {"r": (("good", 10), ("bad", 10))})
    cards = create_period_cards("home", "7d", labelled, None, labels)
    assert _find(cards, "home-7d-score").children == "r: good 60.0% · bad 40.0% · n = 10"
    assert "+10.0 pp good vs previous" in str(cards.to_plotly_json())


# Seeded data ---------------------------------------------------------------------------------

REVIEW_LABELS = ("good", "bad", "unsure", "spam", "offtopic", "rude", "late")


@pytest.fixture
def evaluated_app(app: Any) -> Any:
    """The seed's 60 calls, a label-only "review" evaluator and a 1-5 "tone" one beside it.

    Plus three calls of version "untracked" whose tokens and cost are all unknown.
    """
    now = datetime.now(UTC)
    app.seeded = seed(app, now=now)
    store = get_services(app.server).store
    spans = [
        row
        for _columns, batch in store_analytics.iter_spans(store, Filters())
        for row in (dict(zip(_columns, r, strict=True)) for r in batch)
    ]
    notes = []
    for i, span in enumerate(sorted(spans, key=lambda s: s["span_id"])):
        if span["prompt_id"] is None:
            continue
        kinds: list[tuple[str, str, str | None, float | None]] = []
        if i % 3 == 0:
            # Six labels, more than the table keeps, with ties that the label's name breaks.
            review = REVIEW_LABELS[min(i % 11, len(REVIEW_LABELS) - 1)]
            kinds.append(("review", "HUMAN", review, None))
        if i % 2 == 0:
            kinds.append(("tone", "LLM", None, float(1 + i % 5)))
        for name, kind, label, score in kinds:
            notes.append(
                SpanAnnotationRow(
                    annotation_id=f"{name}-{i:06d}",
                    span_id=span["span_id"],
                    trace_id=span["trace_id"],
                    project=span["project"],
                    name=name,
                    annotator_kind=kind,
                    label=label,
                    score=score,
                    updated_at=now,
                    is_deleted=False,
                    span_start_time=span["start_time"],
                    prompt_id=span["prompt_id"],
                    template_hash=span["template_hash"],
                    prompt_version=span["prompt_version"],
                    model=span["model"],
                    span_status=span["status"],
                )
            )
    untracked = [
        SpanRow(
            span_id=f"untracked-{i}",
            trace_id=f"untracked-trace-{i}",
            project="support-bot",
            prompt_id=None,
            template_hash=None,
            prompt_version="untracked",
            model="gpt-4o",
            start_time=now - timedelta(minutes=10 + i),
            latency_ms=250.0,
            prompt_tokens=None,
            completion_tokens=None,
            total_tokens=None,
            status="OK",
            cost=None,
        )
        for i in range(3)
    ]
    store.write_spans(untracked)
    store.write_span_annotations(notes)
    app.notes = notes
    return app


def _seeded_correctness(prompt_ids: dict[tuple[str, str], str]) -> dict[tuple[Any, Any], list]:
    """Return tests/seed.py's correctness scores by (prompt id, version), from its formula."""
    keys = [*PROMPT_VERSIONS, None]
    scores: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for i in range(60):
        key = keys[i % len(keys)]
        if key:
            scores[(prompt_ids[key], key[1])].append((i % 7) / 6)
    return scores


def _expected(
    notes: list[SpanAnnotationRow], prompt_ids: dict[tuple[str, str], str]
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Compute each version's evaluator columns from the written rows, without the engine."""
    scores: dict[tuple[Any, Any, str], list[float]] = defaultdict(list)
    for key, values in _seeded_correctness(prompt_ids).items():
        scores[(*key, "correctness")] = values
    labels: dict[tuple[Any, Any], Counter[str]] = defaultdict(Counter)
    overall: Counter[str] = Counter()
    for note in notes:
        key = (note.prompt_id, note.prompt_version)
        if note.score is not None:
            scores[(*key, note.name)].append(note.score)
        if note.name == "review" and note.label is not None:
            labels[key][note.label] += 1
            overall[note.label] += 1
    assert len(overall) > 5  # more labels than the table keeps
    # Most frequent first, ties by label: the five the table keeps.
    top = sorted(overall, key=lambda label: (-overall[label], label))[:5]
    expected: dict[tuple[Any, Any], dict[str, Any]] = defaultdict(dict)
    for name in ("correctness", "tone"):
        for (prompt_id, version, evaluator), values in scores.items():
            if evaluator == name:
                expected[(prompt_id, version)][f"mean_{name}"] = sum(values) / len(values)
                expected[(prompt_id, version)][f"n_{name}"] = len(values)
    for key, counts in labels.items():
        total = sum(counts.values())
        expected[key]["labelled_review"] = total
        for label in top:
            expected[key][f"share_review_{label}"] = counts[label] / total
    return expected


def _context(app: Any) -> tables.Context:
    """Name each prompt by its id, so a row says which (prompt, version) it is."""
    store = get_services(app.server).store
    ids = app.seeded.prompt_ids.values()
    return tables.Context(store, Filters(), PromptNames({i: i for i in ids}, {}))


def test_the_versions_table_has_a_mean_and_n_per_evaluator_and_label_shares(
    evaluated_app,
) -> None:
    columns, rows = tables.version_rows(_context(evaluated_app))
    ids = [c.id for c in columns]
    expected = _expected(evaluated_app.notes, evaluated_app.seeded.prompt_ids)
    top = [k.removeprefix("share_review_") for k in next(iter(expected.values())) if "share" in k]
    assert ids[len(tables.VERSION_COLUMNS) :] == [
        "mean_correctness",
        "n_correctness",
        "mean_review",
        "n_review",
        "labelled_review",
        *[f"share_review_{label}" for label in top],
        "mean_tone",
        "n_tone",
    ]
    assert len(top) == 5 < len(REVIEW_LABELS)  # bounded: the five most frequent labels
    headers = {c.id: c.header for c in columns}
    assert headers[f"share_review_{top[0]}"] == f"review: {top[0]}"
    assert {c.format for c in columns if c.id.startswith("share_")} == {"percent"}
    by_version = {}
    for row in rows:
        record = dict(zip(ids, row, strict=True))
        by_version[(record["prompt"], record["prompt_version"])] = record
    assert set(expected) < set(by_version)
    for key, want in expected.items():
        got = by_version[key]
        for column, value in want.items():
            assert got[column] == pytest.approx(value, rel=1e-12), (key, column)
        assert got["mean_review"] is None and got["n_review"] == 0
    # A version nobody evaluated: no mean, n = 0, no shares (unknown, not 0 %).
    untracked = by_version[(None, "untracked")]
    assert untracked["mean_correctness"] is None and untracked["n_correctness"] == 0
    assert all(untracked[f"share_review_{label}"] is None for label in top)


def test_versions_csv_writes_unknown_tokens_and_cost_as_empty_cells(evaluated_app) -> None:
    client = evaluated_app.server.test_client()
    auth = AuthActions(evaluated_app, client)
    auth.create()
    auth.login()
    response = client.get("/api/export/analytics/versions.csv?range=24h&evaluator=review")
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True), newline="")))
    untracked = next(r for r in rows if r["prompt_version"] == "untracked")
    assert untracked["count"] == "3"
    assert untracked["tokens"] == "" and untracked["cost"] == ""
    assert untracked["tokens_unknown"] == "3" and untracked["cost_unknown"] == "3"
    assert untracked["mean_correctness"] == "" and untracked["n_correctness"] == "0"
    assert not any("nan" in v.lower() for r in rows for v in r.values() if v)
    # Full precision: shares and means as the engine computed them, not as the grid shows.
    shares = [v for r in rows for k, v in r.items() if k.startswith("share_review_") and v]
    assert shares and all(0 <= float(v) <= 1 for v in shares)


def test_the_analytics_page_shows_the_chosen_evaluator(evaluated_app) -> None:
    module = sys.modules["pages.analytics"]
    with evaluated_app.server.test_request_context("/"):
        default = module.redraw(None, "prompt_version", "?range=24h")
        review = module.redraw(None, "prompt_version", "?range=24h&evaluator=review")
        unknown = module.redraw(None, "prompt_version", "?range=24h&evaluator=nope")
    # The seed's correctness has the most annotations (45, against 15 reviews and 23 tones).
    text = _find(default[0], "analytics-kpi-score").children
    assert text.startswith("correctness ") and text.endswith("· n = 45")
    assert default[9] == "correctness (most annotations)"
    assert [o["value"] for o in default[8]] == ["correctness", "review", "tone"]
    assert default[10] is None
    shown = _find(review[0], "analytics-kpi-score").children
    assert shown.startswith("review: ") and shown.endswith("· n = 15") and "%" in shown
    assert unknown[10].id == "analytics-evaluator-problem"
    assert "Ignored evaluator='nope'" in unknown[10].children
    assert _find(unknown[0], "analytics-kpi-score").children == text
    # The grid got the label shares too, and the charts say how many calls each point holds.
    grid = _find(review[5], "analytics-versions-table")
    assert any(k.startswith("share_review_") for k in grid.rowData[0])
    latency = review[1]
    assert latency["layout"]["yaxis"]["ticksuffix"] == " ms"
    assert all("n = " in trace["hovertemplate"] for trace in latency["data"])


def test_home_cards_follow_the_picked_evaluator(evaluated_app) -> None:
    home = sys.modules["pages.home"]
    with evaluated_app.server.test_request_context("/"):
        shown, _top, options, placeholder, message = home.redraw(None, "review")
        default, *_rest = home.redraw(None, None)
    stats, default_stats = html.Div(shown), html.Div(default)
    assert placeholder == "correctness (most annotations)" and message is None
    assert {o["value"] for o in options} == {"correctness", "review", "tone"}
    for window in ("24h", "7d"):
        assert _find(stats, f"home-{window}-score").children.startswith("review: ")
        assert _find(default_stats, f"home-{window}-score").children.startswith("correctness ")
        # Every fifth seeded call has no cost: the card says so, in a note and a tooltip.
        assert _find(stats, f"home-{window}-cost-unknown") is not None
    assert home.evaluator_to_url("review") == "?evaluator=review"
    assert home.evaluator_to_url(None) == "?"


def test_the_url_restores_the_evaluator_picker(client, auth) -> None:
    auth.create()
    auth.login()
    # The bar writes evaluator= into the URL and keeps it (tests/test_filter_bar.py).
    # The URL restores the picker.
    layout = route(client, "/analytics", "?evaluator=review").get_data(as_text=True)
    assert '"id": "analytics-filter-evaluator"' in layout.replace('":"', '": "') or (
        "analytics-filter-evaluator" in layout
    )
    assert '"value":"review"' in layout.replace(" ", "")
    home = route(client, "/", "?evaluator=review").get_data(as_text=True)
    assert "home-filter-evaluator" in home and '"value":"review"' in home.replace(" ", "")
