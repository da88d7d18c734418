"""The pipeline behind every endpoint: plan (classify → route) → execute → record.

``RouterService`` holds the request path's long-lived parts (catalogue, classifier, upstream client,
health board, cost recorder) and runs the stages; the stages themselves live in their own modules.
``route`` is the whole flow for ``/api/route``; the chat API calls the same ``plan``, ``execute`` and
``record`` around its own request and response shapes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from router.callers.identity import ANONYMOUS, Caller
from router.chat.conversation import estimate_prompt_tokens
from router.errors import CatalogUnavailable, ExecutionFailed, NoModelsError
from router.health import SharedHealth
from router.pipeline.classify import Classification, Classifier
from router.pipeline.execute import Attempt, Deadline, Execution, ExecutionPolicy, execute
from router.pipeline.plan import Plan, PlanRequest, make_plan
from router.pipeline.record import Outcome, cost_record
from router.upstream.endpoints import endpoint_for
from router.upstream.usage import TokenUsage

if TYPE_CHECKING:
    from router.classifiers import Scorer
    from router.costs.recorder import CostRecorder
    from router.costs.records import CostRecord
    from router.models.catalog import ModelCatalog
    from router.models.config import ModelConfig
    from router.pipeline.backends import Target
    from router.pipeline.judge import ScoreCache
    from router.pipeline.route import Constraints
    from router.settings import Settings
    from router.upstream import UpstreamClient

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RouteResult:
    text: str
    plan: Plan
    model: ModelConfig
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    fallbacks: list[Attempt]

    @property
    def classification(self) -> Classification:
        return self.plan.classification


class RouterService:
    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        scorer: Scorer,
        clients: UpstreamClient,
        recorder: CostRecorder,
        health: SharedHealth | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.clients = clients
        self.recorder = recorder
        self.health = health or SharedHealth.from_settings(settings)
        self.classifier = Classifier(settings, scorer, clients, self.health)
        self.policy = ExecutionPolicy(self.health, settings.ATTEMPT_TIMEOUT_S, settings.AZURE_OPENAI_ENDPOINT)

    @property
    def scorer(self) -> Scorer:
        return self.classifier.scorer

    @property
    def judge_cache(self) -> ScoreCache:
        return self.classifier.judge_cache

    async def models(self) -> tuple[ModelConfig, ...]:
        try:
            return await self.catalog.models()
        except CatalogUnavailable as exc:
            raise NoModelsError(str(exc)) from None

    def deadline(self, constraints: Constraints) -> Deadline:
        return Deadline.for_request(self.settings.REQUEST_TIMEOUT_S, constraints)

    def endpoint_for(self, model: ModelConfig) -> str:
        return endpoint_for(model, self.settings)

    # -- the stages ---------------------------------------------------------------------------
    async def plan(self, request: PlanRequest, deadline: Deadline) -> Plan:
        return await make_plan(request, await self.models(), self.classifier, deadline)

    async def execute(
        self,
        plan: Plan,
        call: Callable[[Target, float], Awaitable[T]],
        deadline: Deadline,
        *,
        request_id: str,
        api: str,
        too_large: TokenUsage | None = None,
    ) -> Execution[T]:
        """Run the plan's chain. When every attempt fails, the failure is recorded (if it cost anything)
        and its ``RouterError`` raised for the caller; ``too_large`` is the usage to record for an answer
        refused unread for its size, and also the request's token estimate a backend must have left."""
        demand = too_large.prompt_tokens + too_large.completion_tokens if too_large else 0
        try:
            return await execute(
                plan.chain, call, deadline, self.policy, models=plan.routable or plan.models,
                constraints=plan.constraints,
                allow_outside_constraints=plan.allow_outside_constraints, demand_tokens=demand,
            )  # fmt: skip
        except ExecutionFailed as failure:
            await self.record_failure(
                plan, failure, request_id=request_id, api=api, deadline=deadline, too_large=too_large
            )
            raise failure.error from None

    async def record(self, plan: Plan, outcome: Outcome) -> CostRecord:
        rec = cost_record(plan, outcome)
        await self.recorder.record(rec)
        return rec

    def submit(self, plan: Plan, outcome: Outcome) -> None:
        """``record`` without a suspension point: safe in a cancelled task's cleanup (a stream whose
        caller went away)."""
        self.recorder.submit(cost_record(plan, outcome))

    async def record_failure(
        self,
        plan: Plan,
        failure: ExecutionFailed,
        *,
        request_id: str,
        api: str,
        deadline: Deadline,
        too_large: TokenUsage | None = None,
    ) -> None:
        """A failed request is recorded when it cost something: a call reached a model, or the judge
        was paid for. An answer dropped for its size was generated and billed, but its usage was never
        read: it is recorded with ``too_large``, the caller's estimate (flagged as one)."""
        if failure.failed or plan.classification.judge_cost_usd:
            code = failure.stored_error_code
            usage = too_large if code == "response_too_large" and too_large else TokenUsage(0, 0)
            outcome = Outcome(
                request_id=request_id, api=api, model=failure.model, latency_ms=deadline.elapsed_ms(),
                failed=failure.failed, prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens, error_code=code, usage_estimated=usage.estimated,
            )  # fmt: skip
            await self.record(plan, outcome)

    # -- the flows ------------------------------------------------------------------------------
    async def route(
        self,
        query: str,
        constraints: Constraints,
        request_id: str,
        allow_outside_constraints: bool = False,
        caller: Caller = ANONYMOUS,
    ) -> RouteResult:
        deadline = self.deadline(constraints)
        request = PlanRequest(query, constraints, allow_outside_constraints, caller=caller)
        plan = await self.plan(request, deadline)
        messages = [{"role": "user", "content": query}]

        async def call(target: Target, timeout_s: float) -> Any:
            model = target.model  # as the chosen backend serves it
            return await self.clients.chat(self.endpoint_for(model), model.deployment, messages, timeout_s,
                                           headers=target.headers, on_headers=target.on_headers)  # fmt: skip

        # Too large to read: priced at the prompt's estimate and the longest output allowed.
        limit = TokenUsage(estimate_prompt_tokens(messages), self.settings.MAX_OUTPUT_TOKENS, True)
        execution = await self.execute(
            plan, call, deadline, request_id=request_id, api="route", too_large=limit
        )
        completion = execution.result
        latency_ms = deadline.elapsed_ms()
        outcome = Outcome(
            request_id=request_id, api="route", model=execution.model, latency_ms=latency_ms,
            failed=execution.failed, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, usage_estimated=completion.usage_estimated,
            cached_tokens=completion.cached_tokens, reasoning_tokens=completion.reasoning_tokens,
        )  # fmt: skip
        rec = await self.record(plan, outcome)
        return RouteResult(
            text=completion.text, plan=plan, model=execution.model, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, cost_usd=rec.cost_usd, latency_ms=latency_ms,
            fallbacks=execution.failed,
        )  # fmt: skip
