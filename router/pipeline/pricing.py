"""What a call cost, and what it would have cost on the baseline model. Pure arithmetic."""

from __future__ import annotations

from router.models.config import ModelConfig

# Sub-micro-dollar precision: rounding here keeps stored records and sums free of float noise.
_DIGITS = 10


def call_cost(model: ModelConfig, prompt_tokens: int, completion_tokens: int) -> float:
    cost = prompt_tokens / 1000 * model.input_price + completion_tokens / 1000 * model.output_price
    return round(cost, _DIGITS)
