"""Sampling: which calls get a shadow comparison, and the comparison itself, off the caller's path.

The decision (``consider``) is memory only: the rate, the routed model against the most capable one,
the health of the baseline and the judge, this instance's samples in flight and the daily budget. What
it returns is a Starlette background hook (``Later``) that the response runs after its last byte is
sent; the hook only hands the sample to ``AfterResponse``, the outermost middleware, which starts it as
a detached task once the request's whole ASGI call has returned. Nothing the sample does is awaited by
the request, so no host (uvicorn, the Functions relay, which ends a response when the ASGI call returns,
or ``func.AsgiFunctionApp``, which awaits the whole call) makes the caller wait for it. The shadow and
judge calls never touch the caller's body, latency or cost record; their spend goes to the quality table.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from starlette.background import BackgroundTask
from starlette.types import ASGIApp, Receive, Scope, Send

from router.pipeline import pricing
from router.pipeline.capabilities import translate
from router.pipeline.route import most_capable
from router.quality.budget import MAX_IN_FLIGHT, DailyBudget, DayTotal, utc_day
from router.quality.store import MAX_TEXT_CHARS, Writer, write_durably
from router.quality.verdict import Pick, combine, judge_messages, parse_pick
from router.upstream.endpoints import endpoint_for
from router.upstream.errors import error_kind

if TYPE_CHECKING:
    from router.health import SharedHealth
    from router.models.config import ModelConfig
    from router.pipeline.plan import Plan
    from router.pipeline.record import Outcome
    from router.settings import Settings
    from router.upstream import UpstreamClient
    from router.upstream.protocol import Completion

log = logging.getLogger("router.quality")

JUDGE_PARAMS: dict[str, Any] = {"max_tokens": 4, "temperature": 0}
# A sample waits this long after the request's ASGI call returned before its first call: the host's own
# end of the response (the Functions relay's end of stream) takes a few loop turns more, and goes first.
START_DELAY_S = 0.05
# Parameters that shape the transport, not the answer: a shadow call is never streamed.
_NOT_FORWARDED = ("stream", "stream_options", "messages", "model")


@dataclass(frozen=True, slots=True)
class Sample:
    """One comparison to run: the caller's request and the routed answer."""

    request_id: str
    api: str
    prompt: str  # what the classifier read; the judge sees it as the request
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    routed: ModelConfig
    baseline: ModelConfig
    judge: ModelConfig
    complexity: float
    classifier: str
    scorer: str
    routed_text: str = ""
    routed_cost_usd: float = 0.0


@dataclass(slots=True)
class Comparison:
    """What the shadow and the judge calls returned (None: failed)."""

    shadow: Completion | None = None
    judged: list[Completion] = field(default_factory=list)
    picks: list[Pick | None] = field(default_factory=list)
    error: str | None = None


def _available(health: SharedHealth, name: str) -> bool:
    """Not cooling down and no open circuit (half-open included: its probe belongs to a caller)."""
    state = health.board.get(name)
    return state is None or (not state.circuit_open and health.cooldown_remaining(name) <= 0)


def _clip(text: str) -> str:
    return text[:MAX_TEXT_CHARS]


def _priced(model: ModelConfig, reply: Completion) -> float:
    return pricing.call_cost(model, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens)


def sample_entity(sample: Sample, c: Comparison, *, store_text: bool, now: float) -> dict[str, Any]:
    """The stored sample: who answered, the verdicts, and every token and dollar the check cost."""
    shadow_in = c.shadow.prompt_tokens if c.shadow else 0
    shadow_out = c.shadow.completion_tokens if c.shadow else 0
    shadow_cached = c.shadow.cached_tokens if c.shadow else 0
    shadow_usd = pricing.call_cost(sample.baseline, shadow_in, shadow_out, shadow_cached)
    judge_in = sum(r.prompt_tokens for r in c.judged)
    judge_out = sum(r.completion_tokens for r in c.judged)
    judge_usd = sum(_priced(sample.judge, r) for r in c.judged)
    picks = [*c.picks, None, None][:2]
    entity: dict[str, Any] = {
        "PartitionKey": utc_day(now),
        "RowKey": f"{int(now * 1000):013d}-{uuid.uuid4().hex[:12]}",
        "request_id": sample.request_id, "api": sample.api, "routed_model": sample.routed.name,
        "baseline_model": sample.baseline.name, "judge_model": sample.judge.name,
        "complexity": float(sample.complexity), "classifier": sample.classifier, "scorer": sample.scorer,
        "verdict": combine(picks[0], picks[1]), "verdict_1": picks[0] or "", "verdict_2": picks[1] or "",
        "error": c.error or "", "routed_cost_usd": float(sample.routed_cost_usd),
        "shadow_prompt_tokens": shadow_in, "shadow_completion_tokens": shadow_out, "shadow_usd": shadow_usd,
        "judge_calls": len(c.judged), "judge_prompt_tokens": judge_in, "judge_completion_tokens": judge_out,
        "judge_usd": round(judge_usd, 10), "total_usd": round(shadow_usd + judge_usd, 10),
        "usage_estimated": any(r.usage_estimated for r in [*c.judged, *([c.shadow] if c.shadow else [])]),
    }  # fmt: skip
    if store_text:
        entity["prompt"] = _clip(sample.prompt)
        entity["routed_answer"] = _clip(sample.routed_text)
        entity["baseline_answer"] = _clip(c.shadow.text if c.shadow else "")
    return entity


# The samples the current request asked for, started when its ASGI call returns (``AfterResponse``).
_deferred: ContextVar[list[Callable[[], None]] | None] = ContextVar("quality_deferred", default=None)


class AfterResponse:
    """Outermost ASGI middleware: a sample asked for during a request starts only when the request's whole
    ASGI call has returned, i.e. after its last byte was sent and after whatever the request itself
    still awaited (the Functions host awaits the request's cost records, ``COST_AWAIT_MS``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        pending: list[Callable[[], None]] = []
        token = _deferred.set(pending)
        try:
            await self.app(scope, receive, send)
        finally:
            _deferred.reset(token)
            for start in pending:
                start()


class Later(BackgroundTask):
    """The response's background hook: schedules the comparison and returns at once. A stream fills in
    its answer when the relay ends (``answered``); one that did not end cleanly is not sampled."""

    def __init__(self, sampler: QualitySampler, sample: Sample, ready: bool) -> None:
        super().__init__(self._launch)
        self.sampler = sampler
        self.sample = sample
        self.ready = ready

    def answered(self, text: str, cost_usd: float) -> None:
        self.sample = replace(self.sample, routed_text=text, routed_cost_usd=cost_usd)
        self.ready = bool(text)

    def stream_ended(self, outcome: Outcome, text: str) -> None:
        """The relay's end: only a complete stream is compared."""
        if outcome.error_code is None:
            cost = pricing.call_cost(
                outcome.model, outcome.prompt_tokens, outcome.completion_tokens, outcome.cached_tokens
            )
            self.answered(text, cost)

    async def _launch(self) -> None:
        if not self.ready:
            return
        pending = _deferred.get()
        if pending is None:  # no AfterResponse around this app: the response is sent, start now
            self.sampler.launch(self.sample)
        else:
            pending.append(partial(self.sampler.launch, self.sample))


class QualitySampler:
    def __init__(
        self,
        settings: Settings,
        clients: UpstreamClient,
        health: SharedHealth,
        scorer: str,
        *,
        writer: Writer,
        day_total: DayTotal | None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.health = health
        self.scorer = scorer
        self.budget = DailyBudget(settings.QUALITY_MAX_USD_PER_DAY, day_total)
        self._writer = writer
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self.samples_written = 0

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def _judge(self, models: tuple[ModelConfig, ...], baseline: ModelConfig) -> ModelConfig | None:
        name = self.settings.QUALITY_JUDGE_MODEL
        if name is None:
            return baseline
        return next((m for m in models if m.name == name), None)

    def consider(
        self, plan: Plan, routed: ModelConfig, *, request_id: str, api: str, prompt: str,
        messages: list[dict[str, Any]], params: dict[str, Any] | None = None,
    ) -> Later | None:  # fmt: skip
        """Should this call be compared? Memory only; None for the great majority of calls."""
        rate = self.settings.QUALITY_SAMPLE_RATE
        if rate <= 0 or not plan.models:
            return None
        baseline = most_capable(plan.models)
        if routed.name == baseline.name or self._rng.random() >= rate:
            return None
        judge = self._judge(plan.models, baseline)
        if judge is None or self.in_flight >= MAX_IN_FLIGHT:
            return None
        if not (_available(self.health, baseline.name) and _available(self.health, judge.name)):
            return None
        if not self.budget.allows():
            return None
        c = plan.classification
        forwarded = {k: v for k, v in (params or {}).items() if k not in _NOT_FORWARDED}
        sample = Sample(request_id, api, prompt, messages, forwarded, routed, baseline, judge,
                        c.complexity, c.classifier, c.scorer or self.scorer)  # fmt: skip
        return Later(self, sample, ready=False)

    def launch(self, sample: Sample) -> None:
        """Start the comparison as a task of its own (re-checking the limits: time has passed)."""
        if self.in_flight >= MAX_IN_FLIGHT or not self.budget.allows():
            return
        task = asyncio.get_running_loop().create_task(self._run(sample))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, sample: Sample) -> None:
        try:
            await asyncio.sleep(START_DELAY_S)
            comparison = await self.compare(sample)
            entity = sample_entity(sample, comparison, store_text=self.settings.QUALITY_STORE_TEXT,
                                   now=time.time())  # fmt: skip
            self.budget.spend(entity["total_usd"])
            log.info("quality sample %s routed=%s verdict=%s cost=%.8f", sample.request_id,
                     sample.routed.name, entity["verdict"], entity["total_usd"])  # fmt: skip
            if await write_durably(self._writer, entity):
                self.budget.stored(entity["total_usd"])
                self.samples_written += 1
        except Exception:  # a bug here must never reach a caller or go unseen
            log.exception("quality sample %s failed", sample.request_id)

    async def compare(self, sample: Sample) -> Comparison:
        """The shadow call, then the judge in both orders; the first failure ends it (never retried)."""
        c = Comparison()
        c.shadow, c.error = await self._call(sample.baseline, sample.messages, sample.params)
        if c.shadow is None:
            c.error = f"shadow_{c.error}"
            return c
        for routed_first in (True, False):
            pair = (sample.routed_text, c.shadow.text)
            a, b = pair if routed_first else pair[::-1]
            reply, code = await self._call(sample.judge, judge_messages(sample.prompt, a, b), JUDGE_PARAMS)
            pick = parse_pick(reply.text) if reply is not None else None
            if reply is not None:
                c.judged.append(reply)
            c.picks.append(pick)
            if pick is None:
                c.error = f"judge_{code}" if code else "judge_unparseable"
                break
        return c

    async def _call(
        self, model: ModelConfig, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[Completion | None, str | None]:
        timeout = self.settings.ATTEMPT_TIMEOUT_S
        try:
            async with asyncio.timeout(timeout):
                endpoint = endpoint_for(model, self.settings)
                sent = translate(params, model, pinned=False).body  # as this model accepts them
                return await self.clients.chat(endpoint, model.deployment, messages, timeout, **sent), None
        except Exception as exc:
            code, _, retry_after = error_kind(exc)
            if code == "http_429":  # a throttled deployment is news for the callers too
                self.health.on_failure(model.name, code, retry_after)
            log.warning("quality %s call to %s failed: %s", "judge" if params is JUDGE_PARAMS else "shadow",
                        model.name, code)  # fmt: skip
            return None, code

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Shutdown: let samples in flight finish (their spend is already paid) for up to ``timeout_s``."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        await self.budget.wait_idle()
