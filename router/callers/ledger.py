"""The budget ledger: reserve at admission, settle to the recorded cost, on counters shared by every
instance through the budgets table.

Each counter changes only by a conditional write (ETag ``IfNotModified``); a write that loses to
another instance (412) re-reads and decides again, so two instances can never both take the last
dollar. Within one instance, writes to the same counter queue on a lock and reuse the ETag of the last
write, so an uncontended reservation costs one round trip, and concurrent requests do not fight each
other with 412s. Limits are cached per name for ``BUDGET_LIMITS_TTL_S`` and refreshed in the background
once stale: a caller without a budget costs no table round trip after its first request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from router.callers.budgets import NO_LIMITS, Counter, Exhausted, Hold, Limits, Scope, day_key, month_key
from router.errors import BudgetUnavailable, StaleEntity

if TYPE_CHECKING:
    from router.callers.budget_store import BudgetStore
    from router.callers.identity import Caller

log = logging.getLogger("router.budgets")

_MAX_TRIES = 50  # conditional-write attempts on one counter before the request gets a 503
_FIRST_READ_S = 3.0  # the longest a request waits for a name's limits (once per name and instance)
_SETTLE_TRIES = 5  # a settlement that keeps failing stays reserved (never overspends; see README)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Budget:
    """One limit a request draws on: a caller's or its team's."""

    scope: Scope
    name: str
    limits: Limits


@dataclass(frozen=True, slots=True)
class Refusal:
    budget: Budget
    exhausted: Exhausted


@dataclass(eq=False, slots=True)
class Reservation:
    """What one admitted request holds; settled exactly once (``settled`` guards repeats)."""

    holds: list[Hold]
    amount: int  # pico-USD, on each hold
    expires: float  # monotonic: past it, an unsettled reservation is a leak and is swept
    tokens: int = 0  # what the rate limiter charged at admission
    minute: str = ""
    caller: str = ""
    settled: bool = False


@dataclass(slots=True)
class _Cached:
    limits: Limits
    fresh_until: float
    refreshing: bool = False


@dataclass(slots=True)
class _Tasks:
    running: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.running.add(task)
        task.add_done_callback(self.running.discard)


class BudgetLedger:
    def __init__(
        self, store: BudgetStore, limits_ttl_s: float, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._store = store
        self._ttl = limits_ttl_s
        self._clock = clock
        self._limits: dict[tuple[Scope, str], _Cached] = {}
        self._locks: dict[tuple[Scope, str], asyncio.Lock] = {}
        self._known: dict[tuple[Scope, str], tuple[Counter, str | None]] = {}
        self._open: set[Reservation] = set()
        self._first_reads: dict[tuple[Scope, str], asyncio.Task[Limits]] = {}
        self._tasks = _Tasks()
        self.conflicts = 0  # 412s seen (for tests and benchmarks)

    # -- limits: cached, refreshed in the background ---------------------------------------------
    async def limits(self, scope: Scope, name: str) -> Limits:
        """The cached limits; only a name never seen before waits for the table: one point read per
        instance, however many requests wait for it, for at most ``_FIRST_READ_S``. If the table does
        not answer by then, the name counts as unlimited until the read (or a later one) succeeds: the
        router keeps answering through a table outage, as it does for cost records (a caller *known*
        to have a budget fails closed instead, in ``reserve``)."""
        key = (scope, name)
        cached = self._limits.get(key)
        if cached is None:
            first = self._first_reads.get(key)
            if first is None:
                first = self._first_reads[key] = asyncio.get_running_loop().create_task(self._first_read(key))
            try:
                return await asyncio.wait_for(asyncio.shield(first), _FIRST_READ_S)
            except Exception as exc:
                log.warning("budget limits of a %s could not be read (%s); unknown until the table answers",
                            scope, type(exc).__name__)  # fmt: skip
                # Unknown until the read in flight ends: later requests do not wait for it again.
                self._limits.setdefault(key, _Cached(NO_LIMITS, 0.0, refreshing=not first.done()))
                return NO_LIMITS
        if cached.fresh_until < time.monotonic() and not cached.refreshing:
            cached.refreshing = True
            self._tasks.spawn(self._refresh(key, cached))
        return cached.limits

    async def _first_read(self, key: tuple[Scope, str]) -> Limits:
        try:
            limits = await self._store.read_limits(*key) or NO_LIMITS
        except BaseException:
            self._limits[key] = _Cached(NO_LIMITS, 0.0)  # unknown, stale: re-read when next asked
            raise
        finally:
            self._first_reads.pop(key, None)
        self._limits[key] = _Cached(limits, time.monotonic() + self._ttl)
        return limits

    async def _refresh(self, key: tuple[Scope, str], cached: _Cached) -> None:
        try:
            limits = await self._store.read_limits(*key) or NO_LIMITS
            self._limits[key] = _Cached(limits, time.monotonic() + self._ttl)
        except Exception as exc:  # keep the last known limits; the next request tries again
            log.warning("budget limits refresh failed: %s", type(exc).__name__)
            cached.refreshing = False

    def cached_limits(self, scope: Scope, name: str) -> Limits:
        cached = self._limits.get((scope, name))
        return NO_LIMITS if cached is None else cached.limits

    def now(self) -> datetime:
        return self._clock()

    def forget(self) -> None:
        """Drop cached limits and counters (tests; a CLI change is otherwise seen within the TTL)."""
        self._limits.clear()
        self._known.clear()

    async def lookup(self, caller: Caller) -> tuple[Limits, Limits]:
        """The caller's and its team's limits, both first reads at once."""
        own, team = await asyncio.gather(self.limits("caller", caller.id), self.limits("team", caller.team))
        return own, team

    async def budgets(self, caller: Caller) -> list[Budget]:
        """The caller's and its team's limits that have a budget (empty: nothing to reserve)."""
        caller_limits, team_limits = await self.lookup(caller)
        found = [Budget("caller", caller.id, caller_limits), Budget("team", caller.team, team_limits)]
        return [b for b in found if b.limits.budgeted]

    # -- reserve and settle ----------------------------------------------------------------------
    async def reserve(self, budgets: list[Budget], amount: int, hold_for_s: float) -> Reservation | Refusal:
        """Hold ``amount`` on every budget, or on none: a refusal releases the holds already taken."""
        self._sweep()
        now = self._clock()
        holds: list[Hold] = []
        for budget in budgets:
            refusal: list[Exhausted] = []

            def take(
                counter: Counter, budget: Budget = budget, refusal: list[Exhausted] = refusal
            ) -> Counter | None:
                exhausted = counter.exhausted(budget.limits, amount)
                if exhausted is not None:
                    refusal.append(exhausted)
                    return None
                return counter.reserve(amount)

            try:
                taken = await self._update(budget.scope, budget.name, take)
            except BaseException:
                self._release_soon(holds, amount)
                raise
            if taken is None:
                self._release_soon(holds, amount)
                return Refusal(budget, refusal[-1])
            holds.append(Hold(budget.scope, budget.name, amount, taken.day or day_key(now),
                              taken.month or month_key(now)))  # fmt: skip
        reservation = Reservation(holds, amount, time.monotonic() + hold_for_s)
        self._open.add(reservation)
        return reservation

    def settle(self, reservation: Reservation, actual: int) -> None:
        """Release the reservation and add ``actual`` (pico-USD), in the background: no suspension
        point, so it is safe in a cancelled task's cleanup; ``drain`` waits for it."""
        if reservation.settled:
            return
        reservation.settled = True
        self._open.discard(reservation)
        if reservation.holds:
            self._tasks.spawn(self._settle(reservation.holds, actual))

    def _release_soon(self, holds: list[Hold], amount: int) -> None:
        if holds:
            self._tasks.spawn(self._settle(holds, 0))

    async def _settle(self, holds: list[Hold], actual: int) -> None:
        for hold in holds:

            def release(counter: Counter, hold: Hold = hold) -> Counter:
                return counter.settle(hold, actual)

            for attempt in range(_SETTLE_TRIES):
                try:
                    await self._update(hold.scope, hold.name, release)
                    break
                except Exception as exc:
                    if attempt == _SETTLE_TRIES - 1:
                        log.error("budget settlement of %s lost (%s): its reservation stays counted",
                                  hold.scope, type(exc).__name__)  # fmt: skip
                    else:
                        await asyncio.sleep(0.2 * 2**attempt)

    def _sweep(self) -> None:
        """Settle reservations whose request can no longer be running (a stream never started, say) at
        their full amount: unknown cost counts as the worst case, never as free."""
        now = time.monotonic()
        for reservation in [r for r in self._open if r.expires < now]:
            log.warning("budget reservation unsettled past its request's deadline; counted in full")
            self.settle(reservation, reservation.amount)

    async def _update(
        self, scope: Scope, name: str, change: Callable[[Counter], Counter | None]
    ) -> Counter | None:
        """Apply ``change`` by conditional write, re-reading after a 412; ``change`` returning None
        leaves the counter as is (a refusal, decided on a fresh read only)."""
        key = (scope, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            for _ in range(_MAX_TRIES):
                known = self._known.pop(key, None)
                fresh = known is None
                counter, etag = known if known is not None else await self._read(scope, name)
                new = change(counter.current(self._clock()))
                if new is None:
                    if fresh:
                        self._known[key] = (counter, etag)
                        return None
                    continue  # decided on our last write's copy: another instance may have released
                try:
                    etag = await self._store.write_counter(scope, name, new, etag)
                except StaleEntity:
                    self.conflicts += 1
                    await asyncio.sleep(random.uniform(0, 0.01))
                    continue
                except Exception as exc:
                    raise BudgetUnavailable(
                        f"the budgets table cannot be written ({type(exc).__name__})"
                    ) from None
                self._known[key] = (new, etag)
                return new
        raise BudgetUnavailable("the budget counter is too contended; try again shortly")

    async def _read(self, scope: Scope, name: str) -> tuple[Counter, str | None]:
        try:
            return await self._store.read_counter(scope, name)
        except Exception as exc:
            raise BudgetUnavailable(f"the budgets table cannot be read ({type(exc).__name__})") from None

    async def drain(self) -> None:
        """Wait for every settlement and refresh in flight (shutdown, tests)."""
        while self._tasks.running:
            await asyncio.gather(*list(self._tasks.running), return_exceptions=True)
