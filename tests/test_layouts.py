"""Every page renders with the integration on or off, with unique component ids."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import dash
import pytest

from app import create_app
from components.shell import create_nav_links


def _ids(component: Any) -> list[str]:
    found = []
    component_id = getattr(component, "id", None)
    if isinstance(component_id, str):
        found.append(component_id)
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found += _ids(child)
    return found


@pytest.mark.parametrize("enabled", [False, True])
def test_every_page_renders_with_unique_ids(settings, enabled: bool) -> None:
    # With the flag on, Phoenix is simply absent here: pages must say so, not fail.
    app = create_app(
        settings.with_overrides(phoenix_enabled=enabled, phoenix_url="http://127.0.0.1:9")
    )
    with app.server.test_request_context("/"):
        for page in dash.page_registry.values():
            layout = page["layout"]() if callable(page["layout"]) else page["layout"]
            counts = Counter(_ids(layout))
            assert [i for i, n in counts.items() if n > 1] == [], page["module"]


def test_phoenix_pages_leave_the_navbar_when_the_flag_is_off(settings) -> None:
    create_app(settings)
    names = [
        link.children.children[1]
        for link in create_nav_links(dash.page_registry.values(), phoenix_enabled=False)
    ]
    assert "Experiments" not in names and "Playground" not in names
    assert {"Home", "Traces", "Evaluations", "Analytics"} <= set(names)
    everything = [
        link.children.children[1]
        for link in create_nav_links(dash.page_registry.values(), phoenix_enabled=True)
    ]
    assert {"Experiments", "Playground"} <= set(everything)


# Each page's redraw callback, called with an unknown project in the URL.
REDRAW_ARGS = {
    "traces": (None, "?project=nope"),
    "evaluations": (None, "?project=nope"),
    "analytics": (None, "prompt_version", "?project=nope"),
}


@pytest.mark.parametrize("page", sorted(REDRAW_ARGS))
def test_an_unknown_filter_gives_a_friendly_empty_state(settings, page: str) -> None:
    app = create_app(settings)
    with app.server.test_request_context("/"):
        outputs = sys.modules[f"pages.{page}"].redraw(*REDRAW_ARGS[page])
    notice = outputs[-1]
    assert notice.id == f"{page}-empty"
    assert notice.children == "No project named 'nope' has synced data yet."


def _grids(component: Any) -> list[Any]:
    """Collect every AG Grid in a layout."""
    found = [component] if type(component).__name__ == "AgGrid" else []
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found += _grids(child)
    return found


@pytest.mark.parametrize("page", ["traces", "evaluations"])
def test_large_tables_page_on_the_server(settings, page: str) -> None:
    # The browser gets a block of rows at a time, never the whole filtered result.
    app = create_app(settings)
    with app.server.test_request_context("/"):
        layout = sys.modules[f"pages.{page}"].layout()
    (grid,) = _grids(layout)
    assert grid.rowModelType == "infinite"
    assert getattr(grid, "rowData", None) is None
    assert grid.dashGridOptions["cacheBlockSize"] <= 1000
