"""Per-deployment rate limits for the simulator, the way Azure enforces a deployment's quota.

A deployment with a ``Quota`` admits a request when its estimate (prompt tokens + ``max_tokens``, as Azure
counts it at admission) fits in what is left of the current fixed window, else the simulator answers 429
with ``retry-after-ms`` until the window resets. Every answer reports ``x-ratelimit-remaining-tokens`` and
``x-ratelimit-remaining-requests`` like Azure; ``send_reset`` adds ``x-ratelimit-reset-tokens`` /
``-requests`` (seconds), which Azure does not document, so tests can run with and without it. The
window is a minute unless scaled down (load runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Quota:
    tokens: int  # per window
    requests: int | None = None  # per window; None: no request limit
    window_s: float = 60.0
    send_reset: bool = False
    clock: Callable[[], float] = time.monotonic
    used_tokens: int = 0
    used_requests: int = 0
    refused: int = 0  # 429s it caused
    history: list[int] = field(default_factory=list)  # tokens admitted in each closed window
    _start: float | None = None

    def _roll(self, now: float) -> None:
        if self._start is None:
            self._start = now
        while now - self._start >= self.window_s:
            self.history.append(self.used_tokens)
            self.used_tokens = self.used_requests = 0
            self._start += self.window_s

    def admit(self, estimate: int) -> bool:
        now = self.clock()
        self._roll(now)
        over_requests = self.requests is not None and self.used_requests + 1 > self.requests
        if over_requests or self.used_tokens + estimate > self.tokens:
            self.refused += 1
            return False
        self.used_tokens += estimate
        self.used_requests += 1
        return True

    def reset_in(self) -> float:
        now = self.clock()
        self._roll(now)
        assert self._start is not None
        return max(0.0, self._start + self.window_s - now)

    def headers(self) -> dict[str, str]:
        out = {"x-ratelimit-remaining-tokens": str(max(0, self.tokens - self.used_tokens))}
        if self.requests is not None:
            out["x-ratelimit-remaining-requests"] = str(max(0, self.requests - self.used_requests))
        if self.send_reset:
            reset = f"{self.reset_in():.3f}"
            out["x-ratelimit-reset-tokens"] = out["x-ratelimit-reset-requests"] = reset
        return out

    def refusal_headers(self) -> dict[str, str]:
        return {**self.headers(), "retry-after-ms": str(max(1, round(self.reset_in() * 1000)))}
