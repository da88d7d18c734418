"""What a call used, read defensively: the upstream's ``usage`` is data from the network, not a promise.

Each token count is coerced to an int >= 0 or treated as missing (not a number, null, negative, a bool,
a fraction, or too large for the record to store). A missing count is estimated from the text (prompt:
about 3.5 characters a token, leaning high; completion: 4 characters a token) and the result is flagged
``estimated``, so a paid call is never billed as $0 and never breaks the code that prices it.

The token-type details (``prompt_tokens_details.cached_tokens``, ``completion_tokens_details
.reasoning_tokens``) are coerced the same way and must fit inside their total (cached <= prompt,
reasoning <= completion, against the upstream's own count): anything else reads as 0, which prices the
call at the full input price, never below what it cost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router.chat.conversation import content_text


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False  # at least one count was missing or invalid and is an estimate
    cached_tokens: int = 0  # of prompt_tokens, served from the prompt cache (billed at the cached price)
    reasoning_tokens: int = 0  # of completion_tokens, hidden reasoning (billed as output)


# A count the cost record can store (Edm.Int32): anything larger is not a real call's usage.
MAX_TOKEN_COUNT = 2**31 - 1


def token_count(value: Any) -> int | None:
    """An int in 0..MAX_TOKEN_COUNT (an integral float counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= MAX_TOKEN_COUNT:
        return value
    return None


def completion_estimate(chars: int) -> int:
    return math.ceil(chars / 4)


def read_usage(usage: Any, prompt_estimate: int, completion_chars: int) -> TokenUsage:
    """The upstream's counts where valid, estimates where not (and then flagged)."""
    prompt = completion = None
    cached = reasoning = 0
    if isinstance(usage, Mapping):
        prompt = token_count(usage.get("prompt_tokens"))
        completion = token_count(usage.get("completion_tokens"))
        cached = _detail(usage, "prompt_tokens_details", "cached_tokens", prompt)
        reasoning = _detail(usage, "completion_tokens_details", "reasoning_tokens", completion)
    return TokenUsage(
        prompt_tokens=prompt_estimate if prompt is None else prompt,
        completion_tokens=completion_estimate(completion_chars) if completion is None else completion,
        estimated=prompt is None or completion is None,
        cached_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _detail(usage: Mapping[str, Any], group: str, key: str, total: int | None) -> int:
    """A count inside ``usage[group][key]`` that fits in ``total``; 0 when missing, invalid or larger
    (or when the total itself is missing: then nothing of it is known)."""
    details = usage.get(group)
    value = token_count(details.get(key)) if isinstance(details, Mapping) else None
    if value is None or total is None or value > total:
        return 0
    return value


def message_chars(message: Any) -> int:
    """Characters of generated output in a message or a stream delta: text, refusal, tool calls."""
    if not isinstance(message, Mapping):
        return 0
    chars = len(content_text(message.get("content")))
    refusal = message.get("refusal")
    if isinstance(refusal, str):
        chars += len(refusal)
    for key in ("tool_calls", "function_call"):
        if message.get(key):
            chars += len(json.dumps(message[key], separators=(",", ":")))
    return chars


def reply_chars(payload: Any, key: str = "message") -> int:
    """Generated characters over every choice of a chat.completion (``key="delta"``: of a chunk)."""
    choices = payload.get("choices") if isinstance(payload, Mapping) else None
    if not isinstance(choices, list):
        return 0
    return sum(message_chars(c.get(key)) for c in choices if isinstance(c, Mapping))
