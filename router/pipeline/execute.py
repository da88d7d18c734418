"""Execute: walk the fallback chain until a model answers, within the request's deadline.

The pipeline owns the retry policy (the SDK's retries are off): it skips deployments that are cooling
down, moves to a larger context window on a context-length error, and reports what failed so the
failure is recorded and answered with the right status.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from router.errors import ExecutionFailed, RouterError, UpstreamError, UpstreamTimeout
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


@dataclass(slots=True)
class Execution(Generic[T]):
    result: T
    model: ModelConfig
    failed: list[Attempt] = field(default_factory=list)


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
    """What ``execute`` needs besides the chain: the health board and the per-attempt cap."""

    health: SharedHealth
    attempt_timeout_s: float


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
    """The state of one walk down the chain: what is left, what was tried, what was skipped."""

    def __init__(self, chain: list[ModelConfig]) -> None:
        self.queue = list(chain)
        self.tried: set[str] = set()
        self.skipped: list[ModelConfig] = []
        self.failed: list[Attempt] = []

    def next_model(self, health: SharedHealth) -> ModelConfig | None:
        """The next model to try, or None when the walk is over."""
        while self.queue:
            model = self.queue.pop(0)
            if model.name in self.tried:
                continue
            if health.try_acquire(model.name):
                return model
            self.skipped.append(model)
        if not self.tried and self.skipped:
            # Every eligible model is cooling down and none was tried: one honest attempt at the
            # choice rather than failing the caller unheard.
            log.info("every candidate is cooling down; trying %s anyway", self.skipped[0].name)
            return self.skipped[0]
        return None

    def fail(self, model: ModelConfig, code: str) -> ExecutionFailed:
        return ExecutionFailed(caller_error(code, model.name, self.failed), model, self.failed)


async def execute(
    chain: list[ModelConfig],
    call: Callable[[ModelConfig, float], Awaitable[T]],
    deadline: Deadline,
    policy: ExecutionPolicy,
    *,
    models: tuple[ModelConfig, ...],
    constraints: Constraints,
    allow_outside_constraints: bool = False,
) -> Execution[T]:
    """Try ``chain`` in order until one model answers. Raises ExecutionFailed."""
    health = policy.health
    walk = _Walk(chain)
    while (model := walk.next_model(health)) is not None:
        remaining = deadline.remaining()
        if remaining <= 0:
            health.release_probe(model.name)
            raise walk.fail(model, "deadline")
        walk.tried.add(model.name)
        timeout = min(remaining, policy.attempt_timeout_s)
        try:
            # asyncio.timeout, not wait_for: no extra task and loop turn per attempt.
            async with asyncio.timeout(timeout):
                result = await call(model, timeout)
        except Exception as exc:
            code, kind, retry_after = error_kind(exc)
            if kind != "fatal":  # the caller's mistakes (4xx) say nothing about the deployment's health
                health.on_failure(model.name, code, retry_after)
            walk.failed.append(Attempt(model.name, code))
            if kind == "fatal":
                error = caller_error(code, model.name, walk.failed[:-1], upstream_message(exc))
                raise ExecutionFailed(error, model, walk.failed) from None
            if kind == "context":
                bigger = larger_context(models, model, constraints, allow_outside_constraints)
                walk.queue = [m for m in bigger if m.name not in walk.tried]
            if deadline.remaining() <= 0:
                raise walk.fail(model, code if code == "timeout" else "deadline") from None
            if not walk.queue:
                raise walk.fail(model, code) from None
            continue
        health.on_success(model.name)
        return Execution(result, model, walk.failed)
    last = walk.skipped[-1] if walk.skipped else chain[-1]
    raise ExecutionFailed(
        UpstreamError("every eligible model is cooling down", code="upstream_cooling_down"), last, walk.failed
    )
