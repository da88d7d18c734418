"""Relay an upstream Chat Completions stream as SSE, and record its cost however the stream ends."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.chat.conversation import content_text
from router.pipeline.record import Outcome
from router.upstream.errors import error_kind

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.pipeline.execute import Attempt, Deadline
    from router.pipeline.plan import Plan
    from router.pipeline.service import RouterService

log = logging.getLogger("router.chat")


@dataclass(frozen=True, slots=True)
class StreamCall:
    """Everything the relay needs to record the stream's outcome."""

    service: RouterService
    plan: Plan
    model: ModelConfig
    request_id: str
    deadline: Deadline
    failed: list[Attempt]
    prompt_tokens_estimate: int
    caller_wants_usage: bool


def _chunk_chars(chunk: Any) -> int:
    """Characters of generated content (text and tool-call arguments) in one chunk."""
    chars = 0
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is not None:
            chars += len(content_text(delta.content) if delta.content else "")
            if delta.tool_calls:
                chars += len(json.dumps([t.model_dump(mode="json") for t in delta.tool_calls]))
    return chars


def _sse(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def relay(upstream: Any, call: StreamCall) -> AsyncIterator[bytes]:
    """Upstream chunks as SSE. The cost record is written however the stream ends: complete (exact usage
    from upstream), upstream error, or the caller going away (tokens so far, estimated)."""
    usage = None
    streamed_chars = 0
    error_code: str | None = "client_disconnected"
    try:
        async for chunk in upstream:
            if chunk.usage is not None:
                usage = chunk.usage
            data = chunk.model_dump(mode="json", exclude_unset=True)
            data["model"] = call.model.name
            if not data.get("choices") and "usage" in data and not call.caller_wants_usage:
                continue  # the usage-only chunk the router asked for on its own account
            if not call.caller_wants_usage:
                data.pop("usage", None)
            streamed_chars += _chunk_chars(chunk)
            yield _sse(data)
        yield b"data: [DONE]\n\n"
        error_code = None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        error_code = error_kind(exc)[0]
        log.warning("stream from %s failed: %s", call.model.name, error_code)
        yield _sse({"error": {"message": f"upstream stream failed ({error_code})", "type": "server_error",
                              "param": None, "code": error_code}})  # fmt: skip
    finally:
        if usage is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        else:  # the caller left (or upstream broke) before the usage chunk: estimate what was generated
            prompt_tokens, completion_tokens = call.prompt_tokens_estimate, math.ceil(streamed_chars / 4)
        outcome = Outcome(
            request_id=call.request_id, api="chat", model=call.model, latency_ms=call.deadline.elapsed_ms(),
            failed=call.failed, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            error_code=error_code,
        )  # fmt: skip
        call.service.submit(call.plan, outcome)  # no await: this may run in a cancelled task
        closing = getattr(upstream, "close", None)
        if closing is not None:
            task = asyncio.get_running_loop().create_task(closing())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
