"""A data table (AG Grid) from a registry entry's columns, with a column chooser and CSV export."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import MATCH, ClientsideFunction, Dash, Input, Output, State, dcc, html

from services.tables import PAGE_ROWS, Column

NUMERIC = frozenset({"count", "percent", "ms", "usd", "score", "number", "unit", "unit-delta"})
# A time cell ("2026-11-26 14:05:09 GMT+1", assets/dashAgGridFunctions.js formatTime) shows whole:
# fitting the grid to its width never squeezes a time column below this many pixels.
TIME_WIDTH_PX = 230


def column_defs(columns: Sequence[Column], *, paged: bool = False) -> list[dict[str, Any]]:
    """Describe the grid's columns, all shown, each formatted by its registry format."""
    defs = []
    for column in columns:
        spec: dict[str, Any] = {
            "field": column.id,
            "headerName": column.header,
            # assets/dashAgGridFunctions.js: rates as %, latency in ms or s, cost in $; the
            # row goes along for a column whose unit is the row's (the comparison's metrics).
            "valueFormatter": {"function": f"formatCell(params.value, '{column.format}', params)"},
        }
        if column.format in NUMERIC:
            spec["type"] = "rightAligned"
        if column.format == "time":
            spec["minWidth"] = TIME_WIDTH_PX
        if paged:
            # The engine sorts a paged table, and only by the columns it has an index for.
            spec["sortable"] = column.sort is not None
        defs.append(spec)
    return defs


def create_column_chooser(table_id: str, columns: Sequence[Column], *, paged: bool) -> html.Div:
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
                        options=[{"label": c.header, "value": c.id} for c in columns],
                        value=[c.id for c in columns],
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
                id={"type": "table-column-defs", "grid": table_id},
                data=column_defs(columns, paged=paged),
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
    columns: Sequence[Column],
    *,
    export_href: str,
    title: str,
    rows: list[dict[str, Any]] | None = None,
    query: str | None = None,
    mark: int | None = None,
    page_size: int = 20,
    row_id: str | None = None,
    auto_height: bool = False,
) -> dbc.Card:
    """Build a grid with a column chooser and an export link.

    Without `rows` the grid pages on the server (AG Grid's infinite row model): it asks for a
    block of rows at a time, sorted by the engine, for the filters in `query` (kept beside the
    grid in `<table_id>-query`); the page registers the callback that answers. With `rows` the
    grid holds them all: only for small tables. `auto_height` (with `rows`) sizes the grid
    to its rows instead of a fixed 420 px, for tables of a few rows.
    """
    paged = rows is None
    options: dict[str, Any] = {
        "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
        "animateRows": False,
        # Column ids name evaluators and labels, which may hold dots: never a nested path.
        "suppressFieldDotNotation": True,
    }
    if paged:
        options |= {
            "rowBuffer": 0,
            "cacheBlockSize": PAGE_ROWS,
            "maxBlocksInCache": 10,  # the browser keeps at most ten blocks too
            "maxConcurrentDatasourceRequests": 1,
            "infiniteInitialRowCount": 1,
        }
    else:
        options |= {"pagination": True, "paginationPageSize": page_size}
    auto = auto_height and not paged
    if auto:
        options["domLayout"] = "autoHeight"
    grid = dag.AgGrid(
        id=table_id,
        columnDefs=column_defs(columns, paged=paged),
        defaultColDef={"sortable": True, "filter": not paged, "resizable": True, "minWidth": 110},
        dashGridOptions=options,
        columnSize="responsiveSizeToFit",
        # A stable row id lets a click name its row whatever the sort, filter or page.
        getRowId=row_id,
        style={"height": None} if auto else {"height": "420px"},
        className="ag-theme-alpine",
        **({"rowModelType": "infinite"} if paged else {"rowData": rows}),
    )
    extra = (
        [dcc.Store(id=f"{table_id}-query", data={"query": query, "mark": mark})] if paged else []
    )
    return dbc.Card(
        [
            dbc.CardHeader(
                [
                    html.Span(title, className="fw-semibold me-auto", id=f"{table_id}-title"),
                    create_column_chooser(table_id, columns, paged=paged),
                    create_export_link(f"{table_id}-export", export_href),
                ],
                className="d-flex align-items-center",
            ),
            dbc.CardBody([grid, *extra], className="p-0"),
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
