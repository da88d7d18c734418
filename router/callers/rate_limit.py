"""Per-caller tokens per minute: decided locally on every request, shared across instances in the
background, so the request path never waits for the table.

Windows are UTC minutes. Each instance counts the tokens it admitted for a caller this minute and, every
``TPM_SYNC_S``, adds what it admitted since its last sync to the caller's shared row (a conditional
write) and reads back the total, learning what the other instances admitted. A request is admitted
when ``mine + others' (as of the last sync) + its tokens <= tpm``. What one instance cannot see is what
the others admitted since their last sync, so over any UTC minute the instances together admit at most

    tpm + N × TPM_SYNC_S × r      (N instances, r the tokens per second one instance admits)

(and never more than N × tpm). Tokens are charged at admission as the prompt estimate plus the
request's explicit output limit, and corrected to the recorded usage when the request ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from router.errors import RateLimited, StaleEntity

if TYPE_CHECKING:
    from router.callers.budget_store import BudgetStore

log = logging.getLogger("router.budgets")


def minute_key(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def seconds_to_next_minute(now: datetime) -> int:
    return max(1, math.ceil(60 - now.second - now.microsecond / 1e6))


@dataclass(slots=True)
class Window:
    """One caller's minute as this instance sees it."""

    minute: str
    mine: int = 0  # tokens this instance admitted this minute
    unsynced: int = 0  # of ``mine``, not yet added to the shared row
    others: int = 0  # the other instances' tokens this minute, as of the last sync


class TokenRateLimiter:
    def __init__(self, store: BudgetStore, sync_s: float, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._sync_s = sync_s
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._loop_task: asyncio.Task[None] | None = None

    def _window(self, caller: str) -> Window:
        minute = minute_key(self._clock())
        window = self._windows.get(caller)
        if window is None or window.minute != minute:
            window = self._windows[caller] = Window(minute)
        return window

    def admit(self, caller: str, tpm: int, tokens: int) -> str:
        """Charge ``tokens`` to the caller's minute, or raise ``RateLimited``; returns the minute key."""
        window = self._window(caller)
        used = window.mine + window.others
        if used + tokens > tpm:
            retry = seconds_to_next_minute(self._clock())
            message = f"the caller's limit of {tpm} tokens per minute is used up; retry in {retry} s"
            details = {"limit_tpm": tpm, "remaining_tokens": max(0, tpm - used), "requested_tokens": tokens}
            raise RateLimited(message, retry_after_s=retry, details=details)
        window.mine += tokens
        window.unsynced += tokens
        self._start()
        return window.minute

    def adjust(self, caller: str, minute: str, delta: int) -> None:
        """Correct the charge to the recorded usage (within the same minute; an ended one is gone)."""
        window = self._windows.get(caller)
        if window is not None and window.minute == minute:
            window.mine = max(0, window.mine + delta)
            window.unsynced += delta

    def _start(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._windows:
            await asyncio.sleep(self._sync_s)
            await self.sync()

    async def sync(self) -> None:
        """One pass: push this instance's new tokens, learn the others'; drop ended minutes."""
        current = minute_key(self._clock())
        for caller, window in list(self._windows.items()):
            if window.minute != current:
                del self._windows[caller]
                continue
            try:
                await self._sync_one(caller, window)
            except Exception as exc:  # approximate by design: an outage leaves each instance on its own
                log.warning("rate-limit sync failed: %s", type(exc).__name__)

    async def _sync_one(self, caller: str, window: Window) -> None:
        for _ in range(10):
            minute, tokens, etag = await self._store.read_minute(caller)
            if minute != window.minute:
                tokens = 0
            pushed = window.unsynced
            if pushed == 0:
                window.others = max(0, tokens - window.mine)
                return
            try:
                await self._store.write_minute(caller, window.minute, max(0, tokens + pushed), etag)
            except StaleEntity:
                continue
            window.unsynced -= pushed
            window.others = max(0, tokens + pushed - window.mine)
            return

    async def close(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sync()  # what this instance admitted still counts for the others
