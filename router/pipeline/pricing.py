"""What a call cost, and what it would have cost on the baseline model. Pure arithmetic.

Token types, as Azure OpenAI bills them: prompt tokens served from the prompt cache
(``usage.prompt_tokens_details.cached_tokens``) at the cached input price, the rest of the prompt at the
input price, and every completion token (hidden reasoning tokens included: ``completion_tokens`` counts
them) at the output price.
"""

from __future__ import annotations

from router.models.config import ModelConfig

# Sub-micro-dollar precision: rounding here keeps stored records and sums free of float noise.
_DIGITS = 10


def _cached(prompt_tokens: int, cached_tokens: int) -> int:
    return min(max(cached_tokens, 0), max(prompt_tokens, 0))


def call_cost(
    model: ModelConfig, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0
) -> float:
    """Uncached prompt × input + cached × cached input + completion (reasoning included) × output."""
    cached = _cached(prompt_tokens, cached_tokens)
    cost = (
        (prompt_tokens - cached) / 1000 * model.input_price
        + cached / 1000 * model.cached_input_price
        + completion_tokens / 1000 * model.output_price
    )
    return round(cost, _DIGITS)


def cache_savings(model: ModelConfig, prompt_tokens: int, cached_tokens: int) -> float:
    """What the prompt cache saved on this call: its cached tokens at the input minus the cached price."""
    cached = _cached(prompt_tokens, cached_tokens)
    return round(cached / 1000 * (model.input_price - model.cached_input_price), _DIGITS)
