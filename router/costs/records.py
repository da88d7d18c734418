"""The per-call cost record: one per call that reached a model (ok or failed), priced when it is made.

The RowKey is fixed when the record is made, so every retry of its write (and a replay from the log) is
an idempotent upsert of the same entity.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CostRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    request_id: str
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    api: str = "route"  # which endpoint made the call: "route" or "chat"
    # Who made it ("anonymous" under function keys, and in records made before callers existed).
    caller: str = "anonymous"
    team: str = "anonymous"
    model: str
    deployment: str  # the backend that answered (or failed last): with spillover, the deployment Azure used
    endpoint: str | None = None  # that backend's endpoint (absent in records made before backends existed)
    provisioned: bool = False  # that backend is provisioned throughput (PTU)
    complexity: float
    classifier: str
    scorer: str | None = None  # the scorer's registry name (absent in records made before it existed)
    # Why this model: classified, affinity, escalated, pinned or fallback (router.pipeline.affinity);
    # absent in records made before it existed.
    route_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Token types (0 in records made before they were read): the prompt tokens served from the prompt
    # cache (priced at the cached input price) and the completion tokens spent on hidden reasoning.
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cache_savings_usd: float = 0.0  # what the cached tokens would have cost more at the input price
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
    attempts: str | None = None  # JSON list of failed attempts: [{"model", "error_code", "deployment"}]
    # True when a token count here (the call's or the judge's) is an estimate from the text because the
    # upstream's usage was missing or invalid; the cost is then an estimate too.
    usage_estimated: bool = False

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


def record_line(rec: CostRecord) -> str:
    return json.dumps({"cost_record": rec.to_entity()}, default=str, separators=(",", ":"))
