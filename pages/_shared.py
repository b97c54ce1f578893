"""Callbacks every filtered page shares: the filter bar's, and its paged grids'."""

from __future__ import annotations

from typing import Any

from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback

from components.filter_bar import FILTERS, FilterBarAIO, register_callbacks, state_from_search
from services import prompt_filters, tables
from services.analytics import fact_store, watermark
from services.container import get_services

__all__ = [
    "FILTERS",
    "page_request",
    "register_filter_callbacks",
    "register_live_callback",
    "register_paged_grid",
    "state_from_search",
    "table_context",
]


def register_filter_callbacks(page: str, *, evaluator_picker: bool = False) -> None:
    """Wire a page's filter bar to its URL and state store, and its live poll to the watermark.

    The bar's callbacks serve every page (components/filter_bar.FilterBarAIO); with
    `evaluator_picker` the page's `<page>-filter-evaluator` dropdown feeds the bar's evaluator,
    without, the URL's `evaluator=` is carried along unchanged.
    """
    register_callbacks()
    if evaluator_picker:

        @callback(
            Output(FilterBarAIO.ids.evaluator(page), "data"),
            Input(f"{page}-filter-evaluator", "value"),
            prevent_initial_call=True,
        )
        def evaluator_to_bar(evaluator: str | None) -> str | None:
            """Hand the picked evaluator to the bar, which writes it into the URL."""
            return evaluator


def register_live_callback(page: str) -> None:
    """Poll our database for a page: the bar's shared poll serves every page's live controls."""
    del page  # one pattern-matching callback serves them all
    register_callbacks()


def page_request(request: dict[str, Any] | None) -> tables.PageRequest:
    """Read AG Grid's request for rows: a block of them, maybe sorted by one column."""
    request = request or {}
    start = int(request.get("startRow") or 0)
    end = int(request.get("endRow") or start + tables.PAGE_ROWS)
    sort_model = request.get("sortModel") or []
    first = sort_model[0] if sort_model and isinstance(sort_model[0], dict) else {}
    return tables.PageRequest(
        offset=start,
        limit=max(1, end - start),
        sort=first.get("colId"),
        descending=first.get("sort", "desc") != "asc",
    )


def table_context(search: str | None) -> tables.Context:
    """Build a table query's context for the filters of a URL query."""
    state = state_from_search(search)
    with get_services().sessions() as db:
        filters = prompt_filters.resolve(db, state)
        names = prompt_filters.prompt_names(db)
        mark = watermark(db)
    return tables.Context(fact_store(), filters, names, mark=mark)


def register_paged_grid(grid_id: str, table_name: str) -> None:
    """Answer a paged grid's requests for rows from the registry table, a block at a time."""
    entry = tables.table(table_name)

    @callback(
        Output(grid_id, "getRowsResponse"),
        Input(grid_id, "getRowsRequest"),
        State(f"{grid_id}-query", "data"),
        prevent_initial_call=True,
    )
    def rows(request: dict[str, Any] | None, data: dict[str, Any] | None) -> dict[str, Any]:
        """Return one block of rows, sorted by the engine, and how many rows there are."""
        context = table_context((data or {}).get("query"))
        page = entry.view(context, page_request(request))
        return {"rowData": tables.records(page), "rowCount": page.total}

    clientside_callback(
        ClientsideFunction(namespace="table", function_name="refreshRows"),
        Input(f"{grid_id}-query", "data"),
        State(grid_id, "id"),
        prevent_initial_call=True,
    )
