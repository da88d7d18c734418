"""Execute: walk the fallback chain until a model answers, within the request's deadline.

The pipeline owns the retry policy (the SDK's retries are off): each attempt goes to one of the model's
backends (``router.pipeline.backends``: priority, weight, health, remaining capacity); a 429, 5xx,
timeout or connection error moves to the next backend of the *same* model first, and only when none is
left down the model fallback chain. It moves to a larger context window on a context-length error, and
reports what failed so the failure is recorded and answered with the right status.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from router.errors import ExecutionFailed, RouterError, UpstreamError, UpstreamTimeout
from router.pipeline.backends import Target, choose_backend, first_backend, fullest_backend, target_for
from router.pipeline.route import Constraints, larger_context
from router.upstream.errors import error_kind, upstream_message

if TYPE_CHECKING:
    from router.health import SharedHealth
    from router.models.config import ModelConfig

log = logging.getLogger("router")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    model: str
    error_code: str
    deployment: str = ""  # the backend that failed


@dataclass(slots=True)
class Execution(Generic[T]):
    result: T
    model: ModelConfig  # as the backend that answered serves it (its deployment and endpoint)
    failed: list[Attempt] = field(default_factory=list)
    spilled_from: str | None = None  # Azure answered from the spillover deployment of this one


class Deadline:
    """The request's overall budget: ``REQUEST_TIMEOUT_S``, tightened by the caller's ``max_latency_ms``."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = budget_s
        self.started = time.perf_counter()
        self.end = self.started + budget_s

    @classmethod
    def for_request(cls, request_timeout_s: float, constraints: Constraints) -> Deadline:
        budget = request_timeout_s
        if math.isfinite(constraints.max_latency_ms):
            budget = min(budget, constraints.max_latency_ms / 1000)
        return cls(budget)

    def remaining(self) -> float:
        return self.end - time.perf_counter()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


@dataclass(frozen=True, slots=True)
class ExecutionPolicy:
    """What ``execute`` needs besides the chain: the health board, the per-attempt cap, the endpoint of
    a backend that names none (``AZURE_OPENAI_ENDPOINT``) and the rng of the weighted backend draw."""

    health: SharedHealth
    attempt_timeout_s: float
    default_endpoint: str | None = None
    rng: random.Random = field(default_factory=random.Random)


def caller_error(
    code: str, model: str, failed: list[Attempt], upstream_text: str | None = None
) -> RouterError:
    """The error the caller gets when the chain ends on ``code``."""
    if code in ("http_400", "http_422") and upstream_text:
        # The caller's parameters were refused (e.g. one the deployment does not support): their error.
        return RouterError(
            f"model {model!r} rejected the request: {upstream_text}", code="invalid_request", status=400
        )
    if code == "content_filter":
        return RouterError(
            f"the request was blocked by the content filter of model {model!r}",
            code="content_filter",
            status=400,
        )
    if code == "response_too_large":
        return UpstreamError(
            f"model {model!r} sent a response larger than MAX_UPSTREAM_BYTES; it was dropped",
            code="upstream_response_too_large",
        )
    if code == "deadline":
        return UpstreamTimeout("the request's time budget ran out before a model answered")
    if code == "timeout":
        return UpstreamTimeout(f"model {model!r} did not answer in time")
    tried = ", ".join(f"{a.model} ({a.error_code})" for a in failed) or model
    return UpstreamError(f"no model could answer; tried: {tried}", code=f"upstream_{code}")


class _Walk:
    """The state of one walk down the chain: what is left, what was tried, what was skipped. ``current``
    is the model whose other backends come before the next model."""

    def __init__(self, chain: list[ModelConfig], policy: ExecutionPolicy, demand_tokens: int) -> None:
        self.queue = list(chain)
        self.tried: set[str] = set()  # model names
        self.tried_backends: set[str] = set()  # backend keys
        self.stretched: set[str] = set()  # models given their one attempt past a capacity hint
        self.skipped: list[ModelConfig] = []
        self.failed: list[Attempt] = []
        self.current: ModelConfig | None = None
        self.last_failed: ModelConfig | None = None  # the backend view of the last failed attempt
        self.skipped_at_failure = 0
        self._policy = policy
        self._demand = demand_tokens

    def _acquire(self, model: ModelConfig) -> Target | None:
        health = self._policy.health
        while (backend := choose_backend(model, health, self._demand, exclude=self.tried_backends,
                                         rng=self._policy.rng)) is not None:  # fmt: skip
            target = target_for(model, backend, self._policy.default_endpoint)
            if health.try_acquire(target.key):
                return target
            self.tried_backends.add(target.key)  # lost the half-open probe to a concurrent request
        if model.name in self.stretched:
            return None
        self.stretched.add(model.name)  # once per model: then the chain moves on
        backend = fullest_backend(model, health, exclude=self.tried_backends)
        if backend is None:
            return None
        target = target_for(model, backend, self._policy.default_endpoint)
        return target if health.try_acquire(target.key) else None

    def next_target(self) -> Target | None:
        """The next backend to try, or None when the walk is over."""
        if self.current is not None:
            target = self._acquire(self.current)
            if target is not None:
                return target
            self.current = None
        while self.queue:
            model = self.queue.pop(0)
            if model.name in self.tried:
                continue
            target = self._acquire(model)
            if target is not None:
                return target
            self.skipped.append(model)
        if not self.tried and self.skipped:
            # Every eligible backend is cooling down or out of capacity and none was tried: one honest
            # attempt at the choice rather than failing the caller unheard.
            model = self.skipped[0]
            log.info("every candidate is cooling down; trying %s anyway", model.name)
            return target_for(model, first_backend(model), self._policy.default_endpoint)
        return None

    def fail(self, model: ModelConfig, code: str) -> ExecutionFailed:
        return ExecutionFailed(caller_error(code, model.name, self.failed), model, self.failed)


async def execute(
    chain: list[ModelConfig],
    call: Callable[[Target, float], Awaitable[T]],
    deadline: Deadline,
    policy: ExecutionPolicy,
    *,
    models: tuple[ModelConfig, ...],
    constraints: Constraints,
    allow_outside_constraints: bool = False,
    demand_tokens: int = 0,
) -> Execution[T]:
    """Try ``chain`` in order until one of its models' backends answers. ``demand_tokens`` is the
    request's estimate (prompt + max output) that a backend's remaining tokens must cover. Raises
    ExecutionFailed."""
    health = policy.health
    walk = _Walk(chain, policy, demand_tokens)
    while (target := walk.next_target()) is not None:
        model, key = target.model, target.key
        remaining = deadline.remaining()
        if remaining <= 0:
            health.release_probe(key)
            raise walk.fail(model, "deadline")
        walk.tried.add(model.name)
        walk.tried_backends.add(key)
        ticket = health.reserve(key, demand_tokens)
        timeout = min(remaining, policy.attempt_timeout_s)
        try:
            # asyncio.timeout, not wait_for: no extra task and loop turn per attempt.
            async with asyncio.timeout(timeout):
                result = await call(target, timeout)
        except Exception as exc:
            health.release(key, ticket)
            code, kind, retry_after = error_kind(exc)
            if kind != "fatal":  # the caller's mistakes (4xx) say nothing about the deployment's health
                health.on_failure(key, code, retry_after)
            # The backend is named when the model has several (a legacy record's shape stays as it was).
            walk.failed.append(Attempt(model.name, code, model.deployment if key != model.name else ""))
            walk.last_failed, walk.skipped_at_failure = model, len(walk.skipped)
            if kind == "fatal":
                error = caller_error(code, model.name, walk.failed[:-1], upstream_message(exc))
                raise ExecutionFailed(error, model, walk.failed) from None
            walk.current = target.source  # its other backends first
            if kind == "context":
                walk.current = None
                bigger = larger_context(models, model, constraints, allow_outside_constraints)
                walk.queue = [m for m in bigger if m.name not in walk.tried]
            if deadline.remaining() <= 0:
                raise walk.fail(model, code if code == "timeout" else "deadline") from None
            continue
        except BaseException:  # cancelled (the caller went away): the request is no longer in flight
            health.release(key, ticket)
            raise
        return _answered(health, target, ticket, result, walk.failed)
    if walk.last_failed is not None and len(walk.skipped) == walk.skipped_at_failure:
        raise walk.fail(walk.last_failed, walk.failed[-1].error_code)  # nothing left to try
    last = walk.skipped[-1] if walk.skipped else chain[-1]
    raise ExecutionFailed(
        UpstreamError("every eligible model is cooling down", code="upstream_cooling_down"), last, walk.failed
    )


def _answered(
    health: SharedHealth, target: Target, ticket: int, result: T, failed: list[Attempt]
) -> Execution[T]:
    """The answer's remaining capacity becomes its backend's hint (not when Azure spilled: then the
    headers describe the spillover deployment), and the execution names the deployment that answered."""
    limits = target.limits
    if limits is None or limits.spilled_from is not None:
        health.release(target.key, ticket)
    else:
        health.observe(target.key, limits.remaining_tokens, limits.remaining_requests, limits.reset_s, ticket)
    health.on_success(target.key)
    spilled = limits.spilled_from if limits is not None else None
    return Execution(result, target.served(), failed, spilled)
