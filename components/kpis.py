"""KPI cards for the headline numbers."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.charts import create_sparkline
from services.analytics import Kpis, PeriodStats

NO_VALUE = "\u2013"  # an en dash stands for "no data"


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return NO_VALUE
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _fmt_pct(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.1%}"


def _fmt_score(value: float | None) -> str:
    return NO_VALUE if value is None else f"{value:.2f}"


def create_kpi_cards(page: str, kpis: Kpis) -> dbc.Row:
    """Build a row of cards: volume, error rate, p95 latency, tokens, cost, mean eval score."""
    cards = [
        ("count", "LLM calls", f"{kpis.count:,}"),
        ("error-rate", "Error rate", _fmt_pct(kpis.error_rate)),
        ("p95", "p95 latency", _fmt_ms(kpis.p95_ms)),
        ("tokens", "Tokens", f"{kpis.tokens:,}"),
        ("cost", "Cost", NO_VALUE if kpis.cost is None else f"${kpis.cost:,.2f}"),
        ("score", "Mean eval score", _fmt_score(kpis.mean_score)),
    ]
    return dbc.Row(
        [
            dbc.Col(
                dbc.Card(
                    dbc.CardBody(
                        [
                            html.Div(title, className="small text-body-secondary"),
                            html.Div(value, className="fs-4 fw-semibold", id=f"{page}-kpi-{key}"),
                        ]
                    )
                ),
                xs=6,
                md=4,
                xl=2,
                className="mb-3",
            )
            for key, title, value in cards
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
    now, before, series = stats.current, stats.previous, stats.series
    cards = [
        ("count", "Volume", f"{now.count:,}", now.count, before.count, False, "count"),
        (
            "error-rate",
            "Error rate",
            _fmt_pct(now.error_rate),
            now.error_rate,
            before.error_rate,
            True,
            "error_rate",
        ),
        ("p95", "p95 latency", _fmt_ms(now.p95_ms), now.p95_ms, before.p95_ms, True, "p95_ms"),
        (
            "cost",
            "Cost",
            NO_VALUE if now.cost is None else f"${now.cost:,.2f}",
            now.cost,
            before.cost,
            True,
            "cost",
        ),
        (
            "score",
            "Mean eval score",
            _fmt_score(now.mean_score),
            now.mean_score,
            before.mean_score,
            False,
            None,
        ),
    ]
    columns = []
    for key, title, text, value, previous, lower_is_better, series_column in cards:
        body = [
            html.Div(title, className="small text-body-secondary"),
            html.Div(text, className="fs-4 fw-semibold", id=f"{page}-{window}-{key}"),
            _change(value, previous, lower_is_better=lower_is_better),
        ]
        if series_column and not series.empty:
            body.append(_sparkline(series[series_column].fillna(0).tolist()))
        columns.append(dbc.Col(dbc.Card(dbc.CardBody(body)), xs=6, md=4, xl=True, className="mb-3"))
    return dbc.Row(columns)
