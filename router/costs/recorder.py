"""The durable write of cost records to Table Storage, off the response path.

Every retry is an idempotent upsert of the same entity (the record's RowKey is fixed when it is made):
no loss, no duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from router.costs.records import CostRecord, record_line
from router.costs.transactions import MAX_BATCH

log = logging.getLogger("router.costs")


Writer = Callable[[dict[str, Any]], Awaitable[object]]
BatchWriter = Callable[[list[dict[str, Any]]], Awaitable[object]]

# Backoff between write attempts before a record is parked in the buffer.
RETRY_DELAYS_S = (0.05, 0.25, 1.0)


class CostRecorder:
    """Writes records durably without making the caller wait (in ``background`` mode).

    With a ``batch_writer``, background records are gathered for up to ``linger_s`` and written as one
    transaction per day partition (up to 100 at once): one round trip instead of one per call. A failed
    batch falls back to writing its records one by one. A write is retried with backoff; if it still
    fails, the whole record is logged as one JSON line (recoverable from logs whatever happens next) and
    parked in a bounded buffer that later requests and shutdown flush. The RowKey is fixed per record,
    so retries are idempotent upserts.
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
        self._queue: deque[CostRecord] = deque()
        self._batcher: asyncio.Task[None] | None = None
        self._batching = 0
        self._buffer: deque[CostRecord] = deque()
        self._max_pending = max_pending
        self._background = background
        self._retry_delays_s = retry_delays_s
        self._in_flight: set[asyncio.Task[bool]] = set()
        self._flush_lock = asyncio.Lock()
        self._flushing: asyncio.Task[int] | None = None
        self.dropped = 0
        self.written = 0

    @property
    def pending(self) -> int:
        """Records not yet stored: queued, being written now, or parked after failed writes."""
        return len(self._buffer) + len(self._queue) + self._batching + len(self._in_flight)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    async def record(self, rec: CostRecord) -> None:
        """Hand a record over. Background mode returns at once; inline mode waits for the write
        (and its retries) but never raises: a failure parks the record instead."""
        if self._buffer:
            self._schedule_flush()
        if self._background:
            self.submit(rec)
            return
        await self._write_with_retries(rec)

    def submit(self, rec: CostRecord) -> None:
        """Hand a record over without any suspension point: safe in a cancelled task's cleanup (a
        streaming response whose caller went away)."""
        if self._write_batch is None:
            self._write_one(rec)
            return
        self._queue.append(rec)
        if self._batcher is None:
            self._batcher = asyncio.get_running_loop().create_task(self._run_batches())

    def _write_one(self, rec: CostRecord) -> None:
        task = asyncio.get_running_loop().create_task(self._write_with_retries(rec))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _run_batches(self) -> None:
        assert self._write_batch is not None
        try:
            while self._queue:
                await asyncio.sleep(self._linger_s)
                taken = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                self._batching = len(taken)
                by_day: dict[str, list[CostRecord]] = {}
                for rec in taken:
                    by_day.setdefault(rec.partition_key, []).append(rec)
                for records in by_day.values():
                    try:
                        await self._write_batch([r.to_entity() for r in records])
                        self.written += len(records)
                    except Exception as exc:
                        log.warning("cost record batch of %d failed (%s); writing one by one",
                                    len(records), type(exc).__name__)  # fmt: skip
                        for rec in records:
                            self._write_one(rec)
                    self._batching -= len(records)
        finally:
            self._batching = 0
            self._batcher = None

    async def _write_with_retries(self, rec: CostRecord) -> bool:
        entity = rec.to_entity()
        last: Exception | None = None
        for delay in (0.0, *self._retry_delays_s):
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._write(entity)
                self.written += 1
                return True
            except Exception as exc:
                last = exc
        assert last is not None
        self._park(rec, last)
        return False

    def _schedule_flush(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self.flush())

    async def flush(self) -> int:
        """Retry parked records in order; returns how many were stored."""
        stored = 0
        async with self._flush_lock:
            while self._buffer:
                rec = self._buffer[0]
                try:
                    await self._write(rec.to_entity())
                except Exception as exc:
                    log.warning(
                        "cost record flush failed (%d parked): %s", len(self._buffer), type(exc).__name__
                    )
                    break
                self._buffer.popleft()
                self.written += 1
                stored += 1
        if stored:
            log.info("flushed %d parked cost record(s)", stored)
        return stored

    async def idle(self) -> None:
        """Wait until every write queued or in flight has finished (stored or parked)."""
        while self._in_flight or self._batcher is not None:
            if self._batcher is not None:
                await asyncio.gather(self._batcher, return_exceptions=True)
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
        if self._flushing is not None:
            await asyncio.gather(self._flushing, return_exceptions=True)

    async def drain(self, timeout_s: float = 10.0, interval_s: float = 0.5) -> None:
        """Shutdown: finish in-flight writes, then keep flushing until empty or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle(), timeout=timeout_s)
        while self._buffer and time.monotonic() < deadline:
            await self.flush()
            if self._buffer:
                await asyncio.sleep(interval_s)
        for rec in self._buffer:
            log.error("cost record not stored at shutdown: %s", record_line(rec))

    def _park(self, rec: CostRecord, exc: Exception) -> None:
        # The full record goes to the log first: it is recoverable from there whatever happens next.
        log.error("cost record write failed (%s): %s", type(exc).__name__, record_line(rec))
        if len(self._buffer) >= self._max_pending:
            self._buffer.popleft()  # already logged in full when it was parked
            self.dropped += 1
        self._buffer.append(rec)
