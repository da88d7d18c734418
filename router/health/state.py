"""Deployment health as a pure state machine: Retry-After cooldowns, a circuit breaker and a
remaining-capacity hint per backend (a model's name when it has one backend, else
``router.pipeline.backends.backend_key``).

No I/O and no event loop: every rule is a method on a board with an injectable clock, so the rules are
tested exhaustively on a fake clock. ``router.health.shared`` adds the sync with other instances.

Every expiry is an absolute wall-clock time (epoch seconds), so a row another instance wrote means the
same moment here; a new failure moves a cooldown later, never earlier.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
    # What the backend's last response said it had left (x-ratelimit-remaining-*), until its window
    # resets (``hint_until``, epoch seconds); ``hint_at`` orders observations from several instances.
    hint_tokens: int | None = None
    hint_requests: int | None = None
    hint_until: float = 0.0
    hint_at: float = 0.0
    hint_shared_at: float = -math.inf
    # Requests sent and not yet answered: ticket -> their token estimate (see ``reserve``).
    inflight: dict[int, int] = field(default_factory=dict)


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
        window_s: float = 60.0,
        share_below_tokens: int = 0,
    ) -> None:
        self._states: dict[str, ModelHealth] = {}
        self._circuit_failures = circuit_failures
        self._circuit_open_s = circuit_open_s
        self._default_cooldown_s = default_cooldown_s
        self._max_cooldown_s = max_cooldown_s
        self.refresh_s = refresh_s  # how often the shared table is merged (used by SharedHealth)
        self.clock = clock
        self._window_s = window_s  # a rate-limit window when the response names no reset time
        self._share_below_tokens = share_below_tokens
        self._tickets = 0

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

    def available(self, name: str) -> bool:
        """Would ``try_acquire`` let a request through? (A question only: no probe is taken.)"""
        state = self._states.get(name)
        if state is None:
            return True
        if state.cooldown_until > self.clock():
            return False
        return not (state.circuit_open and state.probing)

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

    # -- remaining-capacity hints ---------------------------------------------------------------
    def has_capacity(self, name: str, demand_tokens: int) -> bool:
        """False while the last response said fewer tokens than ``demand_tokens`` or no requests are
        left, until that window resets."""
        state = self._states.get(name)
        if state is None or state.hint_until <= self.clock():
            return True
        if state.hint_requests is not None and state.hint_requests <= 0:
            return False
        return state.hint_tokens is None or state.hint_tokens >= demand_tokens

    def hint_tokens(self, name: str) -> float:
        """The live hint's remaining tokens (infinite when there is none)."""
        state = self._states.get(name)
        if state is None or state.hint_until <= self.clock() or state.hint_tokens is None:
            return math.inf
        return float(state.hint_tokens)

    def reserve(self, name: str, demand_tokens: int) -> int:
        """A request is being sent: it spends from a live hint, so concurrent requests do not all count
        on the same remaining tokens, and it is in flight until ``observe`` or ``release`` with the
        returned ticket."""
        state = self._state(name)
        self._tickets += 1
        state.inflight[self._tickets] = demand_tokens
        if state.hint_until > self.clock():
            if state.hint_tokens is not None:
                state.hint_tokens -= demand_tokens
            if state.hint_requests is not None:
                state.hint_requests -= 1
        return self._tickets

    def release(self, name: str, ticket: int) -> None:
        state = self._states.get(name)
        if state is not None:
            state.inflight.pop(ticket, None)

    def observe(
        self,
        name: str,
        remaining_tokens: int | None,
        remaining_requests: int | None,
        reset_s: float | None = None,
        ticket: int | None = None,
    ) -> bool:
        """Take a response's remaining tokens/requests as the backend's hint until ``reset_s`` from now
        (else the assumed window). The counts were taken when Azure admitted the request (``ticket``):
        the requests sent after it and still in flight are not in them yet, so they are taken off.
        True when it is worth telling other instances: the backend is nearly out (no requests, or fewer
        tokens than ``share_below_tokens``), at most once per refresh."""
        state = self._state(name)
        if ticket is not None:
            state.inflight.pop(ticket, None)
        if remaining_tokens is None and remaining_requests is None:
            return False
        later = [d for t, d in state.inflight.items() if ticket is None or t > ticket]
        if remaining_tokens is not None:
            remaining_tokens -= sum(later)
        if remaining_requests is not None:
            remaining_requests -= len(later)
        now = self.clock()
        wait = self._window_s if reset_s is None else min(reset_s, self._max_cooldown_s)
        state.hint_tokens, state.hint_requests = remaining_tokens, remaining_requests
        state.hint_until, state.hint_at = now + wait, now
        low = (remaining_requests is not None and remaining_requests <= 0) or (
            remaining_tokens is not None and remaining_tokens < self._share_below_tokens
        )
        if low and now - state.hint_shared_at >= self.refresh_s:
            state.hint_shared_at = now
            return True
        return False

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
        if code == "deployment_not_found":  # retrying will not create it: open at once, probe later
            state.failures = max(state.failures, self._circuit_failures)
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
        for row in rows:
            self._merge_hint(row, now, latest)

    def _merge_hint(self, row: Mapping[str, Any], now: float, latest: float) -> None:
        """A capacity hint another instance shared applies when it is newer than ours and still live."""
        name = str(row.get("RowKey", ""))
        try:
            until, at = float(row.get("hint_until", 0.0)), float(row.get("hint_at", 0.0))
        except (TypeError, ValueError):
            return
        if not name or not (math.isfinite(until) and math.isfinite(at)) or not now < until <= latest:
            return
        state = self._state(name)
        if at > state.hint_at:
            state.hint_tokens = _int_or_none(row.get("hint_tokens"))
            state.hint_requests = _int_or_none(row.get("hint_requests"))
            state.hint_until, state.hint_at = until, at

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

    def capacity(self) -> dict[str, dict[str, Any]]:
        """The live capacity hints (for /api/health)."""
        now = self.clock()
        return {
            name: {
                "remaining_tokens": s.hint_tokens,
                "remaining_requests": s.hint_requests,
                "resets_in_s": round(s.hint_until - now, 3),
            }
            for name, s in self._states.items()
            if s.hint_until > now
        }


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, tuple):  # an Int64 EntityProperty
        value = value[0]
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
