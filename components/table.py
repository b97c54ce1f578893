"""A data table (AG Grid) with server-side CSV export of the whole filtered result."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import html


def create_data_table(
    table_id: str,
    rows: list[dict[str, Any]],
    columns: list[str],
    *,
    export_href: str,
    title: str,
    page_size: int = 20,
    row_id: str | None = None,
) -> dbc.Card:
    """Build a sortable, filterable, paginated grid with a column chooser and an export link."""
    grid = dag.AgGrid(
        id=table_id,
        rowData=rows,
        columnDefs=[{"field": c, "headerName": c.replace("_", " ")} for c in columns],
        defaultColDef={"sortable": True, "filter": True, "resizable": True, "minWidth": 110},
        dashGridOptions={
            "pagination": True,
            "paginationPageSize": page_size,
            "rowSelection": {
                "mode": "singleRow",
                "checkboxes": False,
                "enableClickSelection": True,
            },
            "animateRows": False,
        },
        columnSize="responsiveSizeToFit",
        # A stable row id lets a click name its row whatever the sort, filter or page.
        getRowId=f"params.data.{row_id}" if row_id else None,
        style={"height": "420px"},
        className="ag-theme-alpine",
    )
    return dbc.Card(
        [
            dbc.CardHeader(
                [
                    html.Span(title, className="fw-semibold"),
                    html.A(
                        [html.I(className="bi bi-download me-1"), "Export CSV"],
                        href=export_href,
                        id=f"{table_id}-export",
                        className="btn btn-sm btn-outline-secondary",
                        download="",
                    ),
                ],
                className="d-flex justify-content-between align-items-center",
            ),
            dbc.CardBody(grid, className="p-0"),
        ],
        className="mb-3",
    )
