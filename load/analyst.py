"""One simulated analyst: sign in, open pages, change filters, compare versions, export CSVs."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from components.filter_bar import FilterBarAIO
from load.client import DashClient, Recorder, RequestFailed, component_key

# Where analysts spend their time; analytics is the page they open every morning.
PAGE_WEIGHTS = {"/": 2, "/traces": 3, "/analytics": 4, "/evaluations": 1}
PAGE_NAMES = {
    "/": "home",
    "/traces": "traces",
    "/analytics": "analytics",
    "/evaluations": "evaluations",
}
RANGES = ("7d", "24h", "30d", "custom")
# Once a tab is open, most page changes are navbar clicks, routed without a reload.
NAVBAR_SHARE = 0.6


class TimeUp(Exception):
    """The run's end arrived; the analyst closes the tab."""


@dataclass(frozen=True)
class Plan:
    """What every analyst shares: the server, think times and the data's filter values."""

    base: str
    password: str
    prompts: tuple[str, ...]
    window: tuple[str, str]  # the custom range that holds all seeded data, UTC
    poll_interval_s: float = 5.0
    think_s: tuple[float, float] = (3.0, 8.0)
    timeout_s: float = 30.0


# While a page is open its live poll fires every poll interval, as dcc.Interval does in the
# browser, whatever the analyst is doing; between actions the analyst reads for a while.
class Analyst:
    """A person at the dashboard for the length of one run."""

    def __init__(self, plan: Plan, email: str, recorder: Recorder, seed: int) -> None:
        self.plan = plan
        self.email = email
        self.rng = random.Random(seed)
        self.client = DashClient(plan.base, recorder, plan.timeout_s)
        self.page = "home"
        self.deadline = 0.0
        self.next_poll = 0.0

    def run(self, start_at: float, deadline: float) -> None:
        """Arrive at start_at, work until the deadline; a failed request costs one page view."""
        self.deadline = deadline
        try:
            self._sleep_until(start_at)
            self._login()
            while True:
                try:
                    self.visit()
                except RequestFailed:
                    self.read(self.rng.uniform(*self.plan.think_s), polling=False)
        except TimeUp:
            pass
        finally:
            self.client.http.close()

    def _login(self) -> None:
        while True:
            try:
                self.client.login(self.email, self.plan.password)
                return
            except RequestFailed:
                self.read(self.rng.uniform(*self.plan.think_s), polling=False)

    # Time ---------------------------------------------------------------------------------------

    def _sleep_until(self, moment: float) -> None:
        if moment >= self.deadline:
            time.sleep(max(0.0, self.deadline - time.monotonic()))
            raise TimeUp
        time.sleep(max(0.0, moment - time.monotonic()))

    def read(self, seconds: float, polling: bool = True) -> None:
        """Look at the page for a while; its live poll keeps firing meanwhile."""
        end = time.monotonic() + seconds
        while True:
            wake = min(end, self.next_poll) if polling else end
            self._sleep_until(wake)
            if polling and time.monotonic() >= self.next_poll:
                self.poll()
            if time.monotonic() >= end:
                return

    def poll(self) -> None:
        """Tick the page's dcc.Interval, which fires its watermark poll."""
        interval = (component_key(FilterBarAIO.ids.poll(self.page)), "n_intervals")
        self.client.change({interval: (self.client.value(interval) or 0) + 1})
        self.next_poll += self.plan.poll_interval_s

    # Behaviour ----------------------------------------------------------------------------------

    def visit(self) -> None:
        """Open a page, then do a few things on it with reading time in between."""
        path = self.rng.choices(list(PAGE_WEIGHTS), weights=list(PAGE_WEIGHTS.values()))[0]
        self.page = PAGE_NAMES[path]
        if self.client.shell and self.rng.random() < NAVBAR_SHARE:
            self.client.navigate(path)
        else:  # the first page, a bookmark, a link from a colleague, a reload
            self.client.open(path, "" if path == "/" else self._query())
        # dcc.Interval starts counting when the page mounts.
        self.next_poll = time.monotonic() + self.plan.poll_interval_s
        for _ in range(self.rng.randint(2, 4)):
            self.read(self.rng.uniform(*self.plan.think_s))
            self._act()

    def _query(self) -> str:
        """Build a URL an analyst would bookmark or paste: a prompt, often a range."""
        pairs: dict[str, str] = {}
        if self.rng.random() < 0.7:
            pairs["prompt"] = self.rng.choice(self.plan.prompts)
        time_range = self.rng.choice(RANGES)
        if time_range == "custom":
            pairs.update(range="custom", start=self.plan.window[0], end=self.plan.window[1])
        elif time_range != "7d":
            pairs["range"] = time_range
        return f"?{urlencode(pairs)}" if pairs else ""

    def _act(self) -> None:
        actions: list[tuple[float, Callable[[], None]]] = [(1, self.export)]
        if self.page != "home":
            actions += [(4, self.pick_prompt), (2, self.pick_versions), (2, self.pick_range)]
        if self.page == "analytics":
            actions.append((2, self.compare))
        if self.page in ("traces", "evaluations"):
            actions.append((2, self.open_row))
        weights, choices = zip(*actions, strict=True)
        self.rng.choices(choices, weights=weights)[0]()

    def _filter(self, name: str) -> tuple[str, str]:
        """Name a filter bar control's value: its dict id, as the client keys components."""
        return component_key(FilterBarAIO.ids.filter(self.page, name)), "value"

    def _options(self, component: str) -> list[str]:
        options: list[Any] = self.client.props.get(component, {}).get("options") or []
        return [o["value"] if isinstance(o, dict) else str(o) for o in options]

    def pick_prompt(self) -> None:
        """Choose another prompt (or All) in the filter bar."""
        current = self.client.value(self._filter("prompt"))
        choices = [p for p in (*self.plan.prompts, None) if p != current]
        self.client.change({self._filter("prompt"): self.rng.choice(choices)})

    def pick_versions(self) -> None:
        """Choose one or two of the offered versions."""
        offered = self._options(self._filter("versions")[0])
        if not offered:
            return self.pick_prompt()
        chosen = self.rng.sample(offered, k=min(len(offered), self.rng.randint(1, 2)))
        self.client.change({self._filter("versions"): chosen})
        return None

    def pick_range(self) -> None:
        """Switch the time range; a custom range takes its start and end typed in too."""
        current = self.client.value(self._filter("range"))
        choice = self.rng.choice([r for r in RANGES if r != current])
        self.client.change({self._filter("range"): choice})
        if choice == "custom":
            for name, value in zip(("start", "end"), self.plan.window, strict=True):
                self.read(self.rng.uniform(1.0, 3.0))
                self.client.change({self._filter(name): value})

    def compare(self) -> None:
        """Pick version A, then version B, on the analytics page."""
        offered = self._options("analytics-version-a")
        if len(offered) < 2:
            return self.pick_prompt()
        version_a, version_b = self.rng.sample(offered, k=2)
        self.client.change({("analytics-version-a", "value"): version_a})
        self.read(self.rng.uniform(1.0, 3.0))
        self.client.change({("analytics-version-b", "value"): version_b})
        return None

    def open_row(self) -> None:
        """Click a row of the grid, which opens its trace or span in a Phoenix pane."""
        key = "trace_id" if self.page == "traces" else "row_key"
        rows: list[dict[str, Any]] = (
            self.client.props.get(f"{self.page}-grid", {}).get("rowData") or []
        )
        if not rows:
            return self.pick_range()
        row = self.rng.choice(rows[:20])  # the grid's first page
        clicked = {"value": row.get(key), "colId": key, "rowIndex": 0, "rowId": row.get(key)}
        self.client.change({(f"{self.page}-grid", "cellClicked"): clicked})
        return None

    def export(self) -> None:
        """Click one of the page's Export CSV buttons and save the whole file."""
        links = [
            props["href"]
            for ident, props in self.client.props.items()
            if ident.endswith("-export") and str(props.get("href", "")).startswith("/api/export/")
        ]
        if links:
            self.client.export(self.rng.choice(sorted(links)))
