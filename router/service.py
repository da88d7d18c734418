"""classify → route → execute → record: the request path, independent of HTTP.

``execute`` owns the retry policy (the SDK's retries are off): it walks the fallback chain, skips
deployments that are cooling down, respects the request's deadline, and reports what failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from router import pricing
from router.catalog import CatalogUnavailable, ModelCatalog
from router.cost_records import CostRecord, CostRecorder
from router.errors import NoModelsError, RouterError, UpstreamError, UpstreamTimeout
from router.health import HealthBoard, retry_after_seconds
from router.judge import ScoreCache, judge_messages, parse_score
from router.routing import Constraints, Decision, choose, fallback_chain, larger_context, most_capable

if TYPE_CHECKING:
    from router.classifiers import Scorer
    from router.llm import OpenAIClients
    from router.model_config import ModelConfig
    from router.settings import Settings

log = logging.getLogger("router")
T = TypeVar("T")

RETRYABLE_STATUS = {408, 429}


@dataclass(frozen=True, slots=True)
class Classification:
    complexity: float
    classifier: str  # scorer kind ("heuristic"/"learned"), "llm" or "heuristic-fallback"
    judge_model: str | None = None
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    model: str
    error_code: str


@dataclass(slots=True)
class Execution(Generic[T]):
    result: T
    model: ModelConfig
    failed: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RouteResult:
    text: str
    decision: Decision
    classification: Classification
    model: ModelConfig
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    fallbacks: list[Attempt]


class Deadline:
    """The request's overall budget: ``REQUEST_TIMEOUT_S``, tightened by the caller's ``max_latency_ms``."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.end = self.started + budget_s

    @classmethod
    def for_request(cls, settings: Settings, constraints: Constraints) -> Deadline:
        budget = settings.REQUEST_TIMEOUT_S
        if math.isfinite(constraints.max_latency_ms):
            budget = min(budget, constraints.max_latency_ms / 1000)
        return cls(budget)

    def remaining(self) -> float:
        return self.end - time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class ExecutionFailed(Exception):
    """Every attempt failed; carries what was tried for the cost record and the caller."""

    def __init__(self, error: RouterError, model: ModelConfig, failed: list[Attempt]) -> None:
        super().__init__(error.message)
        self.error = error
        self.model = model
        self.failed = failed


def error_kind(exc: BaseException) -> tuple[str, str, float | None]:
    """(code, kind, retry_after_s); kind is "retry" (try the next model), "context" (try a model with a
    larger context window) or "fatal" (return to the caller)."""
    import openai

    if isinstance(exc, asyncio.TimeoutError | openai.APITimeoutError):
        return "timeout", "retry", None
    if isinstance(exc, openai.APIStatusError):
        body: Any = exc.body
        code = body.get("code") if isinstance(body, dict) else None
        if code == "content_filter":
            return "content_filter", "fatal", None
        if code == "context_length_exceeded":
            return "context_length_exceeded", "context", None
        status = exc.status_code
        retry_after = retry_after_seconds(exc.response.headers) if status == 429 else None
        kind = "retry" if status in RETRYABLE_STATUS or status >= 500 else "fatal"
        return f"http_{status}", kind, retry_after
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", "retry", None
    if isinstance(exc, UpstreamError):
        return exc.code, "fatal", None
    return type(exc).__name__, "fatal", None


def _upstream_message(exc: BaseException) -> str | None:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:500] if message else None


def _caller_error(
    code: str, model: str, failed: list[Attempt], upstream_message: str | None = None
) -> RouterError:
    if code in ("http_400", "http_422") and upstream_message:
        # The caller's parameters were refused (e.g. one the deployment does not support): their error.
        return RouterError(
            f"model {model!r} rejected the request: {upstream_message}", code="invalid_request", status=400
        )
    if code == "content_filter":
        return RouterError(
            f"the request was blocked by the content filter of model {model!r}",
            code="content_filter",
            status=400,
        )
    if code == "deadline":
        return UpstreamTimeout("the request's time budget ran out before a model answered")
    if code == "timeout":
        return UpstreamTimeout(f"model {model!r} did not answer in time")
    tried = ", ".join(f"{a.model} ({a.error_code})" for a in failed) or model
    return UpstreamError(f"no model could answer; tried: {tried}", code=f"upstream_{code}")


class RouterService:
    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        scorer: Scorer,
        clients: OpenAIClients,
        recorder: CostRecorder,
        health: HealthBoard | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.scorer = scorer
        self.clients = clients
        self.recorder = recorder
        self.health = health or HealthBoard.from_settings(settings)
        self.judge_cache = ScoreCache(settings.JUDGE_CACHE_SIZE)

    async def models(self) -> tuple[ModelConfig, ...]:
        try:
            return await self.catalog.models()
        except CatalogUnavailable as exc:
            raise NoModelsError(str(exc)) from None

    # -- classify ---------------------------------------------------------------------------
    async def classify(
        self, query: str, models: tuple[ModelConfig, ...], deadline: Deadline | None = None
    ) -> Classification:
        score = self.scorer.score(query)
        s = self.settings
        if not s.JUDGE_ENABLED or not (s.JUDGE_LOW <= score <= s.JUDGE_HIGH):
            return Classification(score, self.scorer.kind)
        cached = self.judge_cache.get(query)
        if cached is not None:
            return Classification(cached, "llm")
        judge = self._judge_model(models)
        if judge is None or not self.health.try_acquire(judge.name):
            return Classification(score, "heuristic-fallback")
        timeout = s.CLASSIFIER_TIMEOUT_S
        if deadline is not None:
            timeout = min(timeout, max(deadline.remaining() / 2, 0.001))
        try:
            reply = await asyncio.wait_for(
                self.clients.chat(
                    self.endpoint_for(judge),
                    judge.deployment,
                    judge_messages(query),
                    timeout_s=timeout,
                    max_tokens=8,
                    temperature=0,
                ),
                timeout=timeout,
            )
        except Exception as exc:  # timeout, HTTP error, anything: the heuristic still answers
            code, _, retry_after = error_kind(exc)
            if code != "content_filter":
                self.health.on_failure(judge.name, code, retry_after)
            log.warning("judge failed (%s); using the heuristic score", code)
            return Classification(score, "heuristic-fallback", judge.name)
        self.health.on_success(judge.name)
        cost = pricing.call_cost(judge, reply.prompt_tokens, reply.completion_tokens)
        parsed = parse_score(reply.text)
        if parsed is None:
            log.warning("judge reply had no number; using the heuristic score")
            return Classification(
                score, "heuristic-fallback", judge.name, reply.prompt_tokens, reply.completion_tokens, cost
            )
        self.judge_cache.put(query, parsed)
        return Classification(parsed, "llm", judge.name, reply.prompt_tokens, reply.completion_tokens, cost)

    def _judge_model(self, models: tuple[ModelConfig, ...]) -> ModelConfig | None:
        name = self.settings.CLASSIFIER_MODEL
        if name is None:
            return min(models, key=lambda m: (m.cost_per_1k_tokens, m.name))
        for m in models:
            if m.name == name:
                return m
        log.warning("CLASSIFIER_MODEL %r is not an enabled model", name)
        return None

    # -- route ------------------------------------------------------------------------------
    async def decide(self, query: str, constraints: Constraints) -> tuple[Decision, Classification]:
        models = await self.models()
        classification = await self.classify(query, models, Deadline.for_request(self.settings, constraints))
        return choose(models, classification.complexity, constraints), classification

    # -- execute ----------------------------------------------------------------------------
    async def execute(
        self,
        chain: list[ModelConfig],
        call: Callable[[ModelConfig, float], Awaitable[T]],
        deadline: Deadline,
        *,
        models: tuple[ModelConfig, ...],
        constraints: Constraints,
        allow_outside_constraints: bool = False,
    ) -> Execution[T]:
        """Try ``chain`` in order until one model answers. Raises ExecutionFailed."""
        failed: list[Attempt] = []
        queue = list(chain)
        tried: set[str] = set()
        skipped: list[ModelConfig] = []
        while queue or (not tried and skipped):
            if queue:
                model = queue.pop(0)
                if model.name in tried:
                    continue
                if not self.health.try_acquire(model.name):
                    skipped.append(model)
                    continue
            else:
                # Every eligible model is cooling down and none was tried: one honest attempt at the
                # choice rather than failing the caller unheard.
                model = skipped[0]
                log.info("every candidate is cooling down; trying %s anyway", model.name)
            remaining = deadline.remaining()
            if remaining <= 0:
                self.health.release_probe(model.name)
                raise ExecutionFailed(_caller_error("deadline", model.name, failed), model, failed)
            tried.add(model.name)
            timeout = min(remaining, self.settings.ATTEMPT_TIMEOUT_S)
            try:
                # asyncio.timeout, not wait_for: no extra task and loop turn per attempt.
                async with asyncio.timeout(timeout):
                    result = await call(model, timeout)
            except Exception as exc:
                code, kind, retry_after = error_kind(exc)
                if kind != "fatal":  # the caller's mistakes (4xx) say nothing about the deployment's health
                    self.health.on_failure(model.name, code, retry_after)
                failed.append(Attempt(model.name, code))
                if kind == "fatal":
                    error = _caller_error(code, model.name, failed[:-1], _upstream_message(exc))
                    raise ExecutionFailed(error, model, failed) from None
                if kind == "context":
                    bigger = larger_context(models, model, constraints, allow_outside_constraints)
                    queue = [m for m in bigger if m.name not in tried]
                if deadline.remaining() <= 0:
                    code = code if code == "timeout" else "deadline"
                    raise ExecutionFailed(_caller_error(code, model.name, failed), model, failed) from None
                if not queue:
                    raise ExecutionFailed(_caller_error(code, model.name, failed), model, failed) from None
                continue
            self.health.on_success(model.name)
            return Execution(result, model, failed)
        last = skipped[-1] if skipped else chain[-1]
        raise ExecutionFailed(
            UpstreamError("every eligible model is cooling down", code="upstream_cooling_down"), last, failed
        )

    async def route(
        self, query: str, constraints: Constraints, request_id: str, allow_outside_constraints: bool = False
    ) -> RouteResult:
        deadline = Deadline.for_request(self.settings, constraints)
        models = await self.models()
        classification = await self.classify(query, models, deadline)
        decision = choose(models, classification.complexity, constraints)
        chain = fallback_chain(
            models, decision, classification.complexity, constraints, allow_outside_constraints
        )
        messages = [{"role": "user", "content": query}]

        async def call(model: ModelConfig, timeout_s: float) -> Any:
            return await self.clients.chat(
                self.endpoint_for(model), model.deployment, messages, timeout_s=timeout_s
            )

        try:
            execution = await self.execute(
                chain,
                call,
                deadline,
                models=models,
                constraints=constraints,
                allow_outside_constraints=allow_outside_constraints,
            )
        except ExecutionFailed as failure:
            # A call reached a model (or the judge was paid for): that is recorded too, as an error.
            if failure.failed or classification.judge_cost_usd:
                rec = self.make_record(
                    request_id, failure.model, models, classification, 0, 0, deadline.elapsed_ms(),
                    failure.failed, error_code=stored_error_code(failure),
                )  # fmt: skip
                await self.recorder.record(rec)
            raise failure.error from None
        completion = execution.result
        latency_ms = deadline.elapsed_ms()
        rec = self.make_record(
            request_id, execution.model, models, classification, completion.prompt_tokens,
            completion.completion_tokens, latency_ms, execution.failed,
        )  # fmt: skip
        await self.recorder.record(rec)
        cost = rec.cost_usd
        return RouteResult(
            completion.text,
            decision,
            classification,
            execution.model,
            completion.prompt_tokens,
            completion.completion_tokens,
            cost,
            latency_ms,
            execution.failed,
        )

    def make_record(
        self,
        request_id: str,
        model: ModelConfig,
        models: tuple[ModelConfig, ...],
        classification: Classification,
        prompt_tokens: int,
        completion_tokens: int,
        latency_ms: float,
        failed: list[Attempt],
        *,
        error_code: str | None = None,
        api: str = "route",
    ) -> CostRecord:
        """The call's cost record (priced here; written by the recorder)."""
        cost = pricing.call_cost(model, prompt_tokens, completion_tokens)
        baseline = most_capable(models)
        return CostRecord(
            request_id=request_id,
            api=api,
            model=model.name,
            deployment=model.deployment,
            complexity=classification.complexity,
            classifier=classification.classifier,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            classifier_model=classification.judge_model,
            classifier_prompt_tokens=classification.judge_prompt_tokens,
            classifier_completion_tokens=classification.judge_completion_tokens,
            classifier_cost_usd=classification.judge_cost_usd,
            baseline_model=baseline.name,
            baseline_cost_usd=pricing.call_cost(baseline, prompt_tokens, completion_tokens),
            latency_ms=round(latency_ms, 3),
            status="ok" if error_code is None else "error",
            error_code=error_code,
            fallbacks=len(failed),
            attempts=json.dumps([{"model": a.model, "error_code": a.error_code} for a in failed])
            if failed
            else None,
        )

    def endpoint_for(self, model: ModelConfig) -> str:
        endpoint = model.endpoint or self.settings.AZURE_OPENAI_ENDPOINT
        if not endpoint:
            raise UpstreamError(f"model {model.name!r} has no endpoint and AZURE_OPENAI_ENDPOINT is not set")
        return endpoint


def stored_error_code(failure: ExecutionFailed) -> str:
    """The error code kept in the cost record: the upstream's, without the API's ``upstream_`` prefix."""
    if failure.failed:
        return failure.failed[-1].error_code
    return failure.error.code.removeprefix("upstream_")
