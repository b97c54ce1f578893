"""What a polling page needs to know: has new data arrived, and is it stale?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from db.models import SyncStatus
from services.container import get_services


@dataclass(frozen=True)
class LiveState:
    """The sync's watermark and health, read from our database, never from Phoenix."""

    watermark: int
    last_success_at: datetime | None
    error: str | None
    error_at: datetime | None

    @property
    def stale(self) -> bool:
        """Tell whether the last sync attempt failed."""
        return self.error is not None


def live_state() -> LiveState:
    """Read the sync status row; one cheap query however many tabs poll."""
    with get_services().sessions() as db:
        status = db.get(SyncStatus, 1)
        if status is None:
            return LiveState(0, None, None, None)
        return LiveState(
            int(status.watermark or 0),
            status.last_success_at,
            status.last_error,
            status.last_error_at,
        )


def poll_watermark(live: bool, seen: int | None) -> tuple[int | None, LiveState]:
    """Return the watermark to store (None: unchanged or paused) and the state to show."""
    state = live_state()
    if not live or state.watermark == seen:
        return None, state
    return state.watermark, state
