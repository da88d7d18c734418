"""One routable model: how to reach it, what it costs, how hard a query it may take."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MODELS_PARTITION = "models"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN)
    deployment: str = Field(min_length=1, max_length=64)
    endpoint: str | None = None
    cost_per_1k_tokens: float = Field(ge=0, allow_inf_nan=False)
    input_cost_per_1k: float | None = Field(None, ge=0, allow_inf_nan=False)
    output_cost_per_1k: float | None = Field(None, ge=0, allow_inf_nan=False)
    avg_latency_ms: float = Field(ge=0, allow_inf_nan=False)
    max_complexity: float = Field(ge=0, le=1, allow_inf_nan=False)
    context_window: int | None = Field(None, gt=0)
    enabled: bool = True

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ValueError("endpoint must be an https:// URL")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _finite(self) -> ModelConfig:
        for v in (self.cost_per_1k_tokens, self.avg_latency_ms):
            if not math.isfinite(v):
                raise ValueError("numbers must be finite")
        return self

    @property
    def input_price(self) -> float:
        return self.cost_per_1k_tokens if self.input_cost_per_1k is None else self.input_cost_per_1k

    @property
    def output_price(self) -> float:
        return self.cost_per_1k_tokens if self.output_cost_per_1k is None else self.output_cost_per_1k

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": MODELS_PARTITION, "RowKey": self.name}
        for key, value in self.model_dump(exclude={"name"}).items():
            if value is not None:
                entity[key] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any]) -> ModelConfig:
        data = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "Timestamp")}
        data = {k: v for k, v in data.items() if not k.startswith("odata") and k in cls.model_fields}
        # Int64 values come back as an EntityProperty (a (value, edm_type) named tuple).
        data = {k: (v[0] if isinstance(v, tuple) else v) for k, v in data.items()}
        return cls(name=str(entity.get("RowKey", "")), **data)


def cheapest_first(model: ModelConfig) -> tuple[float, str]:
    """The one price order (sort key): routing price, then name, so ties are stable everywhere."""
    return (model.cost_per_1k_tokens, model.name)


def most_capable_first(model: ModelConfig) -> tuple[float, float, str]:
    """Highest ``max_complexity`` first; ties go to the cheaper, then to the name."""
    return (-model.max_complexity, model.cost_per_1k_tokens, model.name)


def parse_entities(entities: Iterable[Mapping[str, Any]], warn: Any) -> list[ModelConfig]:
    """Valid configs from raw entities; an invalid one is skipped with a warning naming it."""
    models = []
    for entity in entities:
        try:
            models.append(ModelConfig.from_entity(entity))
        except (ValidationError, TypeError, ValueError) as exc:
            warn("skipping invalid model config %r: %s", entity.get("RowKey"), _short(exc))
    return models


def load_file(path: str | Path) -> list[ModelConfig]:
    """Configs from a JSON file: a list of objects, or ``{"models": [...]}``."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    items = raw["models"] if isinstance(raw, dict) else raw
    return [ModelConfig(**item) for item in items]


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)
