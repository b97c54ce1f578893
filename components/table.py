"""A data table (AG Grid) with a column chooser and server-side CSV export of the whole result."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import MATCH, ClientsideFunction, Dash, Input, Output, State, dcc, html


def column_defs(columns: list[str]) -> list[dict[str, Any]]:
    """Describe the grid's columns, all shown."""
    return [{"field": c, "headerName": c.replace("_", " ")} for c in columns]


def create_column_chooser(table_id: str, columns: list[str]) -> html.Div:
    """Build a "Columns" button whose popover shows or hides each column of the grid."""
    button_id = f"{table_id}-columns-button"
    return html.Div(
        [
            dbc.Button(
                [html.I(className="bi bi-layout-three-columns me-1"), "Columns"],
                id=button_id,
                size="sm",
                color="secondary",
                outline=True,
                className="me-2",
            ),
            dbc.Popover(
                dbc.PopoverBody(
                    dbc.Checklist(
                        id={"type": "table-columns", "grid": table_id},
                        options=[{"label": c.replace("_", " "), "value": c} for c in columns],
                        value=columns,
                        # The choice survives the redraws that live updates cause.
                        persistence=True,
                        persistence_type="session",
                    )
                ),
                target=button_id,
                trigger="legacy",
                placement="bottom-end",
            ),
            dcc.Store(
                id={"type": "table-column-defs", "grid": table_id}, data=column_defs(columns)
            ),
        ],
        className="d-inline-block",
    )


def create_export_link(link_id: str, href: str) -> html.A:
    """Build the "Export CSV" button that downloads a whole table from the export endpoint."""
    return html.A(
        [html.I(className="bi bi-download me-1"), "Export CSV"],
        href=href,
        id=link_id,
        className="btn btn-sm btn-outline-secondary",
        download="",
    )


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
        columnDefs=column_defs(columns),
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
                    html.Span(title, className="fw-semibold me-auto"),
                    create_column_chooser(table_id, columns),
                    create_export_link(f"{table_id}-export", export_href),
                ],
                className="d-flex align-items-center",
            ),
            dbc.CardBody(grid, className="p-0"),
        ],
        className="mb-3",
    )


def init_app(app: Dash) -> None:
    """Register the column chooser's one clientside callback, which serves every table."""
    # On the app, not at import: a module-level registration would reach only the first app.
    app.clientside_callback(
        ClientsideFunction(namespace="table", function_name="showColumns"),
        Output({"type": "table-column-defs", "grid": MATCH}, "data"),
        Input({"type": "table-columns", "grid": MATCH}, "value"),
        State({"type": "table-column-defs", "grid": MATCH}, "data"),
    )
