"""Deployment health: cooldowns from Retry-After and circuit breaking, shared across instances.

Each instance decides from its in-memory board, so the request path never reads a table. What one
instance learns (a 429 with Retry-After, an opened circuit) is written to the health table in the
background, and every instance merges the table into its board at most every ``HEALTH_REFRESH_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.settings import Settings

log = logging.getLogger("router.health")

HEALTH_PARTITION = "health"
INSTANCE_ID = os.environ.get("WEBSITE_INSTANCE_ID", "")[:16] or uuid.uuid4().hex[:12]

SharedWriter = Callable[[dict[str, Any]], Awaitable[object]]
SharedReader = Callable[[], Awaitable[list[dict[str, Any]]]]


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Azure OpenAI sends ``retry-after-ms`` and/or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass
class _State:
    cooldown_until: float = 0.0  # wall-clock epoch seconds
    failures: int = 0
    circuit_open: bool = False
    probing: bool = False
    reason: str = ""


class HealthBoard:
    def __init__(
        self,
        *,
        circuit_failures: int,
        circuit_open_s: float,
        default_cooldown_s: float,
        refresh_s: float,
        reader: SharedReader | None = None,
        writer: SharedWriter | None = None,
        clock: Callable[[], float] = time.time,
        max_cooldown_s: float = 3600.0,
    ) -> None:
        self._states: dict[str, _State] = {}
        self._circuit_failures = circuit_failures
        self._circuit_open_s = circuit_open_s
        self._default_cooldown_s = default_cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self._refresh_s = refresh_s
        self._reader = reader
        self._writer = writer
        self._clock = clock
        self._last_refresh = -math.inf
        self._refreshing: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls, settings: Settings, reader: SharedReader | None = None, writer: SharedWriter | None = None
    ) -> HealthBoard:
        return cls(
            circuit_failures=settings.CIRCUIT_FAILURES,
            circuit_open_s=settings.CIRCUIT_OPEN_S,
            default_cooldown_s=settings.COOLDOWN_DEFAULT_S,
            refresh_s=settings.HEALTH_REFRESH_S,
            reader=reader,
            writer=writer,
        )

    def _state(self, name: str) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State()
        return state

    # -- decisions (request path: memory only) -----------------------------------------------
    def cooldown_remaining(self, name: str) -> float:
        state = self._states.get(name)
        return 0.0 if state is None else max(0.0, state.cooldown_until - self._clock())

    def try_acquire(self, name: str) -> bool:
        """May a request be sent to ``name`` now? After an open circuit's period, exactly one probe
        is let through (half-open) until it succeeds or fails."""
        self.maybe_refresh()
        state = self._states.get(name)
        if state is None:
            return True
        if state.cooldown_until > self._clock():
            return False
        if state.circuit_open:
            if state.probing:
                return False
            state.probing = True
        return True

    def release_probe(self, name: str) -> None:
        """An acquired attempt that never ran (deadline passed first) gives its probe back."""
        state = self._states.get(name)
        if state is not None:
            state.probing = False

    def on_success(self, name: str) -> None:
        """A success closes an open circuit (its half-open probe worked). It does not end a Retry-After
        cooldown: that may come from a 429 seen after this request started, here or on another
        instance, and it ends by itself."""
        state = self._states.get(name)
        if state is None:
            return
        state.failures = 0
        state.probing = False
        if state.circuit_open:
            state.circuit_open = False
            state.cooldown_until = 0.0
            state.reason = ""
            log.info("deployment %s healthy again", name)
            self._share(name, state)

    def on_failure(self, name: str, code: str, retry_after_s: float | None = None) -> None:
        state = self._state(name)
        now = self._clock()
        state.probing = False
        if code == "http_429":
            wait = self._default_cooldown_s if retry_after_s is None else retry_after_s
            wait = min(wait, self._max_cooldown_s)
            state.cooldown_until = max(state.cooldown_until, now + wait)
            state.reason = f"429, cooldown {wait:.1f}s"
            log.warning("deployment %s throttled: cooldown %.1fs", name, wait)
            self._share(name, state)
            return
        state.failures += 1
        if state.circuit_open or state.failures >= self._circuit_failures:
            state.circuit_open = True
            state.cooldown_until = max(state.cooldown_until, now + self._circuit_open_s)
            state.reason = f"circuit open after {state.failures} failure(s), last {code}"
            log.warning("deployment %s: %s", name, state.reason)
            self._share(name, state)

    # -- sharing ---------------------------------------------------------------------------------
    def _share(self, name: str, state: _State) -> None:
        if self._writer is None:
            return
        entity = {
            "PartitionKey": HEALTH_PARTITION,
            "RowKey": name,
            "cooldown_until": float(state.cooldown_until),
            "reason": state.reason,
            "instance": INSTANCE_ID,
        }
        task = asyncio.get_running_loop().create_task(self._write(entity))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, entity: dict[str, Any]) -> None:
        assert self._writer is not None
        try:
            await self._writer(entity)
        except Exception as exc:  # best effort: the local board already holds the state
            log.warning("could not share health of %s: %s", entity["RowKey"], type(exc).__name__)

    def maybe_refresh(self) -> None:
        if self._reader is None or self._refreshing is not None:
            return
        if self._clock() - self._last_refresh < self._refresh_s:
            return
        self._last_refresh = self._clock()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self.refresh())

    async def refresh(self) -> None:
        """Merge the shared table: a cooldown another instance saw applies here too."""
        assert self._reader is not None
        try:
            rows = await self._reader()
        except Exception as exc:
            log.warning("could not read shared health: %s", type(exc).__name__)
            return
        finally:
            self._refreshing = None
            self._last_refresh = self._clock()
        now = self._clock()
        for row in rows:
            name = str(row.get("RowKey", ""))
            try:
                until = float(row.get("cooldown_until", 0.0))
            except (TypeError, ValueError):
                continue
            if not name or not math.isfinite(until):
                continue
            until = min(until, now + self._max_cooldown_s)  # a bad row cannot ban a model for long
            state = self._state(name)
            if until > state.cooldown_until and until > now:
                state.cooldown_until = until
                state.reason = str(row.get("reason", "shared cooldown"))

    async def wait_idle(self) -> None:
        tasks = list(self._writes)
        if self._refreshing is not None:
            tasks.append(self._refreshing)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {
            name: {
                "cooldown_s": round(max(0.0, s.cooldown_until - now), 3),
                "circuit_open": s.circuit_open,
                "failures": s.failures,
                "reason": s.reason,
            }
            for name, s in self._states.items()
            if s.cooldown_until > now or s.failures or s.circuit_open
        }
