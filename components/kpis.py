"""KPI cards for the headline numbers."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from services.analytics import Kpis

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
