"""Typed client for the Phoenix REST API: one session, timeouts, retries, typed errors."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

JSON = dict[str, Any]


class PhoenixError(Exception):
    """Base class for every failure talking to Phoenix."""


class PhoenixUnavailable(PhoenixError):
    """Phoenix could not be reached or did not answer in time."""


class PhoenixAuthError(PhoenixError):
    """Phoenix refused our credentials (401) or the action (403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Phoenix answered {status}: {detail}")
        self.status = status
        self.detail = detail


class PhoenixHTTPError(PhoenixError):
    """Phoenix answered with another error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Phoenix answered {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class PhoenixStatus:
    """What the shell shows about the Phoenix connection."""

    url: str
    version: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        """Tell whether Phoenix answered."""
        return self.error is None


def _detail(response: requests.Response) -> str:
    """Extract Phoenix's error detail, falling back to the body text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:500]
    return str(body)[:500]


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
        retry = Retry(
            total=retries,
            connect=retries,
            read=0,  # a read timeout may follow a write that landed; never replay it blindly
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
        except requests.ConnectionError as exc:
            raise PhoenixUnavailable(f"Phoenix at {self.base_url} cannot be reached") from exc
        except requests.RequestException as exc:
            raise PhoenixUnavailable(f"Phoenix at {self.base_url} failed: {exc}") from exc
        if response.status_code in (401, 403):
            raise PhoenixAuthError(response.status_code, _detail(response))
        if response.status_code in (502, 503, 504):
            raise PhoenixUnavailable(
                f"Phoenix at {self.base_url} is unavailable ({response.status_code})"
            )
        if response.status_code >= 400:
            raise PhoenixHTTPError(response.status_code, _detail(response))
        return response

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET a path and decode its JSON body."""
        response = self.request("GET", path, params=params)
        try:
            return response.json()
        except ValueError as exc:
            raise PhoenixHTTPError(response.status_code, "response is not valid JSON") from exc

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[JSON]:
        """Yield every item of a cursor-paginated `{data, next_cursor}` list."""
        query = dict(params or {})
        while True:
            page = self.get_json(path, query)
            yield from page.get("data", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return
            query["cursor"] = cursor

    def version(self) -> str:
        """Return the Phoenix server version."""
        return self.request("GET", "/arize_phoenix_version").text.strip()

    def projects(self) -> list[JSON]:
        """List the projects, without hidden experiment projects."""
        return list(self.paginate("/v1/projects", {"limit": 100}))

    def status(self) -> PhoenixStatus:
        """Report whether Phoenix answers and which version it runs."""
        try:
            return PhoenixStatus(self.base_url, self.version(), None)
        except PhoenixError as exc:
            return PhoenixStatus(self.base_url, None, str(exc))

    def close(self) -> None:
        """Release the pooled connections."""
        self.session.close()
