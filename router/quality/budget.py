"""The daily cap on shadow + judge spend, shared across instances without a lock or a counter row.

The quality table is the truth: every sample's entity carries its ``total_usd``. Each instance re-reads
today's total from the table at most every ``REFRESH_S`` (in the background, never on a caller's path)
and adds its own spend not known to be in that read, so its view is never short of its own spend and is at
most ``REFRESH_S`` behind the others'. With ``N`` instances, each at most ``MAX_IN_FLIGHT`` samples in
flight, a day's quality spend can pass the cap by at most

    N × MAX_IN_FLIGHT × (one shadow call + two judge calls)  +  (N − 1) × REFRESH_S × (one instance's
    sampling spend per second)

after which every instance has seen the cap and pauses until the next UTC day. A failed read keeps the
last view (and this instance's own spend), so an outage cannot reset the count.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger("router.quality")

REFRESH_S = 30.0
MAX_IN_FLIGHT = 8  # samples one instance runs at once; more are skipped, not queued

DayTotal = Callable[[str], Awaitable[float]]  # the stored quality spend of one UTC day


def utc_day(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).date().isoformat()


class DailyBudget:
    def __init__(
        self,
        cap_usd: float | None,
        read_total: DayTotal | None,
        *,
        clock: Callable[[], float] = time.time,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.cap_usd = cap_usd
        self._read_total = read_total
        self._clock = clock
        self._refresh_s = refresh_s
        self.day = utc_day(clock())
        self.stored_usd = 0.0  # today's total in the table, as last read
        self.pending_usd = 0.0  # this instance's spend whose entity is not stored yet
        self.unseen_usd = 0.0  # stored by this instance, perhaps after the last read began
        self._read_at = -math.inf
        self._reading: asyncio.Task[None] | None = None

    @property
    def spent_usd(self) -> float:
        return self.stored_usd + self.pending_usd + self.unseen_usd

    def _roll(self) -> None:
        day = utc_day(self._clock())
        if day != self.day:
            self.day, self._read_at = day, -math.inf
            self.stored_usd = self.pending_usd = self.unseen_usd = 0.0

    def allows(self) -> bool:
        """May another sample start today? Starts a background re-read when the view is stale."""
        if self.cap_usd is None:
            return True
        self._roll()
        self._maybe_refresh()
        return self.spent_usd < self.cap_usd

    def spend(self, usd: float) -> None:
        """A sample's cost is known (counted at once, before its entity is written)."""
        self._roll()
        self.pending_usd += usd

    def stored(self, usd: float) -> None:
        """Its entity is in the table: the next read will include it."""
        self.pending_usd = max(0.0, self.pending_usd - usd)
        self.unseen_usd += usd

    def _maybe_refresh(self) -> None:
        if self._read_total is None or self._reading is not None:
            return
        if self._clock() - self._read_at < self._refresh_s:
            return
        self._reading = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        assert self._read_total is not None
        day, stored_before = self.day, self.unseen_usd
        self._read_at = self._clock()
        try:
            total = await self._read_total(day)
        except Exception as exc:
            log.warning("could not read today's quality spend: %s", type(exc).__name__)
            return
        finally:
            self._reading = None
        if day == self.day:  # writes that landed during the read may or may not be in it: kept (err high)
            self.stored_usd = max(total, 0.0)
            self.unseen_usd = max(0.0, self.unseen_usd - stored_before)

    async def wait_idle(self) -> None:
        if self._reading is not None:
            await asyncio.gather(self._reading, return_exceptions=True)
