"""Request and response bodies: validated at the edge, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.pipeline.capabilities import Needs
from router.pipeline.route import Constraints

_Positive = Annotated[float, Field(gt=0, le=1e12, allow_inf_nan=False, strict=True)]
_NonNegative = Annotated[float, Field(ge=0, le=1e12, allow_inf_nan=False, strict=True)]


class ConstraintsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_latency_ms: _Positive | None = Field(
        None, description="Only models whose avg_latency_ms is at most this."
    )
    max_cost_per_1k: _NonNegative | None = Field(
        None, description="Only models whose cost_per_1k_tokens (USD) is at most this."
    )

    allow_fallback_outside_constraints: bool = Field(
        False,
        strict=True,
        description="If every model within the limits fails, try capable ones outside them.",
    )

    def to_constraints(self) -> Constraints:
        return Constraints(
            max_latency_ms=float("inf") if self.max_latency_ms is None else float(self.max_latency_ms),
            max_cost_per_1k=float("inf") if self.max_cost_per_1k is None else float(self.max_cost_per_1k),
        )


class RouteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="The user's query.", strict=True)
    constraints: ConstraintsIn | None = None
    requires: list[Literal["tools", "vision", "json_schema"]] = Field(
        default_factory=list, description="Capabilities the answering model must have (routes among those)."
    )

    def needs(self) -> Needs:
        return Needs(**dict.fromkeys(self.requires, True))

    def to_constraints(self) -> Constraints:
        return self.constraints.to_constraints() if self.constraints else Constraints()

    @property
    def allow_outside_constraints(self) -> bool:
        return bool(self.constraints and self.constraints.allow_fallback_outside_constraints)


class ConversationMessage(BaseModel):
    """An earlier turn of a conversation, as Chat Completions sends it (its other fields kept as sent)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class DecideRequest(RouteRequest):
    messages: list[ConversationMessage] | None = Field(
        None,
        description="The conversation before `query` (Chat Completions messages): decided as "
        "/api/v1/chat/completions would decide messages + query, conversation affinity included.",
    )


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class FallbackOut(BaseModel):
    model: str
    error_code: str


class RouteResponse(BaseModel):
    response: str
    model_used: str
    estimated_cost: float = Field(description="USD, from the response's token usage and the model's prices.")
    complexity: float
    classifier: str = Field(description='"heuristic", "learned", "llm" or "heuristic-fallback"')
    scorer: str = Field(description="Registry name of the scorer that classified the query (CLASSIFIER)")
    usage: Usage
    latency_ms: float
    request_id: str
    fallbacks: list[FallbackOut] = Field(
        default_factory=list, description="Failed attempts before the answer."
    )


class DecideResponse(BaseModel):
    model: str
    complexity: float
    classifier: str
    scorer: str
    candidates: list[str] = Field(description="Models meeting every constraint, cheapest first.")
    reason: str
    route_reason: str = Field(
        "classified", description="classified, affinity, escalated or pinned (see router.pipeline.affinity)"
    )
    request_id: str


class ModelOut(BaseModel):
    name: str
    deployment: str
    endpoint: str | None
    cost_per_1k_tokens: float
    input_cost_per_1k: float
    output_cost_per_1k: float
    cached_input_cost_per_1k: float = Field(description="USD per 1k prompt tokens from the prompt cache.")
    avg_latency_ms: float
    max_complexity: float
    context_window: int | None
    enabled: bool
    reasoning: bool = Field(False, description="A reasoning model: hidden reasoning tokens bill as output.")
    supports_tools: bool = True
    supports_vision: bool = True
    supports_json_schema: bool = True
    max_output_tokens: int | None = None
    backends: list[dict[str, Any]] = Field(
        default_factory=list, description="The deployments behind it (priority, weight, provisioned, ...)."
    )


class ModelsResponse(BaseModel):
    models: list[ModelOut]


class HealthResponse(BaseModel):
    status: str
    models: int
    pending_cost_records: int
    dropped_cost_records: int = Field(
        0, description="Cost records evicted at COST_BUFFER_MAX since start (each logged in full)."
    )
    unhealthy: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Models in cooldown or with an open circuit."
    )
    capacity: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Backends with a live x-ratelimit-remaining-* hint: remaining tokens/requests, reset.",
    )


class ErrorBody(BaseModel):
    code: str
    message: str
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorBody
