"""The top-prompts table, with links into the filtered pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import dcc, html

from components.formats import NO_VALUE, fmt_count, fmt_ms, fmt_pct, fmt_score, fmt_usd
from store.analytics import PromptRank


def _links(prompt: str) -> html.Span:
    query = "?" + urlencode({"prompt": prompt})
    return html.Span(
        [
            dcc.Link("analytics", href=f"/analytics{query}", className="me-2"),
            dcc.Link("traces", href=f"/traces{query}", className="me-2"),
            dcc.Link("evaluations", href=f"/evaluations{query}"),
        ]
    )


def _scores(rank: PromptRank) -> str:
    """Show each evaluator's mean on its own scale, with the scores behind it."""
    shown = [
        f"{s.name} {fmt_score(s.mean)} (n = {fmt_count(s.scored)})"
        for s in rank.scores
        if s.mean is not None
    ]
    return " · ".join(shown) if shown else NO_VALUE


def _cost(rank: PromptRank, page: str, index: int) -> list[Any]:
    """Show the cost, and how many calls it leaves out as unknown (not zero)."""
    unknown = rank.metrics.cost_unknown
    if not unknown:
        return [fmt_usd(rank.metrics.cost)]
    return [
        fmt_usd(rank.metrics.cost),
        html.Span(
            f" ({fmt_count(unknown)} unknown)",
            className="small text-body-secondary",
            id=f"{page}-prompts-cost-unknown-{index}",
            title=f"{fmt_count(unknown)} calls have no cost: the total leaves them out.",
        ),
    ]


def create_top_prompts(page: str, ranks: Sequence[PromptRank]) -> Any:
    """Build the top-prompts table with links into the other pages."""
    if not ranks:
        return dbc.Alert("No prompts have traffic yet.", color="info", id=f"{page}-no-prompts")
    header = html.Thead(
        html.Tr(
            [
                html.Th(h)
                for h in ("prompt", "calls", "error rate", "p95", "cost", "mean scores", "")
            ]
        )
    )
    rows = [
        html.Tr(
            [
                html.Td(r.prompt),
                html.Td(fmt_count(r.metrics.count)),
                html.Td(fmt_pct(r.metrics.error_rate)),
                html.Td(fmt_ms(r.metrics.p95_ms)),
                html.Td(_cost(r, page, index)),
                html.Td(_scores(r)),
                html.Td(_links(r.prompt)),
            ]
        )
        for index, r in enumerate(ranks)
    ]
    return dbc.Table([header, html.Tbody(rows)], size="sm", hover=True, id=f"{page}-prompts")
