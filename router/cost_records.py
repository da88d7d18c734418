"""Per-call cost records and their durable write to Table Storage.

One record per call that reached a model (ok or failed). The RowKey is fixed when the record is made,
so every retry of the write is an idempotent upsert of the same entity: no loss, no duplicates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger("router.costs")


class CostRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    api: str = "route"  # which endpoint made the call: "route" or "chat"
    model: str
    deployment: str
    complexity: float
    classifier: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    classifier_model: str | None = None
    classifier_prompt_tokens: int = 0
    classifier_completion_tokens: int = 0
    classifier_cost_usd: float = 0.0
    baseline_model: str
    baseline_cost_usd: float
    latency_ms: float
    status: str = "ok"
    error_code: str | None = None
    fallbacks: int = 0

    @property
    def partition_key(self) -> str:
        return self.timestamp.astimezone(UTC).strftime("%Y-%m-%d")

    @property
    def row_key(self) -> str:
        # Time-ordered within the day partition; the record id makes it unique per call.
        return f"{int(self.timestamp.timestamp() * 1000):013d}-{self.record_id}"

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": self.partition_key, "RowKey": self.row_key}
        for key, value in self.model_dump(exclude={"record_id"}).items():
            if value is not None:
                entity[key] = value
        return entity


Writer = Callable[[dict[str, Any]], Awaitable[object]]


class CostRecorder:
    """Writes records; a failed write is logged in full, buffered (bounded) and retried later, so an
    outage of Table Storage loses nothing that the logs do not also hold."""

    def __init__(self, writer: Writer, max_pending: int = 10_000) -> None:
        self._write = writer
        self._pending: deque[CostRecord] = deque()
        self._max_pending = max_pending
        self._flush_lock = asyncio.Lock()
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def record(self, rec: CostRecord) -> bool:
        """Write now; True when stored. On failure the record is kept for a later flush."""
        if self._pending:
            await self.flush()
        try:
            await self._write(rec.to_entity())
            return True
        except Exception as exc:
            self._keep(rec, exc)
            return False

    async def flush(self) -> int:
        """Retry buffered records in order; returns how many were stored."""
        stored = 0
        async with self._flush_lock:
            while self._pending:
                rec = self._pending[0]
                try:
                    await self._write(rec.to_entity())
                except Exception as exc:
                    log.warning("cost record flush failed (%d pending): %s", len(self._pending), exc)
                    break
                self._pending.popleft()
                stored += 1
        return stored

    async def drain(self, timeout_s: float = 10.0, interval_s: float = 0.5) -> None:
        """Keep flushing until empty or the timeout passes (shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            await self.flush()
            if self._pending:
                await asyncio.sleep(interval_s)
        for rec in self._pending:
            log.error("cost record not stored at shutdown: %s", _record_line(rec))

    def _keep(self, rec: CostRecord, exc: Exception) -> None:
        # The full record goes to the log first: it is recoverable from there whatever happens next.
        log.error("cost record write failed (%s): %s", type(exc).__name__, _record_line(rec))
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.dropped += 1
        self._pending.append(rec)


def _record_line(rec: CostRecord) -> str:
    return json.dumps({"cost_record": rec.to_entity()}, default=str, separators=(",", ":"))
