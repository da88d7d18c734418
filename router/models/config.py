"""One routable model: how to reach it, what it costs, how hard a query it may take."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from router.endpoint_policy import EndpointPolicy

MODELS_PARTITION = "models"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
DEPLOYMENT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN)
    # Goes into the upstream URL path (/openai/deployments/<deployment>/...): no slash, query, escape
    # or dot segment may turn it into another path.
    deployment: str = Field(pattern=DEPLOYMENT_PATTERN)
    endpoint: str | None = None
    cost_per_1k_tokens: float = Field(ge=0, allow_inf_nan=False)
    input_cost_per_1k: float | None = Field(None, ge=0, allow_inf_nan=False)
    output_cost_per_1k: float | None = Field(None, ge=0, allow_inf_nan=False)
    # Prompt tokens served from Azure's prompt cache (prompts of 1,024 tokens or more); None: the input
    # price (no discount). Rows stored before this field existed read as None.
    cached_input_cost_per_1k: float | None = Field(None, ge=0, allow_inf_nan=False)
    avg_latency_ms: float = Field(ge=0, allow_inf_nan=False)
    max_complexity: float = Field(ge=0, le=1, allow_inf_nan=False)
    context_window: int | None = Field(None, gt=0)
    enabled: bool = True
    # A reasoning model (o-series, gpt-5 family): it bills hidden reasoning tokens as output tokens,
    # takes max_completion_tokens and refuses sampling parameters (router.pipeline.capabilities).
    reasoning: bool = False
    # What the model accepts; permissive defaults so catalogues written before these existed still route.
    supports_tools: bool = True
    supports_vision: bool = True
    supports_json_schema: bool = True
    max_output_tokens: int | None = Field(None, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None, info: ValidationInfo) -> str | None:
        """Checked against the ``EndpointPolicy`` in the validation context when there is one (table
        reads, ``models load``); always checked again before a call carries a token."""
        if not v:
            return None
        policy = (info.context or {}).get("endpoint_policy")
        return policy.check(v) if isinstance(policy, EndpointPolicy) else v.rstrip("/")

    @field_validator("deployment")
    @classmethod
    def _not_a_dot_segment(cls, v: str) -> str:
        if v.strip(".") == "":
            raise ValueError("deployment must not be a dot segment")
        return v

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

    @property
    def cached_input_price(self) -> float:
        cached = self.cached_input_cost_per_1k
        return self.input_price if cached is None else cached

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": MODELS_PARTITION, "RowKey": self.name}
        for key, value in self.model_dump(exclude={"name"}).items():
            if value is not None:
                entity[key] = value
        return entity

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any], policy: EndpointPolicy | None = None) -> ModelConfig:
        data = {k: v for k, v in entity.items() if k not in ("PartitionKey", "RowKey", "Timestamp")}
        data = {k: v for k, v in data.items() if not k.startswith("odata") and k in cls.model_fields}
        # Int64 values come back as an EntityProperty (a (value, edm_type) named tuple).
        data = {k: (v[0] if isinstance(v, tuple) else v) for k, v in data.items()}
        data["name"] = str(entity.get("RowKey", ""))
        return cls.model_validate(data, context={"endpoint_policy": policy})


def cheapest_first(model: ModelConfig) -> tuple[float, str]:
    """The one price order (sort key): routing price, then name, so ties are stable everywhere."""
    return (model.cost_per_1k_tokens, model.name)


def most_capable_first(model: ModelConfig) -> tuple[float, float, str]:
    """Highest ``max_complexity`` first; ties go to the cheaper, then to the name."""
    return (-model.max_complexity, model.cost_per_1k_tokens, model.name)


def parse_entities(
    entities: Iterable[Mapping[str, Any]], warn: Any, policy: EndpointPolicy | None = None
) -> list[ModelConfig]:
    """Valid configs from raw entities; an invalid one (an endpoint ``policy`` refuses, too) is skipped
    with a warning naming it."""
    models = []
    for entity in entities:
        try:
            models.append(ModelConfig.from_entity(entity, policy))
        except (ValidationError, TypeError, ValueError) as exc:
            warn("skipping invalid model config %r: %s", entity.get("RowKey"), _short(exc))
    return models


def load_file(path: str | Path, policy: EndpointPolicy | None = None) -> list[ModelConfig]:
    """Configs from a JSON file: a list of objects, or ``{"models": [...]}``; with a ``policy``, an
    endpoint it refuses fails the load (ValidationError)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    items = raw["models"] if isinstance(raw, dict) else raw
    return [ModelConfig.model_validate(item, context={"endpoint_policy": policy}) for item in items]


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return str(exc)
