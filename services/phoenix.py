"""Typed client for the Phoenix REST API: one session, timeouts, retries, typed errors."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

JSON = dict[str, Any]
# Phoenix allows 1000 span ids per annotation request; 16-hex ids keep 500 well under the
# URL length uvicorn accepts.
ANNOTATION_CHUNK = 500
PAGE_LIMIT = 1000
# Phoenix's Retry-After is honoured while the waits of one call add up to at most this; a longer
# wait is reported at once instead, so a page or a sync tick never hangs on a rate limit.
RETRY_AFTER_BUDGET_S = 5.0
# What /arize_phoenix_version answers; anything else at the URL is not Phoenix.
VERSION_PATTERN = re.compile(r"\d+(\.\d+)+[\w.+-]*")

# latencyMsQuantile measures whole traces; spanLatencyMsQuantile measures the filtered spans.
AGGREGATES_QUERY = """
query ProjectAggregates($id: ID!, $timeRange: TimeRange, $filter: String) {
  node(id: $id) {
    ... on Project {
      name
      recordCount(timeRange: $timeRange, filterCondition: $filter)
      tokenCountTotal(timeRange: $timeRange, filterCondition: $filter)
      p50: spanLatencyMsQuantile(probability: 0.5, timeRange: $timeRange, filterCondition: $filter)
      p95: spanLatencyMsQuantile(probability: 0.95, timeRange: $timeRange, filterCondition: $filter)
      p99: spanLatencyMsQuantile(probability: 0.99, timeRange: $timeRange, filterCondition: $filter)
      costSummary(timeRange: $timeRange, filterCondition: $filter) { total { cost } }
      spanAnnotationNames
    }
  }
}
"""
ANNOTATION_SUMMARY_QUERY = """
query AnnotationSummary($id: ID!, $name: String!, $timeRange: TimeRange, $filter: String) {
  node(id: $id) {
    ... on Project {
      spanAnnotationSummary(annotationName: $name, timeRange: $timeRange,
                            filterCondition: $filter) {
        meanScore
        labelFractions { label fraction }
      }
    }
  }
}
"""


class PhoenixError(Exception):
    """Base class for every failure talking to Phoenix."""


class PhoenixUnavailable(PhoenixError):
    """Phoenix could not be reached or did not answer in time."""


class PhoenixBadIdentifier(PhoenixError, ValueError):
    """An id or name that no encoding keeps as one path segment: empty, "." or ".."."""

    def __init__(self, value: str) -> None:
        super().__init__(f"{value!r} is not a Phoenix id or name")
        self.value = value


class PhoenixAuthError(PhoenixError):
    """Phoenix refused our credentials (401) or the action (403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Phoenix answered {status}: {detail}")
        self.status = status
        self.detail = detail


class PhoenixHTTPError(PhoenixError):
    """Phoenix answered with another error status."""

    def __init__(self, status: int, detail: str, retry_after_s: float | None = None) -> None:
        wait = f" (it asks to retry in {retry_after_s:.0f} s)" if retry_after_s is not None else ""
        super().__init__(f"Phoenix answered {status}: {detail}{wait}")
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s


class BudgetedRetry(Retry):
    """A urllib3 Retry that honours Retry-After only while the waits stay within a budget."""

    budget_s: float = RETRY_AFTER_BUDGET_S
    waited_s: float = 0.0

    def new(self, **kw: Any) -> BudgetedRetry:
        """Copy the retry state, carrying the budget and what was already waited."""
        retry: BudgetedRetry = super().new(**kw)
        retry.budget_s = self.budget_s
        retry.waited_s = self.waited_s
        return retry

    def get_retry_after(self, response: Any) -> float | None:
        """Read Retry-After; an unreadable one counts as absent (plain backoff applies)."""
        try:
            value: float | None = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return value

    def increment(
        self,
        method: str | None = None,
        url: Any = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> BudgetedRetry:
        """Count a retry, or give up at once when Retry-After asks for more than the budget."""
        wait = self.get_retry_after(response) if response is not None else None
        if wait is not None and self.waited_s + wait > self.budget_s:
            # With raise_on_status off, urllib3 then hands back the 429/503 itself.
            raise MaxRetryError(_pool, url, ResponseError("Retry-After over budget"))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(retry, BudgetedRetry)
        retry.waited_s = self.waited_s + (wait or 0.0)
        return retry


@dataclass(frozen=True)
class SpanQuery:
    """Filters of `GET /v1/projects/{p}/spans`; start inclusive, end exclusive."""

    start: datetime | None = None
    end: datetime | None = None
    span_kinds: Sequence[str] = ()
    status_codes: Sequence[str] = ()
    trace_ids: Sequence[str] = ()
    # key -> value pairs such as {"llm.prompt_template.version": "v2"}
    attributes: Mapping[str, str] = field(default_factory=dict)
    parent_id_null: bool = False

    def params(self) -> list[tuple[str, str]]:
        """Render the filters as repeatable query parameters."""
        params: list[tuple[str, str]] = []
        if self.start is not None:
            params.append(("start_time", self.start.isoformat()))
        if self.end is not None:
            params.append(("end_time", self.end.isoformat()))
        params += [("span_kind", kind) for kind in self.span_kinds]
        params += [("status_code", code) for code in self.status_codes]
        params += [("trace_id", trace_id) for trace_id in self.trace_ids]
        params += [("attribute", f"{key}:{value}") for key, value in self.attributes.items()]
        if self.parent_id_null:
            params.append(("parent_id", "null"))
        return params


@dataclass(frozen=True)
class SpanPage:
    """One page of spans and the cursor of the next page."""

    spans: list[JSON]
    next_cursor: str | None


@dataclass(frozen=True)
class ProjectAggregates:
    """Phoenix's own aggregates for a project, filter and time range."""

    record_count: int
    token_count_total: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    cost_total: float | None
    annotation_names: list[str]


@dataclass(frozen=True)
class AnnotationSummary:
    """Phoenix's summary of one span annotation name."""

    mean_score: float | None
    label_fractions: dict[str, float]


@dataclass(frozen=True)
class PhoenixStatus:
    """What the shell shows about the Phoenix connection."""

    url: str
    version: str | None
    error: str | None
    # True when Phoenix answered, but with an error: the banner then must not say "unreachable".
    answered: bool = False

    @property
    def ok(self) -> bool:
        """Tell whether Phoenix answered."""
        return self.error is None


def segment(value: str) -> str:
    """Percent-encode an id or name as exactly one path segment, with nothing left safe."""
    # quote() keeps dots, and requests turns %2E back into "."; encoded or not, "." and ".."
    # would climb (urllib3 resolves them), and "" would drop a level.
    if value in ("", ".", ".."):
        raise PhoenixBadIdentifier(value)
    return quote(value, safe="")


def _detail(response: requests.Response) -> str:
    """Extract Phoenix's error detail, falling back to the body text."""
    try:
        body = response.json()
    except ValueError:
        if response.status_code >= 500:
            # A server error's page may be a traceback: name the status, never show the dump.
            return str(response.reason or "server error")
        return response.text.strip()[:500] or response.reason
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]


def _retry_after(response: requests.Response) -> float | None:
    """Return the Retry-After of a 429 or 503 in seconds, if it is a plain number."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _aggregate_variables(
    project_id: str, start: datetime | None, end: datetime | None, filter_condition: str | None
) -> dict[str, Any]:
    """Build the GraphQL variables shared by the aggregate queries."""
    time_range = None
    if start is not None or end is not None:
        time_range = {
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
        }
    return {"id": project_id, "timeRange": time_range, "filter": filter_condition}


class PhoenixClient:
    """Talk to one Phoenix server through a shared, retrying HTTP session."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        connect_timeout_s: float = 3.0,
        read_timeout_s: float = 15.0,
        retries: int = 3,
        backoff_factor: float = 0.3,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.session = session or requests.Session()
        retry = BudgetedRetry(
            total=retries,
            connect=retries,
            # A read timeout may follow a write that landed; never replay it blindly. False,
            # not 0: urllib3 then raises the timeout itself, which requests reports as one.
            read=False,
            status=retries,
            backoff_factor=backoff_factor,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if api_key:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send a request and map transport and HTTP failures to typed errors."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise PhoenixUnavailable(f"Phoenix at {self.base_url} did not answer in time") from exc
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise PhoenixUnavailable(
                f"Phoenix at {self.base_url} broke off its answer (incomplete response)"
            ) from None
        except requests.ConnectionError as exc:
            raise PhoenixUnavailable(f"Phoenix at {self.base_url} cannot be reached") from exc
        except requests.RequestException as exc:
            # The exception's text is a nest of urllib3 reprs; its name is enough for the page.
            raise PhoenixUnavailable(
                f"Phoenix at {self.base_url} failed ({type(exc).__name__})"
            ) from exc
        # urllib3 1.x does not enforce Content-Length: a body cut short would pass as whole.
        if not kwargs.get("stream") and getattr(response.raw, "length_remaining", None):
            raise PhoenixUnavailable(
                f"Phoenix at {self.base_url} broke off its answer (incomplete response)"
            )
        if response.status_code in (401, 403):
            raise PhoenixAuthError(response.status_code, _detail(response))
        if response.status_code in (502, 503, 504):
            raise PhoenixUnavailable(
                f"Phoenix at {self.base_url} is unavailable ({response.status_code})"
            )
        if response.status_code >= 400:
            raise PhoenixHTTPError(response.status_code, _detail(response), _retry_after(response))
        return response

    def _json(self, response: requests.Response) -> Any:
        """Decode a JSON answer, reporting a body that is not JSON as a typed error."""
        try:
            return response.json()
        except ValueError:
            raise PhoenixHTTPError(response.status_code, "response is not valid JSON") from None

    def get_json(
        self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, str]] | None = None
    ) -> Any:
        """GET a path and decode its JSON body."""
        return self._json(self.request("GET", path, params=params))

    def paginate(
        self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, str]] | None = None
    ) -> Iterator[JSON]:
        """Yield every item of a cursor-paginated `{data, next_cursor}` list."""
        base = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        cursor: str | None = None
        while True:
            page = self.get_json(path, [*base, *([("cursor", cursor)] if cursor else [])])
            yield from page.get("data", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def version(self) -> str:
        """Return the Phoenix server version."""
        response = self.request("GET", "/arize_phoenix_version")
        version = response.text.strip()
        if not VERSION_PATTERN.fullmatch(version):
            # A 200 from something else at this URL must not read as "Connected to Phoenix".
            raise PhoenixHTTPError(response.status_code, "the answer is not a Phoenix version")
        return version

    def projects(self) -> list[JSON]:
        """List the projects, without hidden experiment projects."""
        return list(self.paginate("/v1/projects", {"limit": 100}))

    def project(self, identifier: str) -> JSON:
        """Get one project by name or id."""
        data: JSON = self.get_json(f"/v1/projects/{segment(identifier)}")["data"]
        return data

    def span_page(
        self,
        project: str,
        query: SpanQuery | None = None,
        *,
        cursor: str | None = None,
        limit: int = PAGE_LIMIT,
        sort: str = "id",
        order: str = "asc",
    ) -> SpanPage:
        """Fetch one page of spans; `sort=id` gives insertion order, safe to follow."""
        params = [("limit", str(limit)), ("sort", sort), ("order", order)]
        params += (query or SpanQuery()).params()
        if cursor:
            params.append(("cursor", cursor))
        page = self.get_json(f"/v1/projects/{segment(project)}/spans", params)
        return SpanPage(page.get("data", []), page.get("next_cursor"))

    def spans(self, project: str, query: SpanQuery | None = None) -> Iterator[JSON]:
        """Yield every span matching the query, in insertion order."""
        cursor: str | None = None
        while True:
            page = self.span_page(project, query, cursor=cursor)
            yield from page.spans
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def traces(
        self,
        project: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        include_spans: bool = False,
        limit: int = 100,
    ) -> Iterator[JSON]:
        """Yield the traces of a project, newest first."""
        params: list[tuple[str, str]] = [("limit", str(limit))]
        if start is not None:
            params.append(("start_time", start.isoformat()))
        if end is not None:
            params.append(("end_time", end.isoformat()))
        if include_spans:
            params.append(("include_spans", "true"))
        yield from self.paginate(f"/v1/projects/{segment(project)}/traces", params)

    def span_annotations(
        self, project: str, span_ids: Iterable[str], *, chunk: int = ANNOTATION_CHUNK
    ) -> Iterator[JSON]:
        """Yield the annotations of the given spans, asking for at most `chunk` ids at a time."""
        if not 0 < chunk <= 1000:
            raise ValueError("Phoenix accepts 1 to 1000 span ids per request")
        path = f"/v1/projects/{segment(project)}/span_annotations"
        ids = list(dict.fromkeys(span_ids))
        for start in range(0, len(ids), chunk):
            params = [("span_ids", span_id) for span_id in ids[start : start + chunk]]
            params.append(("limit", "10000"))
            yield from self.paginate(path, params)

    def trace_annotations(
        self, project: str, trace_ids: Iterable[str], *, chunk: int = ANNOTATION_CHUNK
    ) -> Iterator[JSON]:
        """Yield the annotations of the given traces, asking for at most `chunk` ids at a time."""
        if not 0 < chunk <= 1000:
            raise ValueError("Phoenix accepts 1 to 1000 trace ids per request")
        path = f"/v1/projects/{segment(project)}/trace_annotations"
        ids = list(dict.fromkeys(trace_ids))
        for start in range(0, len(ids), chunk):
            params = [("trace_ids", trace_id) for trace_id in ids[start : start + chunk]]
            params.append(("limit", "10000"))
            yield from self.paginate(path, params)

    def datasets(self) -> list[JSON]:
        """List the datasets."""
        return list(self.paginate("/v1/datasets", {"limit": 100}))

    def experiments(self, dataset_id: str) -> list[JSON]:
        """List a dataset's experiments, with their run counts."""
        return list(
            self.paginate(f"/v1/datasets/{segment(dataset_id)}/experiments", {"limit": 100})
        )

    def experiment_runs_with_evaluations(self, experiment_id: str) -> list[JSON]:
        """Return an experiment's runs together with their evaluations."""
        runs: list[JSON] = self.get_json(f"/v1/experiments/{segment(experiment_id)}/json")
        return runs

    def prompts(self) -> list[JSON]:
        """List the prompts of Phoenix's prompt registry."""
        return list(self.paginate("/v1/prompts", {"limit": 100}))

    def prompt_versions(self, prompt: str) -> list[JSON]:
        """List a prompt's versions, newest first."""
        return list(self.paginate(f"/v1/prompts/{segment(prompt)}/versions", {"limit": 100}))

    def prompt_version_tags(self, version_id: str) -> list[JSON]:
        """List the tags of a prompt version."""
        return list(
            self.paginate(f"/v1/prompt_versions/{segment(version_id)}/tags", {"limit": 100})
        )

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> JSON:
        """Run a GraphQL query and return its data, raising on GraphQL errors."""
        response = self.request("POST", "/graphql", json={"query": query, "variables": variables})
        body = self._json(response)
        if not isinstance(body, dict):
            raise PhoenixHTTPError(response.status_code, "GraphQL answer is not an object")
        if body.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in body["errors"])
            raise PhoenixHTTPError(response.status_code, f"GraphQL: {messages}")
        data: JSON = body["data"]
        return data

    def span_costs(self, span_ids: Sequence[str], *, chunk: int = 50) -> dict[str, float | None]:
        """Return Phoenix's computed cost per span (Relay id); None where it has no price."""
        # Phoenix refuses GraphQL documents with more than 50 aliases.
        costs: dict[str, float | None] = {}
        for start in range(0, len(span_ids), chunk):
            ids = span_ids[start : start + chunk]
            params = ", ".join(f"$i{n}: ID!" for n in range(len(ids)))
            fields = " ".join(
                f"s{n}: node(id: $i{n}) {{ ... on Span {{ costSummary {{ total {{ cost }} }} }} }}"
                for n in range(len(ids))
            )
            data = self.graphql(
                f"query SpanCosts({params}) {{ {fields} }}",
                {f"i{n}": span_id for n, span_id in enumerate(ids)},
            )
            for n, span_id in enumerate(ids):
                summary = (data.get(f"s{n}") or {}).get("costSummary") or {}
                costs[span_id] = (summary.get("total") or {}).get("cost")
        return costs

    @staticmethod
    def span_rowid(span_id: str) -> int | None:
        """Read the row number out of a span's Relay id (base64 of "Span:<n>"), if it is one."""
        try:
            kind, _, number = base64.b64decode(span_id, validate=True).decode().partition(":")
            return int(number) if kind == "Span" else None
        except (ValueError, UnicodeDecodeError):
            return None

    def llm_span_costs(
        self, project_id: str, span_ids: Sequence[str], *, chunk: int = PAGE_LIMIT
    ) -> dict[str, float | None]:
        """Return Phoenix's cost per span (Relay id) for consecutive LLM spans of one project."""
        # Phoenix caps a GraphQL document at 50 aliases, one per span, but a connection page at
        # 1000 nodes: the project's LLM spans after the one before the first asked for are these
        # spans, in order, so a page of spans costs one request (a filter listing the span ids
        # costs Phoenix about twice as much, most of it in parsing the list).
        if not 0 < chunk <= PAGE_LIMIT:
            raise ValueError("Phoenix pages 1 to 1000 spans per connection")
        query = (
            "query LlmSpanCosts($project: ID!, $first: Int!, $after: String) {"
            " node(id: $project) { ... on Project {"
            " spans(first: $first, after: $after, filterCondition: \"span_kind == 'LLM'\")"
            " { edges { node { id costSummary { total { cost } } } } } } } }"
        )
        ids = list(span_ids)
        costs: dict[str, float | None] = {}
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            rowid = self.span_rowid(part[0])
            if rowid is None:
                break
            # The connection's cursor is the base64 of a row number; it starts after that row.
            after = base64.b64encode(str(rowid - 1).encode()).decode()
            try:
                data = self.graphql(
                    query, {"project": project_id, "first": len(part), "after": after}
                )
            except PhoenixHTTPError as exc:
                if exc.status != 200:
                    raise
                break  # a GraphQL error: a Phoenix that pages differently; ask by alias instead
            for edge in ((data.get("node") or {}).get("spans") or {}).get("edges") or []:
                node = edge.get("node") or {}
                summary = node.get("costSummary") or {}
                costs[str(node.get("id"))] = (summary.get("total") or {}).get("cost")
        # Whatever that did not answer (ids of another form, a span deleted meanwhile): by alias.
        if missing := [span_id for span_id in ids if span_id not in costs]:
            costs.update(self.span_costs(missing))
        return {span_id: costs[span_id] for span_id in ids}

    def project_aggregates(
        self,
        project_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        filter_condition: str | None = None,
    ) -> ProjectAggregates:
        """Ask Phoenix for a project's count, tokens, latency quantiles and cost."""
        node = self.graphql(
            AGGREGATES_QUERY, _aggregate_variables(project_id, start, end, filter_condition)
        )["node"]
        cost = (node.get("costSummary") or {}).get("total") or {}
        return ProjectAggregates(
            record_count=int(node["recordCount"]),
            token_count_total=float(node["tokenCountTotal"] or 0),
            p50_ms=node["p50"],
            p95_ms=node["p95"],
            p99_ms=node["p99"],
            cost_total=cost.get("cost"),
            annotation_names=list(node.get("spanAnnotationNames") or []),
        )

    def annotation_summary(
        self,
        project_id: str,
        name: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        filter_condition: str | None = None,
    ) -> AnnotationSummary | None:
        """Ask Phoenix for the mean score and label fractions of one annotation name."""
        variables = {**_aggregate_variables(project_id, start, end, filter_condition), "name": name}
        summary = self.graphql(ANNOTATION_SUMMARY_QUERY, variables)["node"]["spanAnnotationSummary"]
        if summary is None:
            return None
        return AnnotationSummary(
            mean_score=summary["meanScore"],
            label_fractions={f["label"]: f["fraction"] for f in summary["labelFractions"]},
        )

    def status(self) -> PhoenixStatus:
        """Report whether Phoenix answers and which version it runs."""
        try:
            return PhoenixStatus(self.base_url, self.version(), None)
        except PhoenixUnavailable as exc:
            return PhoenixStatus(self.base_url, None, str(exc))
        except PhoenixError as exc:
            return PhoenixStatus(self.base_url, None, str(exc), answered=True)

    def close(self) -> None:
        """Release the pooled connections."""
        self.session.close()
