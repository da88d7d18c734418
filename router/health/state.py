"""Deployment health as a pure state machine: Retry-After cooldowns and a circuit breaker per model.

No I/O and no event loop: every rule is a method on a board with an injectable clock, so the rules are
tested exhaustively on a fake clock. ``router.health.shared`` adds the sync with other instances.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Clocks of two instances may disagree by this much: a row another instance wrote at its cap is still
# within the cap here.
CLOCK_SKEW_S = 5.0


@dataclass
class ModelHealth:
    cooldown_until: float = 0.0  # wall-clock epoch seconds
    failures: int = 0
    circuit_open: bool = False
    probing: bool = False
    reason: str = ""


class HealthBoard:
    """What this instance knows about each model. Methods that change what other instances should
    know return True (the caller shares the model's state)."""

    def __init__(
        self,
        *,
        circuit_failures: int,
        circuit_open_s: float,
        default_cooldown_s: float,
        refresh_s: float = math.inf,
        clock: Callable[[], float] = time.time,
        max_cooldown_s: float = 300.0,
    ) -> None:
        self._states: dict[str, ModelHealth] = {}
        self._circuit_failures = circuit_failures
        self._circuit_open_s = circuit_open_s
        self._default_cooldown_s = default_cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self.refresh_s = refresh_s  # how often the shared table is merged (used by SharedHealth)
        self.clock = clock

    def _state(self, name: str) -> ModelHealth:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = ModelHealth()
        return state

    def get(self, name: str) -> ModelHealth | None:
        return self._states.get(name)

    # -- decisions (request path: memory only) -----------------------------------------------
    def cooldown_remaining(self, name: str) -> float:
        state = self._states.get(name)
        return 0.0 if state is None else max(0.0, state.cooldown_until - self.clock())

    def try_acquire(self, name: str) -> bool:
        """May a request be sent to ``name`` now? After an open circuit's period, exactly one probe
        is let through (half-open) until it succeeds or fails."""
        state = self._states.get(name)
        if state is None:
            return True
        if state.cooldown_until > self.clock():
            return False
        if state.circuit_open:
            if state.probing:
                return False
            state.probing = True
        return True

    def release_probe(self, name: str) -> None:
        """An acquired attempt that never ran (deadline passed first) gives its probe back."""
        state = self._states.get(name)
        if state is not None:
            state.probing = False

    def on_success(self, name: str) -> bool:
        """A success closes an open circuit (its half-open probe worked). It does not end a Retry-After
        cooldown: that may come from a 429 seen after this request started, here or on another
        instance, and it ends by itself."""
        state = self._states.get(name)
        if state is None:
            return False
        state.failures = 0
        state.probing = False
        if not state.circuit_open:
            return False
        state.circuit_open = False
        state.cooldown_until = 0.0
        state.reason = ""
        return True

    def on_failure(self, name: str, code: str, retry_after_s: float | None = None) -> bool:
        state = self._state(name)
        now = self.clock()
        state.probing = False
        if code == "http_429":
            wait = self._default_cooldown_s if retry_after_s is None else retry_after_s
            wait = min(wait, self._max_cooldown_s)
            state.cooldown_until = max(state.cooldown_until, now + wait)
            state.reason = f"429, cooldown {wait:.1f}s"
            return True
        state.failures += 1
        if state.circuit_open or state.failures >= self._circuit_failures:
            state.circuit_open = True
            state.cooldown_until = max(state.cooldown_until, now + self._circuit_open_s)
            state.reason = f"circuit open after {state.failures} failure(s), last {code}"
            return True
        return False

    def merge(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Merge shared rows (``RowKey`` = model, ``cooldown_until``, ``reason``): a cooldown another
        instance saw applies here too. A row expiring further ahead than ``max_cooldown_s`` no instance
        wrote (each caps its own), so it is ignored, not clamped: a clamp relative to now, re-applied
        on every refresh, would ban the model for as long as the row stays. An expired row counts for
        nothing."""
        now = self.clock()
        latest = now + self._max_cooldown_s + CLOCK_SKEW_S
        for row in rows:
            name = str(row.get("RowKey", ""))
            try:
                until = float(row.get("cooldown_until", 0.0))
            except (TypeError, ValueError):
                continue
            if not name or not math.isfinite(until) or not now < until <= latest:
                continue
            state = self._state(name)
            if until > state.cooldown_until:
                state.cooldown_until = until
                state.reason = str(row.get("reason", "shared cooldown"))

    def snapshot(self) -> dict[str, dict[str, Any]]:
        now = self.clock()
        return {
            name: {
                "cooldown_s": round(max(0.0, s.cooldown_until - now), 3),
                "circuit_open": s.circuit_open,
                "failures": s.failures,
                "reason": s.reason,
            }
            for name, s in self._states.items()
            if s.cooldown_until > now or s.failures or s.circuit_open
        }
