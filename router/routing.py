"""The routing policy: pure, so it can be tested exhaustively and reused by calibration and reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from router.model_config import ModelConfig


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
    return min(models, key=lambda m: (-m.max_complexity, m.cost_per_1k_tokens, m.name))


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
        key=lambda m: (m.cost_per_1k_tokens, m.name),
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
