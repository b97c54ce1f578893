"""KPI cards for the headline numbers."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.charts import create_sparkline
from store.analytics import EvaluatorScore, Kpis, PeriodStats

NO_VALUE = "\u2013"  # an en dash stands for "no data"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return NO_VALUE
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def fmt_pct(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.1%}"


def _fmt_score(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


def _fmt_count(value: int | None) -> str:
    return NO_VALUE if value is None else f"{value:,}"


def _fmt_usd(value: float | None) -> str:
    return NO_VALUE if value is None else f"${value:,.2f}"


def _fmt_scores(scores: tuple[EvaluatorScore, ...]) -> str:
    """Show each evaluator's mean on its own scale; never one mean across evaluators."""
    shown = [f"{s.name} {_fmt_score(s.mean)}" for s in scores if s.scored]
    return " · ".join(shown) if shown else NO_VALUE


def _single_score(scores: tuple[EvaluatorScore, ...]) -> float | None:
    """Return the mean when exactly one evaluator scored, so a change is comparable."""
    scored = [s for s in scores if s.scored]
    return scored[0].mean if len(scored) == 1 else None


def _unknown_note(unknown: int, what: str) -> html.Div | None:
    """Say how many calls a total leaves out because their value is unknown."""
    if not unknown:
        return None
    return html.Div(f"{unknown:,} calls without {what}", className="small text-body-secondary")


def create_kpi_cards(page: str, kpis: Kpis) -> dbc.Row:
    """Build a row of cards: volume, error rate, p95 latency, tokens, cost, evaluator means."""
    m = kpis.metrics
    cards = [
        ("count", "LLM calls", f"{m.count:,}", None),
        ("error-rate", "Error rate", fmt_pct(m.error_rate), None),
        ("p95", "p95 latency", fmt_ms(m.p95_ms), None),
        ("tokens", "Tokens", _fmt_count(m.tokens), _unknown_note(m.tokens_unknown, "tokens")),
        ("cost", "Cost", _fmt_usd(m.cost), _unknown_note(m.cost_unknown, "cost")),
        ("score", "Mean eval scores", _fmt_scores(kpis.scores), None),
    ]
    return dbc.Row(
        [
            dbc.Col(
                dbc.Card(
                    dbc.CardBody(
                        [
                            html.Div(title, className="small text-body-secondary"),
                            html.Div(value, className="fs-4 fw-semibold", id=f"{page}-kpi-{key}"),
                            note,
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
    """Show the change from the previous period, green when it is an improvement."""
    if current is None or previous is None or previous == 0:
        return html.Span("no earlier data", className="small text-body-secondary")
    ratio = (current - previous) / abs(previous)
    better = ratio < 0 if lower_is_better else ratio > 0
    color = "text-success" if better else "text-danger" if ratio else "text-body-secondary"
    arrow = "bi-arrow-up" if ratio > 0 else "bi-arrow-down" if ratio < 0 else "bi-dash"
    return html.Span(
        [html.I(className=f"bi {arrow} me-1"), f"{ratio:+.0%} vs previous"],
        className=f"small {color}",
    )


def _sparkline(values: list[float]) -> dcc.Graph:
    return dcc.Graph(
        figure=create_sparkline(values), config={"displayModeBar": False, "staticPlot": True}
    )


def create_period_cards(page: str, window: str, stats: PeriodStats) -> dbc.Row:
    """Build the quick-stat cards of one window: value, change and a sparkline each."""
    now, before = stats.current.metrics, stats.previous.metrics
    points = [p.metrics for p in stats.series.points]
    cards: list[tuple[str, str, str, float | None, float | None, bool, list[float]]] = [
        ("count", "Volume", f"{now.count:,}", now.count, before.count, False,
         [float(p.count) for p in points]),
        ("error-rate", "Error rate", fmt_pct(now.error_rate), now.error_rate,
         before.error_rate, True, [p.error_rate or 0.0 for p in points]),
        ("p95", "p95 latency", fmt_ms(now.p95_ms), now.p95_ms, before.p95_ms, True,
         [p.p95_ms or 0.0 for p in points]),
        ("cost", "Cost", _fmt_usd(now.cost), now.cost, before.cost, True,
         [p.cost or 0.0 for p in points]),
        ("score", "Mean eval scores", _fmt_scores(stats.current.scores),
         _single_score(stats.current.scores), _single_score(stats.previous.scores), False, []),
    ]  # fmt: skip
    columns = []
    for key, title, text, value, previous, lower_is_better, spark in cards:
        body = [
            html.Div(title, className="small text-body-secondary"),
            html.Div(text, className="fs-4 fw-semibold", id=f"{page}-{window}-{key}"),
            _change(value, previous, lower_is_better=lower_is_better),
        ]
        if spark:
            body.append(_sparkline(spark))
        columns.append(dbc.Col(dbc.Card(dbc.CardBody(body)), xs=6, md=4, xl=True, className="mb-3"))
    return dbc.Row(columns)
