"""Relay an upstream Chat Completions stream as SSE, and record its cost however the stream ends.

A stream is complete only when every choice got a ``finish_reason`` and the upstream sent ``[DONE]``;
only then does the caller get ``[DONE]``. Otherwise (the upstream cut the connection, failed mid-way,
went silent for ``STREAM_IDLE_TIMEOUT_S``, ran past the request's deadline or past
``MAX_UPSTREAM_BYTES``) the caller gets an OpenAI-style error event instead, so a cut answer is never
passed off as a whole one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from router.pipeline.record import Outcome
from router.upstream.errors import error_kind
from router.upstream.usage import read_usage, reply_chars

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.pipeline.execute import Attempt, Deadline
    from router.pipeline.plan import Plan
    from router.pipeline.service import RouterService
    from router.upstream.sse import SSEStream

log = logging.getLogger("router.chat")

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class StreamCall:
    """Everything the relay needs to bound the stream and record its outcome."""

    service: RouterService
    plan: Plan
    model: ModelConfig
    request_id: str
    deadline: Deadline
    failed: list[Attempt]
    prompt_tokens_estimate: int
    caller_wants_usage: bool
    idle_timeout_s: float
    on_end: Callable[[Outcome, str], None] | None = None  # the quality sampler, given the assembled text
    api: str = "chat"  # the cost record's api: the surface the call came in on


class StreamStopped(Exception):
    """The relay ended the stream itself; ``code`` is what the caller's error event and the record say."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class _Progress:
    """What the stream has shown so far: the usage it reported, the text it generated, how it ended."""

    usage: Any = None
    chars: int = 0
    choices: set[int] = field(default_factory=set)
    finished: set[int] = field(default_factory=set)

    def see(self, chunk: dict[str, Any]) -> None:
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        self.chars += reply_chars(chunk, key="delta")
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                index = choice.get("index")
                index = index if isinstance(index, int) else 0
                self.choices.add(index)
                if choice.get("finish_reason"):
                    self.finished.add(index)

    def complete(self, done: bool) -> bool:
        return done and bool(self.choices) and self.choices <= self.finished


def _sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _error_event(code: str, message: str) -> bytes:
    return _sse({"error": {"message": message, "type": "server_error", "param": None, "code": code}})


async def _next(upstream: SSEStream, call: StreamCall) -> dict[str, Any] | None:
    """The next chunk, within both the request's deadline and the idle timeout."""
    remaining = call.deadline.remaining()
    if remaining <= 0:
        raise StreamStopped("deadline", "the request's time budget ran out during the stream")
    try:
        async with asyncio.timeout(min(remaining, call.idle_timeout_s)):
            return await upstream.next_chunk()
    except TimeoutError:
        if remaining <= call.idle_timeout_s:  # the deadline was the nearer limit
            raise StreamStopped("deadline", "the request's time budget ran out during the stream") from None
        raise StreamStopped("stream_idle_timeout", "the upstream stream went silent") from None


def _outgoing(chunk: dict[str, Any], call: StreamCall) -> dict[str, Any] | None:
    """The chunk as the caller gets it (the router's own usage-only chunk is kept back)."""
    if not chunk.get("choices") and chunk.get("usage") is not None and not call.caller_wants_usage:
        return None  # the usage-only chunk the router asked for on its own account
    out = {**chunk, "model": call.model.name}
    if not call.caller_wants_usage:
        out.pop("usage", None)
    return out


async def relay(upstream: SSEStream, call: StreamCall) -> AsyncIterator[bytes]:
    """Upstream chunks as SSE. The cost record is built in ``finally`` however the stream ends, and the
    upstream response is closed in its own ``finally`` after it, so neither can skip the other."""
    progress = _Progress()
    error_code: str | None = "client_disconnected"
    texts: list[str] = []
    try:
        try:
            while (chunk := await _next(upstream, call)) is not None:
                progress.see(chunk)
                if call.on_end is not None:
                    texts.append(_first_choice_text(chunk))
                if (out := _outgoing(chunk, call)) is not None:
                    yield _sse(out)
            if not progress.complete(upstream.done):
                raise StreamStopped("stream_incomplete", "the upstream stream ended before the answer did")
            yield DONE
            error_code = None
        except asyncio.CancelledError:
            raise
        except StreamStopped as stop:
            error_code = stop.code
            log.warning("stream from %s stopped: %s", call.model.name, error_code)
            yield _error_event(error_code, str(stop))
        except Exception as exc:
            error_code = error_kind(exc)[0]
            log.warning("stream from %s failed: %s", call.model.name, error_code)
            yield _error_event(error_code, f"upstream stream failed ({error_code})")
        finally:
            outcome = _record(call, progress, error_code)
            if call.on_end is not None and outcome is not None:
                call.on_end(outcome, "".join(texts))
    finally:
        _close(upstream)


def _first_choice_text(chunk: dict[str, Any]) -> str:
    """The text content of choice 0's delta in one chunk (what the quality sampler compares)."""
    for choice in chunk.get("choices") or ():
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            content = (choice.get("delta") or {}).get("content")
            return content if isinstance(content, str) else ""
    return ""


def _record(call: StreamCall, progress: _Progress, error_code: str | None) -> Outcome | None:
    """Submit the stream's record: the upstream's usage where valid, else estimated and flagged."""
    try:
        usage = read_usage(progress.usage, call.prompt_tokens_estimate, progress.chars)
        outcome = Outcome(
            request_id=call.request_id, api=call.api, model=call.model, latency_ms=call.deadline.elapsed_ms(),
            failed=call.failed, prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            error_code=error_code, usage_estimated=usage.estimated,
            cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
        )  # fmt: skip
        call.service.submit(call.plan, outcome)  # no await: this may run in a cancelled task
        return outcome
    except Exception:  # a bug here must not stop the upstream being closed; say so loudly
        log.exception("could not record the stream of request %s", call.request_id)
        return None


def _close(upstream: SSEStream) -> None:
    """Close the upstream response in a task of its own: awaiting here could be cancelled again (the
    caller went away), and the connection must be released either way."""
    task = asyncio.get_running_loop().create_task(upstream.close())
    task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
