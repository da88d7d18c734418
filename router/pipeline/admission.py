"""Admission: before a request's first upstream call, charge the caller's rate limit and reserve its
worst-case cost on the caller's and the team's budgets; when it ends, settle both to the cost record.

The worst case is one call (a cost record prices exactly one answering call, plus the judge) at the
priciest model the request may reach (the pinned model, or every model it may be routed or fall back
to), with the prompt counted at its UTF-8 size in bytes (a token is at least one byte, so this bounds
any tokenizer) plus ``IMAGE_TOKENS`` per image, and the output at the request's own limit, else the
model's ``max_output_tokens``, else ``MAX_OUTPUT_TOKENS`` (times ``n``), plus the judge's worst case
when it may be asked. Over budget, a caller with ``on_budget: downgrade`` gets the cheapest model whose
worst case fits, or the 429 when none does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from router.callers.budgets import seconds_to_reset, to_pico, usd
from router.callers.ledger import Refusal, Reservation
from router.callers.rate_limit import TokenRateLimiter
from router.errors import BudgetExceeded
from router.models.config import cheapest_first
from router.pipeline import pricing
from router.pipeline.capabilities import capable
from router.pipeline.classify import JUDGE_PARAMS
from router.pipeline.judge import judge_messages
from router.pipeline.plan import Ask

if TYPE_CHECKING:
    from router.callers.ledger import Budget, BudgetLedger
    from router.models.config import ModelConfig
    from router.pipeline.plan import PlanRequest
    from router.settings import Settings

IMAGE_TOKENS = 1600  # a high-detail image's largest charge, rounded up
_MESSAGE_OVERHEAD = 4  # tokens per message (role, separators), as the estimator counts them


def prompt_upper_bound(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> int:
    """At least as many tokens as any tokenizer makes of the prompt: one per UTF-8 byte."""
    total = 3
    for m in messages:
        total += _MESSAGE_OVERHEAD
        if m.get("tool_calls"):
            total += len(json.dumps(m["tool_calls"], ensure_ascii=False).encode())
        content = m.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, str):
                total += len(part.encode())
            elif isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image"):
                total += IMAGE_TOKENS
            elif isinstance(part, Mapping):
                total += len(json.dumps(part, ensure_ascii=False).encode())
    if tools:
        total += len(json.dumps(tools, ensure_ascii=False).encode())
    return total


def call_worst_case(model: ModelConfig, ask: Ask, settings: Settings) -> float:
    output = ask.output_tokens or model.max_output_tokens or settings.MAX_OUTPUT_TOKENS
    return pricing.call_cost(model, ask.prompt_tokens, output * max(1, ask.choices))


def judge_worst_case(judge: ModelConfig | None, text: str) -> float:
    if judge is None:
        return 0.0
    prompt = prompt_upper_bound(judge_messages(text, tag="request-0000000000000000"))
    return pricing.call_cost(judge, prompt, JUDGE_PARAMS["max_tokens"])


def reachable(request: PlanRequest, models: tuple[ModelConfig, ...]) -> tuple[ModelConfig, ...]:
    """Every model the request may be answered by: the pinned one, or those with its capabilities."""
    if request.pinned is not None:
        return tuple(m for m in models if m.name == request.pinned)
    return capable(models, request.needs)


def worst_case(request: PlanRequest, models: tuple[ModelConfig, ...], judge: ModelConfig | None,
               settings: Settings) -> float:  # fmt: skip
    """The most the request can cost: its priciest reachable model, plus the judge unless pinned."""
    candidates = reachable(request, models)
    if not candidates:
        return 0.0  # planning answers 4xx before any call
    call = max(call_worst_case(m, request.ask, settings) for m in candidates)
    judged = request.pinned is None and settings.JUDGE_ENABLED
    return call + (judge_worst_case(judge, request.text) if judged else 0.0)


def cheapest_fitting(request: PlanRequest, models: tuple[ModelConfig, ...], settings: Settings
                     ) -> tuple[ModelConfig, float] | None:  # fmt: skip
    """The auto-routed request's cheapest model (by its worst case) that can take it, with that cost."""
    if request.pinned is not None:
        return None  # the caller chose the model: over budget is a 429, not a different model
    needed = request.context_tokens
    fitting = [
        m for m in reachable(request, models) if m.context_window is None or m.context_window >= needed
    ]
    if not fitting:
        return None
    costs = sorted(((call_worst_case(m, request.ask, settings), cheapest_first(m), m) for m in fitting),
                   key=lambda t: (t[0], t[1]))  # fmt: skip
    return costs[0][2], costs[0][0]


@dataclass(frozen=True, slots=True)
class Admitted:
    reservation: Reservation | None = None
    downgrade: ModelConfig | None = None  # over budget: the model that answers instead


NOT_BUDGETED = Admitted()


class Admission:
    def __init__(self, ledger: BudgetLedger, limiter: TokenRateLimiter, settings: Settings) -> None:
        self.ledger = ledger
        self.limiter = limiter
        self.settings = settings

    async def admit(
        self, request: PlanRequest, models: tuple[ModelConfig, ...], judge: ModelConfig | None
    ) -> Admitted:
        caller = request.caller
        limits, _ = await self.ledger.lookup(caller)
        minute = ""
        if limits.tpm is not None:
            minute = self.limiter.admit(caller.id, limits.tpm, request.ask.rate_tokens)
        try:
            admitted = await self._reserve(request, models, judge)
        except BaseException:
            if minute:
                self.limiter.adjust(caller.id, minute, -request.ask.rate_tokens)
            raise
        if minute:
            reservation = admitted.reservation or Reservation([], 0, 0.0)
            reservation.tokens, reservation.minute, reservation.caller = (
                request.ask.rate_tokens,
                minute,
                caller.id,
            )
            admitted = Admitted(reservation, admitted.downgrade)
        return admitted

    async def _reserve(
        self, request: PlanRequest, models: tuple[ModelConfig, ...], judge: ModelConfig | None
    ) -> Admitted:
        budgets = await self.ledger.budgets(request.caller)
        if not budgets:
            return NOT_BUDGETED
        amount = to_pico(worst_case(request, models, judge, self.settings))
        hold_for = self.settings.REQUEST_TIMEOUT_S + 60  # past it, the request cannot be running
        got = await self.ledger.reserve(budgets, amount, hold_for)
        if isinstance(got, Reservation):
            return Admitted(got)
        if self._downgrades(request, got):
            cheapest = cheapest_fitting(request, models, self.settings)
            if cheapest is not None and to_pico(cheapest[1]) < amount:
                smaller = await self.ledger.reserve(budgets, to_pico(cheapest[1]), hold_for)
                if isinstance(smaller, Reservation):
                    return Admitted(smaller, cheapest[0])
                got = smaller
        raise _exceeded(got, amount, self.ledger.now())

    def _downgrades(self, request: PlanRequest, refusal: Refusal) -> bool:
        """Downgrade when the caller's own limits say so, or the exhausted budget's do."""
        own = self.ledger.cached_limits("caller", request.caller.id)
        return "downgrade" in (own.on_budget, refusal.budget.limits.on_budget)

    def settle(self, reservation: Reservation | None, cost_usd: float, tokens: int) -> None:
        """The request ended: its recorded cost replaces the reservation; its tokens the charge."""
        if reservation is None or reservation.settled:
            return
        if reservation.minute:
            self.limiter.adjust(reservation.caller, reservation.minute, tokens - reservation.tokens)
        self.ledger.settle(reservation, to_pico(cost_usd))

    async def close(self) -> None:
        """Shutdown: settlements finish, and this instance's token counts reach the table."""
        await self.ledger.drain()
        await self.limiter.close()

    def release(self, reservation: Reservation | None) -> None:
        """The request ended without a paid call: nothing spent, nothing charged."""
        self.settle(reservation, 0.0, 0)


_ADJECTIVE = {"day": "daily", "month": "monthly"}


def _exceeded(refusal: Refusal, amount: int, now: datetime) -> BudgetExceeded:
    budget: Budget = refusal.budget
    ex = refusal.exhausted
    retry = seconds_to_reset(now, ex.period)
    message = (f"the {budget.scope} {budget.name!r} has ${ex.remaining_usd:.6f} left of its "
               f"{_ADJECTIVE[ex.period]} budget of ${ex.limit_usd:g}; this request may cost up to "
               f"${usd(amount):.6f}")  # fmt: skip
    details = {"scope": budget.scope, "period": ex.period, "limit_usd": ex.limit_usd,
               "remaining_usd": ex.remaining_usd, "reservation_usd": usd(amount)}  # fmt: skip
    return BudgetExceeded(message, retry_after_s=retry, details=details)
