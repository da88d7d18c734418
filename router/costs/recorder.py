"""The durable write of cost records to Table Storage, off the response path.

Every retry is an idempotent upsert of the same entity (the record's RowKey is fixed when it is made),
and so is a replay from the log (``python -m router costs replay``). The guarantee is: every record
handed over ends up in the table, or in the log as one full JSON line (``record_line``), or both. It
is in neither only while held in memory, from the hand-over until the first of: stored; parked after
failed writes (logged); evicted at ``max_pending`` (logged); an awaiting invocation's budget ran out
(logged, see ``awaiting_records``); the shutdown drain gave up (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from router.costs.records import CostRecord, record_line
from router.costs.transactions import MAX_BATCH

log = logging.getLogger("router.costs")


Writer = Callable[[dict[str, Any]], Awaitable[object]]
BatchWriter = Callable[[list[dict[str, Any]]], Awaitable[object]]
Waiting = list[tuple[CostRecord, "asyncio.Future[bool]"]]

# Backoff between write attempts before a record is parked in the buffer.
RETRY_DELAYS_S = (0.05, 0.25, 1.0)

# Records handed over in the current invocation, when its caller awaits them (``awaiting_records``).
_awaiting: ContextVar[Waiting | None] = ContextVar("awaiting_cost_records", default=None)


class CostRecorder:
    """Writes records durably without making the caller wait (in ``background`` mode).

    With a ``batch_writer``, background records are gathered for up to ``linger_s`` and written as one
    transaction per day partition (up to 100 at once): one round trip instead of one per call. A failed
    batch falls back to writing its records one by one. A write is retried with backoff; if it still
    fails, the whole record is logged as one JSON line and parked, to be flushed by later requests and
    at shutdown.

    ``max_pending`` bounds every record held in memory: queued, being written, and parked. A record
    handed over at the bound evicts the oldest parked one, or is itself dropped if none is parked; either
    way the evicted record is logged in full and counted in ``dropped``. Parking moves a record from
    "being written" to "parked", so it never evicts: a flush racing a park cannot lose a record.
    """

    def __init__(
        self,
        writer: Writer,
        max_pending: int = 10_000,
        background: bool = True,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        batch_writer: BatchWriter | None = None,
        linger_s: float = 0.05,
    ) -> None:
        self._write = writer
        self._write_batch = batch_writer
        self._linger_s = linger_s
        self._max_pending = max_pending
        self._background = background
        self._retry_delays_s = retry_delays_s
        self._queue: deque[CostRecord] = deque()  # handed over, not yet taken by the batcher
        self._writing: dict[int, CostRecord] = {}  # a write (or its retries, or a flush) is under way
        self._buffer: deque[CostRecord] = deque()  # parked after failed writes, logged in full
        self._tasks: set[asyncio.Task[Any]] = set()
        self._batcher: asyncio.Task[None] | None = None
        self._flushing: asyncio.Task[int] | None = None
        self._flush_lock = asyncio.Lock()
        self._waiters: dict[int, asyncio.Future[bool]] = {}
        self._closed = False
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        """Records not yet stored: queued, being written now, or parked after failed writes."""
        return len(self._queue) + len(self._writing) + len(self._buffer)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def unstored(self) -> list[CostRecord]:
        """Every record held in memory and not yet stored, oldest state first."""
        return [*self._queue, *self._writing.values(), *self._buffer]

    # -- hand-over ---------------------------------------------------------------------------------
    async def record(self, rec: CostRecord) -> None:
        """Hand a record over. Background mode returns at once; inline mode waits for the write
        (and its retries) but never raises: a failure parks the record instead."""
        if self._buffer:
            self._schedule_flush()
        if self._background:
            self.submit(rec)
        elif self._admit(rec):
            # Shielded: a caller that goes away does not cancel its record's write.
            await asyncio.shield(self._spawn_write(rec))

    def submit(self, rec: CostRecord) -> None:
        """Hand a record over without any suspension point: safe in a cancelled task's cleanup (a
        streaming response whose caller went away)."""
        if not self._admit(rec):
            return
        if self._write_batch is None:
            self._spawn_write(rec)
            return
        self._queue.append(rec)
        if self._batcher is None:
            self._batcher = self._spawn(self._run_batches())

    def _admit(self, rec: CostRecord) -> bool:
        """Apply the one bound; register the record with an awaiting invocation. False: dropped."""
        if self._closed:  # after the drain nothing may rely on a later flush
            log.error("cost record handed over after shutdown: %s", record_line(rec))
        if self.pending >= self._max_pending:
            if not self._buffer:
                self._evict(rec)
                return False
            self._evict(self._buffer.popleft())
        waiting = _awaiting.get()
        if waiting is not None:
            future = asyncio.get_running_loop().create_future()
            self._waiters[id(rec)] = future
            waiting.append((rec, future))
        return True

    def _evict(self, rec: CostRecord) -> None:
        self.dropped += 1
        log.error("cost record dropped, COST_BUFFER_MAX=%d reached: %s", self._max_pending, record_line(rec))
        self._settle(rec, stored=False)

    # -- writing -----------------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _spawn_write(self, rec: CostRecord) -> asyncio.Task[bool]:
        self._writing[id(rec)] = rec
        return self._spawn(self._write_with_retries(rec))

    async def _run_batches(self) -> None:
        try:
            while self._queue:
                # Linger to gather a batch, unless an invocation is waiting for its record.
                await asyncio.sleep(0 if self._waiters else self._linger_s)
                taken = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                by_day: dict[str, list[CostRecord]] = {}
                for rec in taken:
                    self._writing[id(rec)] = rec
                    by_day.setdefault(rec.partition_key, []).append(rec)
                for records in by_day.values():
                    await self._write_group(records)
        finally:
            self._batcher = None

    async def _write_group(self, records: list[CostRecord]) -> None:
        assert self._write_batch is not None
        try:
            await self._write_batch([r.to_entity() for r in records])
        except Exception as exc:
            log.warning("cost record batch of %d failed (%s); writing one by one",
                        len(records), type(exc).__name__)  # fmt: skip
            # Awaited here, not spawned: at most one batch of records is being written at a time.
            await asyncio.gather(*(self._write_with_retries(r) for r in records))
            return
        for rec in records:
            self._stored(rec)

    async def _write_with_retries(self, rec: CostRecord) -> bool:
        entity = rec.to_entity()
        last: Exception | None = None
        for delay in (0.0, *self._retry_delays_s):
            if delay and self._closed:  # after the drain the clients are closed: park (log) at once
                break
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._write(entity)
            except Exception as exc:
                last = exc
                continue
            self._stored(rec)
            return True
        assert last is not None
        self._park(rec, last)
        return False

    def _stored(self, rec: CostRecord) -> None:
        self._writing.pop(id(rec), None)
        self.written += 1
        self._settle(rec, stored=True)

    def _park(self, rec: CostRecord, exc: Exception) -> None:
        # The full record goes to the log first: it is recoverable from there whatever happens next.
        log.error("cost record write failed (%s): %s", type(exc).__name__, record_line(rec))
        self._writing.pop(id(rec), None)
        self._buffer.append(rec)
        self._settle(rec, stored=False)

    def _settle(self, rec: CostRecord, *, stored: bool) -> None:
        future = self._waiters.pop(id(rec), None)
        if future is not None and not future.done():
            future.set_result(stored)

    # -- parked records ----------------------------------------------------------------------------
    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = self._spawn(self.flush())

    async def flush(self) -> int:
        """Retry parked records in order; returns how many were stored."""
        stored = 0
        async with self._flush_lock:
            while self._buffer:
                # Out of the buffer while it is written: an eviction cannot pick it meanwhile.
                rec = self._buffer.popleft()
                self._writing[id(rec)] = rec
                try:
                    await self._write(rec.to_entity())
                except Exception as exc:
                    self._writing.pop(id(rec), None)
                    self._buffer.appendleft(rec)
                    log.warning(
                        "cost record flush failed (%d parked): %s", len(self._buffer), type(exc).__name__
                    )
                    break
                self._stored(rec)
                stored += 1
        if stored:
            log.info("flushed %d parked cost record(s)", stored)
        return stored

    # -- waiting and shutdown ----------------------------------------------------------------------
    async def idle(self) -> None:
        """Wait until every write queued or in flight has finished (stored or parked)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    async def drain(self, timeout_s: float = 10.0, interval_s: float = 0.5) -> None:
        """Shutdown: wait for the writes under way and flush parked records, for at most ``timeout_s``;
        nothing is cancelled. Then log in full every record still not stored (queued, being written,
        parked), so each one is in the table or in the log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (remaining := deadline - loop.time()) > 0:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=remaining)
            elif self._buffer:
                flushing = self._spawn(self.flush())  # a task: a hung write does not stretch the bound
                await asyncio.wait({flushing}, timeout=remaining)
                if flushing.done() and self._buffer:
                    await asyncio.sleep(min(interval_s, max(0.0, deadline - loop.time())))
            else:
                break
        self._closed = True
        unstored = self.unstored()
        for rec in unstored:
            log.error("cost record not stored at shutdown: %s", record_line(rec))
        if unstored:
            log.error("%d cost record(s) not stored at shutdown, logged above for `python -m router "
                      "costs replay`", len(unstored))  # fmt: skip


@contextlib.asynccontextmanager
async def awaiting_records(budget_s: float) -> AsyncIterator[None]:
    """Make the enclosed invocation wait, at most ``budget_s``, for the records it hands over to be
    stored, and log in full any that are not by then.

    For a host that may end the process once an invocation returns, without a shutdown hook (the
    Functions host): when the invocation returns, each of its records is in the table or in the log.
    """
    waiting: Waiting = []
    token = _awaiting.set(waiting)
    try:
        yield
    finally:
        _awaiting.reset(token)
        await _settle_within(waiting, budget_s)


async def _settle_within(waiting: Waiting, budget_s: float) -> None:
    try:
        futures = [f for _, f in waiting if not f.done()]
        if futures:
            await asyncio.wait(futures, timeout=budget_s)
    finally:
        for rec, future in waiting:
            if not future.done():
                log.warning("cost record not stored within COST_AWAIT_MS, logged for replay: %s",
                            record_line(rec))  # fmt: skip
