"""The filter state every page shares, read from and written to the URL query."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, available_timezones

from store.analytics import Filters, PromptSet

RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
DEFAULT_RANGE = "7d"
STATUSES = ("OK", "ERROR")
MAX_VALUE_LENGTH = 200
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# What the facts store's DateTime64 holds; a bound outside it asks for the same rows clamped.
STORE_FIRST = datetime(1900, 1, 1, tzinfo=UTC)
STORE_LAST = datetime(2299, 12, 31, tzinfo=UTC)


@dataclass(frozen=True)
class FilterState:
    """What the URL says, as the filter bar shows it."""

    project: str | None = None
    prompt: str | None = None
    versions: tuple[str, ...] = ()
    model: str | None = None
    status: str | None = None
    range: str = DEFAULT_RANGE
    start: datetime | None = None
    end: datetime | None = None
    # The evaluator the score cards show (None: the one with the most annotations). It picks
    # what a card shows, not which calls count, so to_filters leaves it out.
    evaluator: str | None = None
    # The IANA time zone everything on screen is shown in (None: the user's setting, else the
    # browser's). A custom range without an offset is read in it; day and hour buckets start
    # on its wall clock. CSV keeps ISO 8601 with the offset whatever it is.
    tz: str | None = None

    @property
    def zone(self) -> str:
        """Return the time zone to show and bucket in: the URL's, else UTC."""
        return self.tz or "UTC"

    def to_filters(self, prompts: PromptSet | None, now: datetime | None = None) -> Filters:
        """Resolve the time range against `now` (rounded to the minute, to share caches).

        `prompts` is what services.prompt_filters resolved the prompt name to (None: any).
        """
        moment = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
        if self.range == "custom":
            start, end = self.start, self.end
        else:
            start, end = moment - RANGES[self.range], None
        return Filters(
            project=self.project,
            prompts=prompts,
            versions=self.versions,
            model=self.model,
            status=self.status,
            start=_clamped(start),
            end=_clamped(end),
        )

    def query_string(self) -> str:
        """Render the state as a URL query, leaving defaults out."""
        pairs: list[tuple[str, str]] = []
        for key, value in (
            ("project", self.project),
            ("prompt", self.prompt),
            ("versions", ",".join(self.versions) if self.versions else None),
            ("model", self.model),
            ("status", self.status),
        ):
            if value:
                pairs.append((key, value))
        if self.range != DEFAULT_RANGE:
            pairs.append(("range", self.range))
        if self.range == "custom":
            if self.start:
                pairs.append(("start", self.start.isoformat()))
            if self.end:
                pairs.append(("end", self.end.isoformat()))
        if self.evaluator:
            pairs.append(("evaluator", self.evaluator))
        if self.tz:
            pairs.append(("tz", self.tz))
        return f"?{urlencode(pairs)}" if pairs else ""

    def label(self) -> str:
        """Describe the filters in a few words, for file names."""
        parts = [
            self.project,
            self.prompt,
            "+".join(self.versions),
            self.model,
            self.status,
            self.range,
        ]
        return "_".join(p for p in parts if p)


def _clamped(moment: datetime | None) -> datetime | None:
    """Keep a bound inside the store's time range, in UTC; the rows it selects are the same."""
    if moment is None:
        return None
    return min(max(moment.astimezone(UTC), STORE_FIRST), STORE_LAST)


def _text(value: object) -> str | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    if value is None:
        return None
    # Control characters name no prompt or model, and PostgreSQL refuses a NUL in any string.
    text = CONTROL_CHARACTERS.sub("", str(value)).strip()
    return text[:MAX_VALUE_LENGTH] or None


def time_zone(value: str | None, problems: list[str]) -> str | None:
    """Read an IANA time zone name (Europe/Paris), or say why it is ignored."""
    if value is None:
        return None
    if value.upper() == "UTC":
        return "UTC"
    # Only names the system's zone database lists: a name is also a path to a file.
    if value not in _zone_names():
        problems.append(f"Ignored tz={value!r}: use an IANA time zone such as Europe/Paris.")
        return None
    return value


@functools.cache
def _zone_names() -> frozenset[str]:
    """List the IANA zone names this system knows (read once: it scans the zone files)."""
    return frozenset(available_timezones())


def _time(
    value: str | None, name: str, problems: list[str], zone: str | None = None
) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"Ignored {name}={value!r}: use an ISO 8601 time such as 2026-11-25T09:00.")
        return None
    # A time without an offset is on the wall clock of the page's time zone.
    moment = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone or "UTC"))
    try:
        # The filter bar and the queries work in UTC; an offset can push year 1 or 9999 past it.
        moment.astimezone(UTC)
    except OverflowError:
        problems.append(f"Ignored {name}={value!r}: it falls outside the years 1 to 9999 in UTC.")
        return None
    return moment


def parse_query(query: Mapping[str, object]) -> tuple[FilterState, list[str]]:
    """Read the filter state from a URL query; bad values are dropped with a message."""
    problems: list[str] = []
    status = _text(query.get("status"))
    if status is not None and status.upper() not in STATUSES:
        problems.append(f"Ignored status={status!r}: use OK or ERROR.")
        status = None
    time_range = _text(query.get("range")) or DEFAULT_RANGE
    if time_range not in RANGES and time_range != "custom":
        problems.append(f"Ignored range={time_range!r}: use 1h, 24h, 7d, 30d or custom.")
        time_range = DEFAULT_RANGE
    tz = time_zone(_text(query.get("tz")), problems)
    start = _time(_text(query.get("start")), "start", problems, tz)
    end = _time(_text(query.get("end")), "end", problems, tz)
    if time_range == "custom" and start and end and start >= end:
        problems.append("Ignored the custom range: its start is not before its end.")
        start = end = None
    versions_raw = _text(query.get("versions")) or ""
    versions = tuple(dict.fromkeys(v.strip() for v in versions_raw.split(",") if v.strip()))
    state = FilterState(
        project=_text(query.get("project")),
        prompt=_text(query.get("prompt")),
        versions=versions,
        model=_text(query.get("model")),
        status=status.upper() if status else None,
        range=time_range,
        start=start if time_range == "custom" else None,
        end=end if time_range == "custom" else None,
        # Whether an evaluator is known depends on the data: the page says so (services/
        # evaluators.choose), as it does for a project or prompt that matches nothing.
        evaluator=_text(query.get("evaluator")),
        tz=tz,
    )
    return state, problems
