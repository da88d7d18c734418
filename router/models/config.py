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
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from router.endpoint_policy import EndpointPolicy

MODELS_PARTITION = "models"
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
DEPLOYMENT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_BACKENDS = 16


def _check_deployment(v: str) -> str:
    if v.strip(".") == "":
        raise ValueError("deployment must not be a dot segment")
    return v


def _check_endpoint(v: str | None, info: ValidationInfo) -> str | None:
    """Checked against the ``EndpointPolicy`` in the validation context when there is one (table reads,
    ``models load``); always checked again before a call carries a token."""
    if not v:
        return None
    policy = (info.context or {}).get("endpoint_policy")
    return policy.check(v) if isinstance(policy, EndpointPolicy) else v.rstrip("/")


class Backend(BaseModel):
    """One deployment that serves a catalogue model (several: capacity across regions, PTU + overflow).

    ``priority``: lower is tried first (e.g. PTU = 1, pay-as-you-go = 2); ``weight`` spreads load within a
    priority. ``provisioned`` is declared, not derived (a priority says nothing about billing): a PTU
    deployment is paid for whether used or not, so it goes first and the report shows its utilisation
    against ``tokens_per_minute`` when that is given. ``spillover_deployment``: a standard deployment in
    the same resource that Azure itself sends overflow to (``x-ms-spillover-deployment``), so the router
    does not retry on another backend itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deployment: str = Field(pattern=DEPLOYMENT_PATTERN)
    endpoint: str | None = None  # None: the model's endpoint, else AZURE_OPENAI_ENDPOINT
    priority: int = Field(1, ge=0, le=1000)
    weight: float = Field(1.0, gt=0, le=1e6, allow_inf_nan=False)
    provisioned: bool = False
    spillover_deployment: str | None = Field(None, pattern=DEPLOYMENT_PATTERN)
    tokens_per_minute: int | None = Field(None, gt=0)  # its quota or PTU throughput, for the report

    @field_validator("deployment", "spillover_deployment")
    @classmethod
    def _not_a_dot_segment(cls, v: str | None) -> str | None:
        return None if v is None else _check_deployment(v)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _check_endpoint(v, info)

    @property
    def provisioned_label(self) -> str:
        return "ptu" if self.provisioned else "paygo"


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
    # The deployments behind this model (router.pipeline.backends chooses one per attempt). Stored in the
    # Table as a JSON array string; a row without it (or a file entry with only ``deployment`` and
    # ``endpoint``) is one backend: that deployment at that endpoint. With ``backends``, ``deployment``
    # (and ``endpoint``) may be left out: they default to the first backend of the lowest priority,
    # which the judge and the quality sampler call.
    backends: tuple[Backend, ...] = ()

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str | None, info: ValidationInfo) -> str | None:
        return _check_endpoint(v, info)

    @field_validator("deployment")
    @classmethod
    def _not_a_dot_segment(cls, v: str) -> str:
        return _check_deployment(v)

    @model_validator(mode="before")
    @classmethod
    def _backends_in(cls, data: Any) -> Any:
        """``backends`` as the Table stores it (a JSON string) or as a file gives it (a list); the primary
        deployment defaults to the first backend of the lowest priority."""
        if not isinstance(data, dict) or data.get("backends") in (None, "", [], ()):
            return data
        raw = data["backends"]
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raise ValueError("backends: not valid JSON (a JSON array of objects)") from None
        if not isinstance(raw, list | tuple) or not all(isinstance(b, dict | Backend) for b in raw):
            raise ValueError("backends: must be a JSON array of objects, each with a deployment")
        if len(raw) > MAX_BACKENDS:
            raise ValueError(f"backends: at most {MAX_BACKENDS}")
        data = {**data, "backends": raw}
        if "deployment" not in data:
            first = min(
                (b if isinstance(b, dict) else b.model_dump() for b in raw),
                key=lambda b: b.get("priority", 1) if isinstance(b.get("priority", 1), int) else 0,
            )
            if isinstance(first.get("deployment"), str):
                data["deployment"] = first["deployment"]
                data.setdefault("endpoint", first.get("endpoint"))
        return data

    @model_validator(mode="after")
    def _one_backend_at_least(self) -> ModelConfig:
        if not self.backends:
            implied = (Backend(deployment=self.deployment, endpoint=self.endpoint),)
            object.__setattr__(self, "backends", implied)  # frozen: set once, while validating
        elif not any(b.deployment == self.deployment for b in self.backends):
            raise ValueError("deployment: must be one of the backends' deployments when backends is set")
        seen = {(b.deployment, b.endpoint) for b in self.backends}
        if len(seen) != len(self.backends):
            raise ValueError("backends: the same deployment at the same endpoint is listed twice")
        return self

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

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The one backend a legacy model implies is not dumped: ``ModelConfig(**{**m.model_dump(),
        "deployment": ...})`` keeps working, and a legacy model dumps as it always did."""
        data: dict[str, Any] = handler(self)
        if not self.declares_backends:
            data.pop("backends", None)
        return data

    @property
    def declares_backends(self) -> bool:
        """More than the one backend a legacy row implies (its ``deployment`` at its ``endpoint``)."""
        return self.backends != (Backend(deployment=self.deployment, endpoint=self.endpoint),)

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": MODELS_PARTITION, "RowKey": self.name}
        for key, value in self.model_dump(exclude={"name", "backends"}).items():
            if value is not None:
                entity[key] = value
        if self.declares_backends:  # a legacy model's row stays exactly as it was
            entity["backends"] = self.backends_json()
        return entity

    def backends_json(self) -> str:
        items = [b.model_dump(exclude_defaults=True) for b in self.backends]
        return json.dumps(items, separators=(",", ":"))

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
