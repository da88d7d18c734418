"""classify → route → execute → record: the request path, independent of HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router import pricing
from router.catalog import CatalogUnavailable, ModelCatalog
from router.cost_records import CostRecord, CostRecorder
from router.errors import NoModelsError, UpstreamError, UpstreamTimeout
from router.judge import ScoreCache, judge_messages, parse_score
from router.routing import Constraints, Decision, choose, most_capable

if TYPE_CHECKING:
    from router.classifiers import Scorer
    from router.llm import OpenAIClients
    from router.model_config import ModelConfig
    from router.settings import Settings

log = logging.getLogger("router")


@dataclass(frozen=True, slots=True)
class Classification:
    complexity: float
    classifier: str  # scorer kind ("heuristic"/"learned"), "llm" or "heuristic-fallback"
    judge_model: str | None = None
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class RouteResult:
    text: str
    decision: Decision
    classification: Classification
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float


class RouterService:
    def __init__(
        self,
        settings: Settings,
        catalog: ModelCatalog,
        scorer: Scorer,
        clients: OpenAIClients,
        recorder: CostRecorder,
    ) -> None:
        self.settings = settings
        self.catalog = catalog
        self.scorer = scorer
        self.clients = clients
        self.recorder = recorder
        self.judge_cache = ScoreCache(settings.JUDGE_CACHE_SIZE)

    async def models(self) -> tuple[ModelConfig, ...]:
        try:
            return await self.catalog.models()
        except CatalogUnavailable as exc:
            raise NoModelsError(str(exc)) from None

    # -- classify ---------------------------------------------------------------------------
    async def classify(self, query: str, models: tuple[ModelConfig, ...]) -> Classification:
        score = self.scorer.score(query)
        s = self.settings
        if not s.JUDGE_ENABLED or not (s.JUDGE_LOW <= score <= s.JUDGE_HIGH):
            return Classification(score, self.scorer.kind)
        cached = self.judge_cache.get(query)
        if cached is not None:
            return Classification(cached, "llm")
        judge = self._judge_model(models)
        if judge is None:
            return Classification(score, "heuristic-fallback")
        try:
            reply = await asyncio.wait_for(
                self.clients.chat(
                    self._endpoint(judge),
                    judge.deployment,
                    judge_messages(query),
                    timeout_s=s.CLASSIFIER_TIMEOUT_S,
                    max_tokens=8,
                    temperature=0,
                ),
                timeout=s.CLASSIFIER_TIMEOUT_S,
            )
        except Exception as exc:  # timeout, HTTP error, anything: the heuristic still answers
            log.warning("judge failed (%s); using the heuristic score", type(exc).__name__)
            return Classification(score, "heuristic-fallback", judge.name)
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
        classification = await self.classify(query, models)
        return choose(models, classification.complexity, constraints), classification

    # -- execute ----------------------------------------------------------------------------
    async def route(self, query: str, constraints: Constraints, request_id: str) -> RouteResult:
        started = time.perf_counter()
        models = await self.models()
        classification = await self.classify(query, models)
        decision = choose(models, classification.complexity, constraints)
        model = decision.model
        baseline = most_capable(models)
        messages = [{"role": "user", "content": query}]
        remaining = self.settings.REQUEST_TIMEOUT_S - (time.perf_counter() - started)
        error: Exception | None = None
        error_code: str | None = None
        completion = None
        try:
            completion = await asyncio.wait_for(
                self.clients.chat(
                    self._endpoint(model), model.deployment, messages, timeout_s=max(remaining, 0.01)
                ),
                timeout=max(remaining, 0.01),
            )
        except Exception as exc:
            error, error_code = exc, upstream_error_code(exc)
        latency_ms = (time.perf_counter() - started) * 1000
        prompt_tokens = completion.prompt_tokens if completion else 0
        completion_tokens = completion.completion_tokens if completion else 0
        cost = pricing.call_cost(model, prompt_tokens, completion_tokens)
        await self.recorder.record(
            CostRecord(
                request_id=request_id,
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
                status="ok" if error is None else "error",
                error_code=error_code,
            )
        )
        if error is not None:
            raise _as_router_error(error, error_code or "upstream_error", model.name) from None
        assert completion is not None
        return RouteResult(
            completion.text, decision, classification, prompt_tokens, completion_tokens, cost, latency_ms
        )

    def _endpoint(self, model: ModelConfig) -> str:
        endpoint = model.endpoint or self.settings.AZURE_OPENAI_ENDPOINT
        if not endpoint:
            raise UpstreamError(f"model {model.name!r} has no endpoint and AZURE_OPENAI_ENDPOINT is not set")
        return endpoint


def upstream_error_code(exc: BaseException) -> str:
    """A short, stable code for a failed upstream call (stored in cost records, shown to callers)."""
    import openai

    if isinstance(exc, asyncio.TimeoutError | openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIStatusError):
        body: Any = exc.body
        code = body.get("code") if isinstance(body, dict) else None
        if code == "content_filter":
            return "content_filter"
        return f"http_{exc.status_code}"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error"
    if isinstance(exc, UpstreamError):
        return exc.code
    return type(exc).__name__


def _as_router_error(exc: Exception, code: str, model: str) -> UpstreamError | UpstreamTimeout:
    if code == "timeout":
        return UpstreamTimeout(f"model {model!r} did not answer in time")
    if isinstance(exc, UpstreamError):
        return exc
    return UpstreamError(f"model {model!r} failed upstream ({code})", code=f"upstream_{code}")
