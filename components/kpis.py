"""KPI cards for the headline numbers."""

from __future__ import annotations

from collections.abc import Mapping

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.charts import create_sparkline
from components.formats import (
    NO_VALUE,
    fmt_count,
    fmt_delta,
    fmt_ms,
    fmt_pct,
    fmt_score,
    fmt_usd,
)
from services.evaluators import EvaluatorView, LabelCounts, default_evaluator, view
from store.analytics import EvaluatorScore, Kpis, PeriodStats

SHOWN_LABELS = 3  # a card shows the most frequent labels of a label-only evaluator


def evaluator_text(evaluator: EvaluatorView | None) -> str:
    """Describe one evaluator: "correctness 0.73 · n = 1,204", or its top labels with shares."""
    if evaluator is None:
        return NO_VALUE
    if evaluator.label_only and evaluator.labels:
        total = evaluator.labelled
        top = " · ".join(
            f"{label} {fmt_pct(n / total)}" for label, n in evaluator.labels[:SHOWN_LABELS]
        )
        return f"{evaluator.name}: {top} · n = {fmt_count(total)}"
    if evaluator.label_only:
        return f"{evaluator.name}: labels only · n = {fmt_count(evaluator.annotations)}"
    return f"{evaluator.name} {fmt_score(evaluator.mean)} · n = {fmt_count(evaluator.scored)}"


def _evaluator_title(evaluator: EvaluatorView | None) -> str:
    return "Eval labels" if evaluator is not None and evaluator.label_only else "Mean eval score"


def _unknown_note(target: str, unknown: int, what: str) -> list[object]:
    """Say how many calls a total leaves out because their value is unknown: a note and a tip."""
    if not unknown:
        return []
    calls = f"{fmt_count(unknown)} call{'s' if unknown != 1 else ''}"
    return [
        html.Div(
            f"{calls} without {what}", className="small text-body-secondary", id=f"{target}-unknown"
        ),
        dbc.Tooltip(
            f"{calls} have no {what}: the total and the mean leave them out (unknown, not zero).",
            target=target,
        ),
    ]


def _default_view(scores: tuple[EvaluatorScore, ...]) -> EvaluatorView | None:
    """Show the evaluator with the most annotations when the caller chose none."""
    return view(scores, default_evaluator(scores), {})


def create_kpi_cards(page: str, kpis: Kpis, evaluator: EvaluatorView | None = None) -> dbc.Row:
    """Build a row of cards: volume, error rate, p95 latency, tokens, cost and one evaluator."""
    m = kpis.metrics
    shown = evaluator if evaluator is not None else _default_view(kpis.scores)
    cards = [
        ("count", "LLM calls", fmt_count(m.count), []),
        ("error-rate", "Error rate", fmt_pct(m.error_rate), []),
        ("p95", "p95 latency", fmt_ms(m.p95_ms), []),
        ("tokens", "Tokens", fmt_count(m.tokens),
         _unknown_note(f"{page}-kpi-tokens", m.tokens_unknown, "token count")),
        ("cost", "Cost", fmt_usd(m.cost),
         _unknown_note(f"{page}-kpi-cost", m.cost_unknown, "cost")),
        ("score", _evaluator_title(shown), evaluator_text(shown), []),
    ]  # fmt: skip
    return dbc.Row(
        [
            dbc.Col(
                dbc.Card(
                    dbc.CardBody(
                        [
                            html.Div(title, className="small text-body-secondary"),
                            html.Div(
                                value,
                                # An evaluator's name and n make a longer line than a number.
                                className=f"{'fs-6' if key == 'score' else 'fs-4'} fw-semibold",
                                id=f"{page}-kpi-{key}",
                            ),
                            *note,
                        ]
                    )
                ),
                xs=6,
                md=4,
                xl=2,
                className="mb-3",
            )
            for key, title, value, note in cards
        ]
    )


def _change(current: float | None, previous: float | None, *, lower_is_better: bool) -> html.Span:
    """Show the change from the previous period, green when it is an improvement.

    A change that rounds to 0 % at the shown precision is neutral: muted, no arrow, "±0 %".
    """
    if current is None or previous is None or previous == 0:
        return html.Span("no earlier data", className="small text-body-secondary")
    ratio = (current - previous) / abs(previous)
    if f"{abs(ratio):.0%}" == "0%":  # the dead zone: "-0%" in red would claim a drop that isn't one
        return html.Span("±0 % vs previous", className="small text-body-secondary")
    better = ratio < 0 if lower_is_better else ratio > 0
    color = "text-success" if better else "text-danger"
    arrow = "bi-arrow-up" if ratio > 0 else "bi-arrow-down"
    return html.Span(
        [html.I(className=f"bi {arrow} me-1"), f"{ratio:+.0%} vs previous"],
        className=f"small {color}",
    )


def _label_change(now: EvaluatorView | None, before: EvaluatorView | None) -> html.Span:
    """Show how the top label's share moved, in percentage points; no label is "better"."""
    if now is None or before is None or not now.labels or not before.labelled:
        return html.Span("no earlier data", className="small text-body-secondary")
    label, count = now.labels[0]
    earlier = dict(before.labels).get(label, 0) / before.labelled
    delta = count / now.labelled - earlier
    return html.Span(
        f"{fmt_delta(delta, 'percent')} {label} vs previous", className="small text-body-secondary"
    )


def _evaluator_change(now: EvaluatorView | None, before: EvaluatorView | None) -> html.Span:
    """Compare the same evaluator in both periods: its mean, or its top label's share."""
    if now is not None and now.label_only:
        return _label_change(now, before)
    return _change(
        now.mean if now else None, before.mean if before else None, lower_is_better=False
    )


def _sparkline(values: list[float]) -> dcc.Graph:
    return dcc.Graph(
        figure=create_sparkline(values), config={"displayModeBar": False, "staticPlot": True}
    )


def create_period_cards(
    page: str,
    window: str,
    stats: PeriodStats,
    evaluator: str | None = None,
    labels: tuple[Mapping[str, LabelCounts], Mapping[str, LabelCounts]] = ({}, {}),
) -> dbc.Row:
    """Build the quick-stat cards of one window: value, change and a sparkline each.

    The score card shows `evaluator` (default: the most annotations in this window) in both
    periods; `labels` are the (current, previous) label counts of label-only evaluators.
    """
    now, before = stats.current.metrics, stats.previous.metrics
    points = [p.metrics for p in stats.series.points]
    name = evaluator or default_evaluator(stats.current.scores)
    score_now = view(stats.current.scores, name, labels[0])
    score_before = view(stats.previous.scores, name, labels[1])
    cards: list[tuple[str, str, str, html.Span, list[float]]] = [
        ("count", "Volume", fmt_count(now.count),
         _change(now.count, before.count, lower_is_better=False), [float(p.count) for p in points]),
        ("error-rate", "Error rate", fmt_pct(now.error_rate),
         _change(now.error_rate, before.error_rate, lower_is_better=True),
         [p.error_rate or 0.0 for p in points]),
        ("p95", "p95 latency", fmt_ms(now.p95_ms),
         _change(now.p95_ms, before.p95_ms, lower_is_better=True),
         [p.p95_ms or 0.0 for p in points]),
        ("cost", "Cost", fmt_usd(now.cost), _change(now.cost, before.cost, lower_is_better=True),
         [p.cost or 0.0 for p in points]),
        ("score", _evaluator_title(score_now), evaluator_text(score_now),
         _evaluator_change(score_now, score_before), []),
    ]  # fmt: skip
    columns = []
    for key, title, text, change, spark in cards:
        card_id = f"{page}-{window}-{key}"
        body: list[object] = [
            html.Div(title, className="small text-body-secondary"),
            html.Div(
                text, className=f"{'fs-6' if key == 'score' else 'fs-4'} fw-semibold", id=card_id
            ),
            change,
        ]
        if key == "cost":
            body += _unknown_note(card_id, now.cost_unknown, "cost")
        if spark:
            body.append(_sparkline(spark))
        columns.append(dbc.Col(dbc.Card(dbc.CardBody(body)), xs=6, md=4, xl=True, className="mb-3"))
    return dbc.Row(columns)
