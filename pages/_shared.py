"""Callbacks every filtered page shares: filters to the URL, and live polling."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from dash import (
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    no_update,
)

from components.live import create_live_status
from services import prompt_filters, tables
from services.analytics import fact_store, watermark
from services.container import get_services
from services.filters import FilterState, parse_query
from services.live import poll_watermark


def state_from_search(search: str | None) -> FilterState:
    """Read the filter state from a URL query string."""
    parsed = {k: v[-1] for k, v in parse_qs((search or "").lstrip("?")).items()}
    return parse_query(parsed)[0]


FILTERS = ("project", "prompt", "versions", "model", "status", "range", "start", "end")


def register_filter_callbacks(page: str, *, evaluator_picker: bool = False) -> None:
    """Wire a page's filter bar to its URL and state store, and its live poll to the watermark.

    With `evaluator_picker` the page's `<page>-filter-evaluator` dropdown is part of the state;
    without, the URL's `evaluator=` is carried along unchanged, for the pages that have one.
    """
    names = FILTERS + (("evaluator",) if evaluator_picker else ())

    @callback(
        Output(f"{page}-url", "search"),
        Output(f"{page}-state", "data"),
        *[Input(f"{page}-filter-{name}", "value") for name in names],
        State(f"{page}-state", "data"),
        prevent_initial_call=True,
    )
    def filters_to_url(*values: Any) -> Any:
        """Write the filters into the URL, so the view can be shared, and into the store."""
        *chosen, current = values
        picked = dict(zip(names, chosen, strict=True))
        previous = state_from_search(current)
        # The same parser as a typed-in URL, so the bar cannot produce what a link would refuse.
        state = parse_query(
            {
                **picked,
                "versions": ",".join(picked["versions"] or ()),
                "evaluator": picked.get("evaluator", previous.evaluator),
            }
        )[0]
        if state == previous:
            return no_update, no_update
        return state.query_string() or "?", state.query_string()

    # A function from assets/filters.js, not inline code, so the CSP needs no hash for it.
    clientside_callback(
        ClientsideFunction(namespace="filters", function_name="customRangeStyle"),
        Output(f"{page}-filter-custom", "style"),
        Input(f"{page}-filter-range", "value"),
        prevent_initial_call=True,
    )

    @callback(
        Output(f"{page}-filter-versions", "options"),
        Input(f"{page}-filter-prompt", "value"),
        State(f"{page}-filter-versions", "value"),
        prevent_initial_call=True,
    )
    def versions_for_prompt(prompt: str | None, chosen: list[str] | None) -> list[str]:
        """Offer only the chosen prompt's versions, keeping any already picked."""
        with get_services().sessions() as db:
            versions = prompt_filters.filter_options(db, fact_store(), prompt)["versions"]
        return versions + [v for v in chosen or [] if v not in versions]

    register_live_callback(page)


def register_live_callback(page: str) -> None:
    """Poll our database for a page; its redraws follow only when the watermark moved."""

    @callback(
        Output(f"{page}-watermark", "data"),
        Output(f"{page}-live-status", "children"),
        Input(f"{page}-poll", "n_intervals"),
        Input(f"{page}-live", "value"),
        State(f"{page}-watermark", "data"),
        # The layout drew the status; the first poll comes one interval later.
        prevent_initial_call=True,
    )
    def poll(_n: int | None, live: bool, seen: int | None) -> tuple[Any, Any]:
        """Check our database for new data; redraws follow only when it moved."""
        mark, state = poll_watermark(live, seen)
        return (no_update if mark is None else mark), create_live_status(state, paused=not live)


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
