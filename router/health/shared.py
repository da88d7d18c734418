"""Health shared across instances through the health table, on top of the pure ``HealthBoard``.

Each instance decides from its in-memory board, so the request path never reads a table. What one
instance learns (a 429 with Retry-After, an opened circuit) is written to the health table in the
background, and every instance merges the table into its board at most every ``HEALTH_REFRESH_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from router.health.state import HealthBoard

if TYPE_CHECKING:
    from router.settings import Settings

log = logging.getLogger("router.health")

HEALTH_PARTITION = "health"

SharedWriter = Callable[[dict[str, Any]], Awaitable[object]]
SharedReader = Callable[[], Awaitable[list[dict[str, Any]]]]


class SharedHealth:
    """The board the pipeline asks, kept in sync with the other instances' boards."""

    def __init__(
        self,
        board: HealthBoard,
        *,
        instance_id: str,
        reader: SharedReader | None = None,
        writer: SharedWriter | None = None,
    ) -> None:
        self.board = board
        self._instance_id = instance_id
        self._reader = reader
        self._writer = writer
        self._last_refresh = -math.inf
        self._refreshing: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        instance_id: str = "",
        reader: SharedReader | None = None,
        writer: SharedWriter | None = None,
    ) -> SharedHealth:
        board = HealthBoard(
            circuit_failures=settings.CIRCUIT_FAILURES,
            circuit_open_s=settings.CIRCUIT_OPEN_S,
            default_cooldown_s=settings.COOLDOWN_DEFAULT_S,
            refresh_s=settings.HEALTH_REFRESH_S,
            max_cooldown_s=settings.COOLDOWN_MAX_S,
            window_s=settings.RATELIMIT_WINDOW_S,
            share_below_tokens=settings.CAPACITY_SHARE_BELOW_TOKENS,
        )
        return cls(board, instance_id=instance_id, reader=reader, writer=writer)

    # -- the pipeline's questions and reports ----------------------------------------------------
    def try_acquire(self, name: str) -> bool:
        self.maybe_refresh()
        return self.board.try_acquire(name)

    def release_probe(self, name: str) -> None:
        self.board.release_probe(name)

    def on_success(self, name: str) -> None:
        if self.board.on_success(name):
            log.info("deployment %s healthy again", name)
            self._share(name)

    def on_failure(self, name: str, code: str, retry_after_s: float | None = None) -> None:
        if self.board.on_failure(name, code, retry_after_s):
            state = self.board.get(name)
            log.warning("deployment %s: %s", name, state.reason if state else code)
            self._share(name)

    def available(self, name: str) -> bool:
        self.maybe_refresh()
        return self.board.available(name)

    def has_capacity(self, name: str, demand_tokens: int) -> bool:
        return self.board.has_capacity(name, demand_tokens)

    def hint_tokens(self, name: str) -> float:
        return self.board.hint_tokens(name)

    def reserve(self, name: str, demand_tokens: int) -> int:
        return self.board.reserve(name, demand_tokens)

    def release(self, name: str, ticket: int) -> None:
        self.board.release(name, ticket)

    def observe(
        self,
        name: str,
        remaining_tokens: int | None,
        remaining_requests: int | None,
        reset_s: float | None,
        ticket: int | None = None,
    ) -> None:
        if self.board.observe(name, remaining_tokens, remaining_requests, reset_s, ticket):
            self._share(name)

    def cooldown_remaining(self, name: str) -> float:
        return self.board.cooldown_remaining(name)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """What /api/health shows; asking also starts a refresh when the board is stale, so an idle
        instance's health page catches up with the other instances."""
        self.maybe_refresh()
        return self.board.snapshot()

    # -- the table ------------------------------------------------------------------------------
    def _share(self, name: str) -> None:
        state = self.board.get(name)
        if self._writer is None or state is None:
            return
        entity = {
            "PartitionKey": HEALTH_PARTITION,
            "RowKey": name,
            "cooldown_until": float(state.cooldown_until),
            "reason": state.reason,
            "instance": self._instance_id,
        }
        if state.hint_until > 0:
            entity.update(hint_until=float(state.hint_until), hint_at=float(state.hint_at))
            for key, value in (("hint_tokens", state.hint_tokens), ("hint_requests", state.hint_requests)):
                if value is not None:
                    entity[key] = int(value)
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
        now = self.board.clock()
        if now - self._last_refresh < self.board.refresh_s:
            return
        self._last_refresh = now
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._refreshing = loop.create_task(self.refresh())

    async def refresh(self) -> None:
        assert self._reader is not None
        try:
            rows = await self._reader()
        except Exception as exc:
            log.warning("could not read shared health: %s", type(exc).__name__)
            return
        finally:
            self._refreshing = None
            self._last_refresh = self.board.clock()
        self.board.merge(rows)

    def capacity(self) -> dict[str, dict[str, Any]]:
        return self.board.capacity()

    async def wait_idle(self, timeout_s: float | None = None) -> None:
        """Wait for the background reads and writes, at most ``timeout_s``: shutdown must not hang on
        a hung table (a cooldown row is only advice to the other instances; losing it is harmless)."""
        tasks = list(self._writes)
        if self._refreshing is not None:
            tasks.append(self._refreshing)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)


def combine_rows(stored: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """What a shared write stores over the row already there: the later cooldown (a write never shortens
    another instance's cooldown) and the newer capacity hint."""
    if not stored:
        return new
    out = dict(new)
    try:
        if float(stored.get("cooldown_until", 0.0)) > float(new.get("cooldown_until", 0.0)):
            out["cooldown_until"] = float(stored["cooldown_until"])
            out["reason"] = str(stored.get("reason", ""))
    except (TypeError, ValueError):
        pass
    try:
        stored_at = float(stored.get("hint_at", 0.0))
    except (TypeError, ValueError):
        stored_at = 0.0
    if stored_at > float(new.get("hint_at", 0.0)):
        for key in ("hint_until", "hint_at", "hint_tokens", "hint_requests"):
            out.pop(key, None)
            if stored.get(key) is not None:
                out[key] = stored[key]
    return out
