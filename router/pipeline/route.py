"""The routing policy: pure, so it can be tested exhaustively and reused by calibration and reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from router.models.config import ModelConfig, cheapest_first, most_capable_first


@dataclass(frozen=True, slots=True)
class Constraints:
    max_latency_ms: float = math.inf
    max_cost_per_1k: float = math.inf


@dataclass(frozen=True, slots=True)
class Decision:
    model: ModelConfig
    candidates: tuple[ModelConfig, ...]  # every model meeting all constraints, cheapest first
    reason: str


def most_capable(models: Sequence[ModelConfig]) -> ModelConfig:
    """Highest ``max_complexity``; ties go to the cheaper, then to the name, so the choice is stable."""
    return min(models, key=most_capable_first)


def choose(models: Sequence[ModelConfig], complexity: float, constraints: Constraints) -> Decision:
    """The seed rule: cheapest model that can take ``complexity`` within the caller's limits,
    else the most capable model. Disabled models never route. Raises ValueError if none is enabled."""
    enabled = [m for m in models if m.enabled]
    if not enabled:
        raise ValueError("no enabled model")
    candidates = sorted(
        (
            m
            for m in enabled
            if m.max_complexity >= complexity
            and m.avg_latency_ms <= constraints.max_latency_ms
            and m.cost_per_1k_tokens <= constraints.max_cost_per_1k
        ),
        key=cheapest_first,
    )
    if candidates:
        chosen = candidates[0]
        reason = (
            f"cheapest of {len(candidates)} model(s) with max_complexity >= {complexity:.3f}"
            f" within the constraints (${chosen.cost_per_1k_tokens}/1k)"
        )
        return Decision(chosen, tuple(candidates), reason)
    chosen = most_capable(enabled)
    reason = (
        f"no model meets complexity {complexity:.3f} and the constraints; "
        f"using the most capable model (max_complexity {chosen.max_complexity})"
    )
    return Decision(chosen, (), reason)


def fallback_chain(
    models: Sequence[ModelConfig],
    decision: Decision,
    complexity: float,
    constraints: Constraints,
    allow_outside_constraints: bool = False,
) -> list[ModelConfig]:
    """The order to try models in when one fails.

    1. the decision, then the other candidates, cheapest first (they can take the query within limits);
    2. with ``allow_outside_constraints``: capable models outside the caller's limits, cheapest first;
    3. a degraded answer beats none: less capable models within the limits, most capable first;
    4. with ``allow_outside_constraints``: everything else, most capable first.
    """
    enabled = [m for m in models if m.enabled]
    chain = [decision.model, *(m for m in decision.candidates if m is not decision.model)]
    by_cost = sorted(enabled, key=cheapest_first)
    by_capability = sorted(enabled, key=most_capable_first)
    tiers = []
    if allow_outside_constraints:
        tiers.append([m for m in by_cost if m.max_complexity >= complexity])
    tiers.append([m for m in by_capability if _within(m, constraints)])
    if allow_outside_constraints:
        tiers.append(by_capability)
    seen = {m.name for m in chain}  # names are unique; comparing pydantic models field by field is slow
    for tier in tiers:
        for m in tier:
            if m.name not in seen:
                seen.add(m.name)
                chain.append(m)
    return chain


def larger_context(
    models: Sequence[ModelConfig],
    failed: ModelConfig,
    constraints: Constraints,
    allow_outside_constraints: bool = False,
) -> list[ModelConfig]:
    """Models with a larger context window than ``failed``, cheapest first (for context-length errors)."""
    window = failed.context_window or 0
    return sorted(
        (
            m
            for m in models
            if m.enabled
            and m is not failed
            and (m.context_window or 0) > window
            and (allow_outside_constraints or _within(m, constraints))
        ),
        key=cheapest_first,
    )


def _within(m: ModelConfig, constraints: Constraints) -> bool:
    return (
        m.avg_latency_ms <= constraints.max_latency_ms and m.cost_per_1k_tokens <= constraints.max_cost_per_1k
    )
