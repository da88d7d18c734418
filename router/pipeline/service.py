"""The pipeline behind every endpoint: plan (classify → route) → execute → record.

``RouterService`` holds the request path's long-lived parts (catalogue, classifier, upstream client,
health board, cost recorder) and runs the stages; the stages themselves live in their own modules.
``route`` is the whole flow for ``/api/route``; the chat API calls the same ``plan``, ``execute`` and
``record`` around its own request and response shapes.

Budgets and rate limits hook in here, once for every endpoint: ``plan`` admits the request (reserves
its worst case, ``router.pipeline.admission``) before any upstream call, the judge's included; the cost
record settles it (``record``/``submit``), and a request that ends without one releases it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from router.callers.identity import ANONYMOUS, Caller
from router.chat.conversation import estimate_prompt_tokens
from router.errors import CatalogUnavailable, ExecutionFailed, NoModelsError
from router.health import SharedHealth
from router.pipeline.admission import prompt_upper_bound
from router.pipeline.classify import Classification, Classifier
from router.pipeline.execute import Attempt, Deadline, Execution, ExecutionPolicy, execute
from router.pipeline.plan import Ask, Plan, PlanRequest, downgraded_plan, make_plan
from router.pipeline.record import Outcome, cost_record
from router.upstream.endpoints import endpoint_for
from router.upstream.usage import TokenUsage

if TYPE_CHECKING:
    from router.classifiers import Scorer
    from router.costs.recorder import CostRecorder
    from router.costs.records import CostRecord
    from router.models.catalog import ModelCatalog
    from router.models.config import ModelConfig
    from router.pipeline.admission import Admission
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
        admission: Admission | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.clients = clients
        self.recorder = recorder
        self.health = health or SharedHealth.from_settings(settings)
        self.classifier = Classifier(settings, scorer, clients, self.health)
        self.policy = ExecutionPolicy(self.health, settings.ATTEMPT_TIMEOUT_S, settings.AZURE_OPENAI_ENDPOINT)
        self.admission = admission  # None: no budgets or rate limits (benchmarks, tools)

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
    async def plan(self, request: PlanRequest, deadline: Deadline, *, admit: bool = True) -> Plan:
        """The plan, admitted (``admit``) against the caller's budgets and rate limit: a 429 here is
        answered before any upstream call; from here on the reservation is settled or released."""
        models = await self.models()
        if not admit or self.admission is None:
            return await make_plan(request, models, self.classifier, deadline)
        admitted = await self.admission.admit(request, models, self.classifier.judge_model(models))
        try:
            if admitted.downgrade is not None:
                plan = downgraded_plan(request, admitted.downgrade, models, self.classifier)
            else:
                plan = await make_plan(request, models, self.classifier, deadline)
        except BaseException:
            self.admission.release(admitted.reservation)
            raise
        return replace(plan, reservation=admitted.reservation) if admitted.reservation else plan

    def release(self, plan: Plan) -> None:
        """The request ends without a cost record (refused before a call, cancelled): nothing spent."""
        if self.admission is not None:
            self.admission.release(plan.reservation)

    def _settle(self, plan: Plan, rec: CostRecord) -> None:
        if self.admission is not None and plan.reservation is not None:
            cost = rec.cost_usd + rec.classifier_cost_usd
            self.admission.settle(plan.reservation, cost, rec.prompt_tokens + rec.completion_tokens)

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
            try:
                await self.record_failure(
                    plan, failure, request_id=request_id, api=api, deadline=deadline, too_large=too_large
                )
            finally:
                self.release(plan)  # a no-op once the failure's record settled it
            raise failure.error from None
        except BaseException:  # cancelled (the caller went away) or a bug: the reservation must not leak
            self.release(plan)
            raise

    async def record(self, plan: Plan, outcome: Outcome) -> CostRecord:
        rec = cost_record(plan, outcome)
        self._settle(plan, rec)
        await self.recorder.record(rec)
        return rec

    def submit(self, plan: Plan, outcome: Outcome) -> None:
        """``record`` without a suspension point: safe in a cancelled task's cleanup (a stream whose
        caller went away)."""
        rec = cost_record(plan, outcome)
        self._settle(plan, rec)
        self.recorder.submit(rec)

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
        messages = [{"role": "user", "content": query}]
        ask = Ask(prompt_upper_bound(messages), rate_tokens=estimate_prompt_tokens(messages))
        request = PlanRequest(query, constraints, allow_outside_constraints, caller=caller, ask=ask)
        plan = await self.plan(request, deadline)

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
