"""A headless Dash client: sign in, load pages and fire their callbacks as the renderer does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from dash._utils import stringify_id

from devtools.signin import csrf_token

UPDATE_PATH = "/_dash-update-component"
PAGES_LOCATION = "_pages_location"
# Dash's renderer sends the `_csrf_token` cookie back as this header; flask-wtf reads it too.
CSRF_HEADER = "X-CSRFToken"
CSRF_COOKIE = "_csrf_token"
MATCH = ["MATCH"]  # how /_dash-dependencies spells the MATCH wildcard in a stringified id
# A component's key here is its id as Dash names it in payloads and responses: a string id as
# it is, a dict id (pattern matching, e.g. the filter bar's) stringified by dash's stringify_id.
Prop = tuple[str, str]


def component_key(ident: Any) -> str:
    """Return a component id as Dash names it: a string as is, a dict id stringified."""
    return ident if isinstance(ident, str) else stringify_id(ident)


def component_id(key: str) -> Any:
    """Return the id a payload carries for a component key: a dict id parsed back."""
    return json.loads(key) if key.startswith("{") else key


def _label(key: str) -> str:
    """Name a component for reports: a dict id by its values, sorted by key."""
    if not key.startswith("{"):
        return key
    ident = json.loads(key)
    return "-".join(str(ident[k]) for k in sorted(ident))


def _wildcards(key: str) -> set[str]:
    """Return the wildcards (MATCH, ALL, ALLSMALLER) a stringified pattern id holds."""
    if not key.startswith("{"):
        return set()
    return {v[0] for v in json.loads(key).values() if isinstance(v, list) and len(v) == 1}


@dataclass(frozen=True)
class Sample:
    """One request: what it was, how long it took, and whether it failed."""

    # login, page, callback or export; "view" (a page load by URL) and "nav" (a navbar link)
    # time what a person waits for, over several requests
    kind: str
    name: str
    seconds: float
    error: str | None = None


@dataclass
class Recorder:
    """Collect samples from every analyst thread."""

    samples: list[Sample] = field(default_factory=list)
    views: list[Sample] = field(default_factory=list)
    resent: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        """Record one request."""
        with self.lock:
            self.samples.append(sample)

    def add_resent(self, sample: Sample) -> None:
        """Record a request sent again because its idle keep-alive connection had closed."""
        with self.lock:
            self.resent.append(sample)

    def add_view(self, sample: Sample) -> None:
        """Record one whole page load, from the HTML to its last initial callback."""
        with self.lock:
            self.views.append(sample)


def dropped_idle_connection(exc: requests.ConnectionError) -> bool:
    """Tell whether the server closed the connection before answering (not: refused it)."""
    text = repr(exc)
    if "NewConnectionError" in text or "refused" in text.lower():
        return False
    return any(s in text for s in ("RemoteDisconnected", "ConnectionResetError", "BrokenPipe"))


class RequestFailed(Exception):
    """A request failed; it has been recorded, and the analyst starts its next page afresh."""


@dataclass(frozen=True)
class Callback:
    """A server callback as `/_dash-dependencies` describes it."""

    output: str
    outputs: tuple[Prop, ...]
    inputs: tuple[Prop, ...]
    state: tuple[Prop, ...]
    prevent_initial_call: bool
    # A MATCH callback bound to one value of its wildcard (e.g. one page's filter bar): its
    # props are concrete keys, `output` stays the pattern that the payload names.
    bound: str = ""

    @property
    def name(self) -> str:
        """Name the callback by its first output, e.g. traces-latency.figure."""
        component, prop = self.outputs[0]
        return f"{_label(component)}.{prop}"

    @property
    def ident(self) -> str:
        """Tell apart the callback's instances: its output, and for a MATCH one, its binding."""
        return f"{self.output}@{self.bound}" if self.bound else self.output

    @property
    def matches(self) -> bool:
        """Tell whether the callback's ids hold MATCH wildcards, to bind per component."""
        return not self.bound and any("MATCH" in _wildcards(c) for c, _ in self.props)

    def bind(self, keys: Iterable[str]) -> list[Callback]:
        """Return the callback's instances for the components present, as the renderer forms them.

        Every present dict id that fits one of the callback's patterns gives a value for its
        MATCH keys; an instance is kept when all of its inputs and outputs are present.
        """
        patterns = [json.loads(c) for c, _ in self.props if "MATCH" in _wildcards(c)]
        present = set(keys)
        bindings: dict[str, dict[str, Any]] = {}
        for key in present:
            if not key.startswith("{"):
                continue
            ident = json.loads(key)
            for pattern in patterns:
                if set(ident) == set(pattern) and all(
                    pattern[k] == MATCH or pattern[k] == ident[k] for k in pattern
                ):
                    binding = {k: ident[k] for k in pattern if pattern[k] == MATCH}
                    bindings[stringify_id(binding)] = binding
        instances = []
        for name, binding in sorted(bindings.items()):

            def concrete(props: tuple[Prop, ...], b: dict[str, Any] = binding) -> tuple[Prop, ...]:
                return tuple((_bind(c, b), p) for c, p in props)

            instance = Callback(
                output=self.output,
                outputs=concrete(self.outputs),
                inputs=concrete(self.inputs),
                state=concrete(self.state),
                prevent_initial_call=self.prevent_initial_call,
                bound=name,
            )
            if all(c in present for c, _ in (*instance.inputs, *instance.outputs)):
                instances.append(instance)
        return instances

    @property
    def props(self) -> set[Prop]:
        """Return every prop the callback reads or writes."""
        return {*self.outputs, *self.inputs, *self.state}


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:240]


def _bind(key: str, binding: dict[str, Any]) -> str:
    """Put a MATCH binding's values into a stringified pattern id; other ids stay."""
    if "MATCH" not in _wildcards(key):
        return key
    ident = json.loads(key)
    return stringify_id({k: binding[k] if v == MATCH else v for k, v in ident.items()})


def _split(prop_id: str) -> Prop:
    component, _, prop = prop_id.rpartition(".")
    return component, prop


def parse_dependencies(specs: list[dict[str, Any]]) -> list[Callback]:
    """Read the server callbacks; clientside ones never reach the server.

    Ids are component keys: strings, or dict ids stringified. Callbacks with MATCH are kept
    (bound per component when fired); those with ALL or ALLSMALLER, which need every matching
    component's value in a list, are left out: the simulated analysts never trigger them.
    """
    callbacks = []
    for spec in specs:
        if spec.get("clientside_function"):
            continue
        output: str = spec["output"]
        parts = output[2:-2].split("...") if output.startswith("..") else [output]
        callback = Callback(
            output=output,
            outputs=tuple(_split(p) for p in parts),
            inputs=tuple((i["id"], i["property"]) for i in spec["inputs"]),
            state=tuple((s["id"], s["property"]) for s in spec.get("state", [])),
            prevent_initial_call=bool(spec.get("prevent_initial_call")),
        )
        if any(_wildcards(c) - {"MATCH"} for c, _ in callback.props):
            continue
        callbacks.append(callback)
    return callbacks


def components(tree: Any) -> Iterator[dict[str, Any]]:
    """Yield every component in a layout tree, wherever a prop holds one."""
    if isinstance(tree, list):
        for item in tree:
            yield from components(item)
    elif isinstance(tree, dict):
        if "type" in tree and isinstance(tree.get("props"), dict):
            yield tree
            for value in tree["props"].values():
                yield from components(value)
        else:
            for value in tree.values():
                yield from components(value)


# It keeps the props of every component with an id, reads /_dash-dependencies, and after each
# callback response fires the server callbacks whose inputs just changed and the initial
# callbacks of any components the response added: the requests a browser would send.
class DashClient:
    """One browser tab's worth of Dash protocol over a requests session."""

    def __init__(self, base: str, recorder: Recorder, timeout_s: float = 30.0) -> None:
        self.base = base
        self.recorder = recorder
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.csrf = ""
        self.props: dict[str, dict[str, Any]] = {}
        self.callbacks: list[Callback] = []
        self.shell: set[str] = set()
        self.path = "/"

    # Requests ---------------------------------------------------------------------------------

    def _fail(self, kind: str, name: str, started: float, error: str) -> RequestFailed:
        self.recorder.add(Sample(kind, name, time.perf_counter() - started, error))
        return RequestFailed(f"{name}: {error}")

    def _send(
        self, kind: str, name: str, method: str, path: str, **kwargs: Any
    ) -> requests.Response:
        """Send a request, once more if its idle keep-alive connection was closed under it."""
        # gunicorn closes idle connections after 2 s; one closed just as a request goes out is
        # resent by browsers unnoticed (Chromium does so for any method when no byte of a
        # response came back), so it is counted apart. A second failure, or any other, is an
        # error.
        if method == "POST":
            # What a browser adds to a same-origin fetch or form post; the server checks both.
            kwargs["headers"] = {
                "Origin": self.base,
                "Sec-Fetch-Site": "same-origin",
                **kwargs.get("headers", {}),
            }
        started = time.perf_counter()
        try:
            return self.http.request(method, self.base + path, timeout=self.timeout_s, **kwargs)
        except requests.ConnectionError as exc:
            if not dropped_idle_connection(exc):
                raise self._fail(kind, name, started, _describe(exc)) from exc
            self.recorder.add_resent(
                Sample(kind, name, time.perf_counter() - started, _describe(exc))
            )
        except requests.RequestException as exc:
            raise self._fail(kind, name, started, _describe(exc)) from exc
        started = time.perf_counter()
        try:
            return self.http.request(method, self.base + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise self._fail(kind, name, started, _describe(exc)) from exc

    def _headers(self) -> dict[str, str]:
        token = self.http.cookies.get(CSRF_COOKIE) or self.csrf
        return {CSRF_HEADER: token} if token else {}

    def get(self, kind: str, path: str, name: str | None = None) -> requests.Response:
        """GET a page or JSON resource; anything but 200 is an error (a 302 means signed out)."""
        started = time.perf_counter()
        name = name or path.split("?", 1)[0]
        response = self._send(kind, name, "GET", path, allow_redirects=False)
        if response.status_code != 200:
            where = response.headers.get("Location", "")
            raise self._fail(kind, name, started, f"HTTP {response.status_code} {where}".strip())
        self.recorder.add(Sample(kind, name, time.perf_counter() - started))
        return response

    def login(self, email: str, password: str) -> None:
        """Sign in through the form, sending its CSRF token when the form has one."""
        page = self.get("login", "/login")
        self.csrf = csrf_token(page.text)
        form = {"email": email, "password": password, "next": "/"}
        if self.csrf:
            form["csrf_token"] = self.csrf
        started = time.perf_counter()
        response = self._send(
            "login", "/login POST", "POST", "/login", data=form, allow_redirects=False
        )
        # Success redirects; a refused sign-in re-renders the form with 200.
        if response.status_code != 302:
            raise self._fail(
                "login", "/login POST", started, f"HTTP {response.status_code}, not signed in"
            )
        self.recorder.add(Sample("login", "/login POST", time.perf_counter() - started))

    def export(self, href: str) -> int:
        """Download a CSV export to the end, as the browser saves it; return its size in bytes."""
        started = time.perf_counter()
        name = href.split("?", 1)[0]
        try:
            with self._send(
                "export", name, "GET", href, stream=True, allow_redirects=False
            ) as response:
                size = sum(len(chunk) for chunk in response.iter_content(1 << 16))
                status, kind = response.status_code, response.headers.get("Content-Type", "")
        except requests.RequestException as exc:  # the body broke off midway
            raise self._fail("export", name, started, _describe(exc)) from exc
        if status != 200 or not kind.startswith("text/csv") or size == 0:
            raise self._fail("export", name, started, f"HTTP {status} {kind} {size} bytes")
        self.recorder.add(Sample("export", name, time.perf_counter() - started))
        return size

    # Dash -------------------------------------------------------------------------------------

    def _register(self, tree: Any) -> set[str]:
        """Remember the props of every component with an id in a tree; return those ids."""
        added = set()
        for component in components(tree):
            ident = component["props"].get("id")
            if isinstance(ident, (str, dict)):
                key = component_key(ident)
                self.props[key] = dict(component["props"])
                added.add(key)
        return added

    def value(self, prop: Prop) -> Any:
        """Return a component's current prop, None when unset, as the renderer sends it."""
        return self.props.get(prop[0], {}).get(prop[1])

    def _known(self, prop: Prop) -> bool:
        return prop[0] in self.props

    def open(self, path: str, search: str = "") -> None:
        """Load a page by its URL as a browser does: HTML, layout, dependencies, then route."""
        started = time.perf_counter()
        page = self.get("page", path + search)
        self.csrf = csrf_token(page.text) or self.csrf
        layout = self.get("page", "/_dash-layout").json()
        self.callbacks = parse_dependencies(self.get("page", "/_dash-dependencies").json())
        self.props = {}
        self.shell = self._register(layout)
        self._route(path, search)
        # Sequential here; a browser sends the initial callbacks side by side, so it is quicker.
        self.recorder.add_view(Sample("view", path, time.perf_counter() - started))

    def navigate(self, path: str) -> None:
        """Follow a navbar link: Dash Pages routes in the page, without reloading it."""
        started = time.perf_counter()
        self.props = {ident: self.props[ident] for ident in self.shell if ident in self.props}
        self._route(path, "")
        self.recorder.add_view(Sample("nav", path, time.perf_counter() - started))

    def _route(self, path: str, search: str) -> None:
        """Report the URL as dcc.Location does; the router answers with the page's layout."""
        self.path = path
        self.props[PAGES_LOCATION] = {"id": PAGES_LOCATION, "pathname": path, "search": search}
        self.change({(PAGES_LOCATION, "pathname"): path, (PAGES_LOCATION, "search"): search})

    def change(self, values: dict[Prop, Any]) -> None:
        """Set props as a user (or a timer) would, then fire what they trigger, to quiescence."""
        for (component, prop), value in values.items():
            self.props.setdefault(component, {"id": component_id(component)})[prop] = value
        self._settle(set(values), set())

    def _instances(self) -> list[Callback]:
        """Return the callbacks as they stand for the components present, MATCH ones bound."""
        found: list[Callback] = []
        for callback in self.callbacks:
            found.extend(callback.bind(self.props) if callback.matches else [callback])
        return found

    def _settle(self, changed: set[Prop], added: set[str]) -> None:
        """Fire callbacks triggered by changed props or by newly added components, in waves."""
        fired: set[str] = set()
        while changed or added:
            wave = []
            for callback in self._instances():
                if callback.ident in fired:
                    continue
                inputs = set(callback.inputs)
                if inputs & changed or (
                    added
                    and not callback.prevent_initial_call
                    and any(c in added for c, _ in callback.props)
                    and all(self._known(p) for p in (*callback.inputs, *callback.outputs))
                ):
                    wave.append((callback, sorted(inputs & changed)))
            changed, added = set(), set()
            for callback, triggers in wave:
                fired.add(callback.ident)
                new_changed, new_added = self._fire(callback, triggers)
                changed |= new_changed
                added |= new_added

    def _fire(self, callback: Callback, triggers: list[Prop]) -> tuple[set[Prop], set[str]]:
        """POST one callback; apply its outputs and return the props and components it changed."""
        payload = callback_payload(callback, triggers, self.value)
        started = time.perf_counter()
        response = self._send(
            "callback",
            callback.name,
            "POST",
            UPDATE_PATH,
            data=json.dumps(payload),
            headers={"Content-Type": "application/json", **self._headers()},
        )
        # 204: every output was no_update (PreventUpdate); nothing to apply.
        if response.status_code == 204:
            self.recorder.add(Sample("callback", callback.name, time.perf_counter() - started))
            return set(), set()
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("response"), dict):
            detail = response.text[:120].replace("\n", " ")
            raise self._fail(
                "callback", callback.name, started, f"HTTP {response.status_code}: {detail}"
            )
        self.recorder.add(Sample("callback", callback.name, time.perf_counter() - started))
        changed_props: set[Prop] = set()
        added: set[str] = set()
        # sideUpdate: props the callback set with set_props (the filter bar keeps the page's
        # `<page>-state` and `<page>-watermark` stores in step so); the renderer applies them
        # as it applies outputs, and the callbacks listening to them fire.
        for updates in (body["response"], body.get("sideUpdate") or {}):
            for component, props in updates.items():
                for prop, value in props.items():
                    self.props.setdefault(component, {"id": component_id(component)})[prop] = value
                    changed_props.add((component, prop))
                    added |= self._register(value)
        return changed_props, added


def callback_payload(
    callback: Callback, triggers: list[Prop], value: Callable[[Prop], Any]
) -> dict[str, Any]:
    """Build the body of `/_dash-update-component` as the renderer sends it for a callback.

    `output` is the callback's output as registered (a MATCH pattern stays a pattern); every
    id is the component's own (a dict id as a dict), and the changed props are named by their
    component keys.
    """
    changed = [f"{c}.{p}" for c, p in triggers]
    outputs = [{"id": component_id(c), "property": p} for c, p in callback.outputs]
    payload: dict[str, Any] = {
        "output": callback.output,
        "outputs": outputs if callback.output.startswith("..") else outputs[0],
        "inputs": [
            {"id": component_id(c), "property": p, "value": value((c, p))}
            for c, p in callback.inputs
        ],
        "changedPropIds": changed,
        "parsedChangedPropsIds": changed,
    }
    if callback.state:
        payload["state"] = [
            {"id": component_id(c), "property": p, "value": value((c, p))}
            for c, p in callback.state
        ]
    return payload
