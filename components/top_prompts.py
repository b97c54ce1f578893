"""The top-prompts table, with links into the filtered pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from components.kpis import NO_VALUE


def _links(prompt: str) -> html.Span:
    query = "?" + urlencode({"prompt": prompt})
    return html.Span(
        [
            dcc.Link("analytics", href=f"/analytics{query}", className="me-2"),
            dcc.Link("traces", href=f"/traces{query}", className="me-2"),
            dcc.Link("evaluations", href=f"/evaluations{query}"),
        ]
    )


def create_top_prompts(page: str, frame: pd.DataFrame) -> Any:
    """Build the top-prompts table with links into the other pages."""
    if frame.empty:
        return dbc.Alert("No prompts have traffic yet.", color="info", id=f"{page}-no-prompts")
    header = html.Thead(
        html.Tr([html.Th(h) for h in ("prompt", "calls", "error rate", "p95", "mean score", "")])
    )
    rows = [
        html.Tr(
            [
                html.Td(r.prompt),
                html.Td(f"{r.calls:,}"),
                html.Td(f"{r.error_rate:.1%}"),
                html.Td(f"{r.p95_ms / 1000:.2f} s"),
                html.Td(NO_VALUE if pd.isna(r.mean_score) else f"{r.mean_score:.2f}"),
                html.Td(_links(r.prompt)),
            ]
        )
        for r in frame.itertuples()
    ]
    return dbc.Table([header, html.Tbody(rows)], size="sm", hover=True, id=f"{page}-prompts")
