"""What an Azure OpenAI response says about its deployment's capacity, and which deployment answered.

Azure sends ``x-ratelimit-remaining-tokens`` and ``x-ratelimit-remaining-requests`` on every answer (the
tokens and requests the deployment still takes in the current window; tokens are counted as Azure's
estimate, prompt + ``max_tokens``). It may send ``x-ratelimit-reset-tokens`` / ``-requests`` (seconds, or
an OpenAI-style duration such as ``1m30s`` or ``250ms``); without them the window is assumed to be
``RATELIMIT_WINDOW_S``. With spillover, ``x-ms-deployment-name`` names the deployment that answered and
``x-ms-spillover-from-deployment`` the one it spilled from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

SPILLOVER_HEADER = "x-ms-spillover-deployment"  # request: the standard deployment Azure may spill to
DEPLOYMENT_NAME_HEADER = "x-ms-deployment-name"  # response: the deployment that answered
SPILLOVER_FROM_HEADER = "x-ms-spillover-from-deployment"  # response: set when the answer spilled over

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class RateLimits:
    remaining_tokens: int | None
    remaining_requests: int | None
    reset_s: float | None  # the later of the two resets, when Azure sent one
    deployment: str | None  # x-ms-deployment-name
    spilled_from: str | None  # x-ms-spillover-from-deployment


def read_limits(headers: Any) -> RateLimits:
    """The capacity headers of a response (any case-insensitive mapping: httpx or aiohttp headers)."""
    resets = [_duration(headers.get(h)) for h in ("x-ratelimit-reset-tokens", "x-ratelimit-reset-requests")]
    known = [r for r in resets if r is not None]
    return RateLimits(
        remaining_tokens=_count(headers.get("x-ratelimit-remaining-tokens")),
        remaining_requests=_count(headers.get("x-ratelimit-remaining-requests")),
        reset_s=max(known) if known else None,
        deployment=headers.get(DEPLOYMENT_NAME_HEADER) or None,
        spilled_from=headers.get(SPILLOVER_FROM_HEADER) or None,
    )


def _count(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _duration(raw: str | None) -> float | None:
    """Seconds from ``"12"``, ``"12.5"``, ``"1m30s"``, ``"250ms"``; None for anything else."""
    if raw is None:
        return None
    text = raw.strip()
    try:
        value = float(text)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u] for n, u in parts)
