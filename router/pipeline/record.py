"""Record: the cost record of one outcome, priced here, for every call that reached a model.

Every endpoint builds its record through ``cost_record``: what was called, the tokens it used, what
that cost, what the most capable model would have cost for the same tokens (the baseline of the
savings report), and the attempts that failed before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from router.costs.records import CostRecord
from router.pipeline import pricing
from router.pipeline.affinity import route_reason
from router.pipeline.route import most_capable

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.pipeline.execute import Attempt
    from router.pipeline.plan import Plan


@dataclass(frozen=True, slots=True)
class Outcome:
    request_id: str
    api: str  # "route" or "chat"
    model: ModelConfig  # the model that answered, or the last one tried
    latency_ms: float
    failed: list[Attempt] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_code: str | None = None  # None: the call succeeded
    usage_estimated: bool = False  # the token counts are estimates (usage missing or invalid)
    cached_tokens: int = 0  # of prompt_tokens, from the prompt cache
    reasoning_tokens: int = 0  # of completion_tokens, hidden reasoning


def cost_record(plan: Plan, outcome: Outcome) -> CostRecord:
    model, c = outcome.model, plan.classification
    baseline = most_capable(plan.models)
    # The baseline is priced with the same token types (cached, uncached, completion) on its own prices.
    tokens = (outcome.prompt_tokens, outcome.completion_tokens, outcome.cached_tokens)
    failed = outcome.failed
    return CostRecord(
        request_id=outcome.request_id,
        api=outcome.api,
        caller=plan.caller.id,
        team=plan.caller.team,
        model=model.name,
        deployment=model.deployment,
        endpoint=model.endpoint,
        provisioned=len(model.backends) == 1 and model.backends[0].provisioned,
        complexity=c.complexity,
        classifier=c.classifier,
        scorer=c.scorer or None,
        route_reason=route_reason(plan.route_reason, plan.chain[0].name, model.name),
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        cached_tokens=outcome.cached_tokens,
        reasoning_tokens=outcome.reasoning_tokens,
        cost_usd=pricing.call_cost(model, *tokens),
        cache_savings_usd=pricing.cache_savings(model, outcome.prompt_tokens, outcome.cached_tokens),
        classifier_model=c.judge_model,
        classifier_prompt_tokens=c.judge_prompt_tokens,
        classifier_completion_tokens=c.judge_completion_tokens,
        classifier_cost_usd=c.judge_cost_usd,
        baseline_model=baseline.name,
        baseline_cost_usd=pricing.call_cost(baseline, *tokens),
        latency_ms=round(outcome.latency_ms, 3),
        status="ok" if outcome.error_code is None else "error",
        error_code=outcome.error_code,
        fallbacks=len(failed),
        attempts=json.dumps([_attempt(a) for a in failed]) if failed else None,
        usage_estimated=outcome.usage_estimated or c.judge_usage_estimated,
    )


def _attempt(a: Attempt) -> dict[str, str]:
    out = {"model": a.model, "error_code": a.error_code}
    if a.deployment:
        out["deployment"] = a.deployment
    return out
