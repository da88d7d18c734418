"""``/api/v1/chat/completions`` and ``/api/v1/models``: a drop-in base_url for OpenAI SDK apps."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router.api.schemas import ConstraintsIn
from router.chat.conversation import content_text, estimate_prompt_tokens, routing_text
from router.chat.schemas import OPENAI_ERRORS, ChatCompletionRequest
from router.errors import RouterError
from router.routing import Constraints, choose, fallback_chain
from router.service import Classification, Deadline, ExecutionFailed, RouterService, stored_error_code

if TYPE_CHECKING:
    from router.model_config import ModelConfig
    from router.runtime import Runtime

log = logging.getLogger("router.chat")

_HEADER_LIMITS = {"x-router-max-latency-ms": "max_latency_ms", "x-router-max-cost-per-1k": "max_cost_per_1k"}


@dataclass(frozen=True, slots=True)
class Plan:
    chain: list[ModelConfig]
    models: tuple[ModelConfig, ...]
    classification: Classification
    constraints: Constraints
    allow_outside: bool
    prompt_tokens_estimate: int


def _limits(request: Request, req: ChatCompletionRequest) -> ConstraintsIn:
    """Limits from the body's ``router`` object, else from the x-router-* headers."""
    if req.router is not None:
        return req.router
    values: dict[str, float] = {}
    for header, key in _HEADER_LIMITS.items():
        raw = request.headers.get(header)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (key == "max_latency_ms" and value == 0):
            message = f"header {header} must be a positive number"
            raise RouterError(message, code="validation_error", status=400, param=header)
        values[key] = value
    return ConstraintsIn.model_validate(values)


async def _plan(
    service: RouterService,
    req: ChatCompletionRequest,
    limits: ConstraintsIn,
    deadline: Deadline,
    messages: list[dict[str, Any]],
) -> Plan:
    models = await service.models()
    estimate = estimate_prompt_tokens(messages, req.tools)
    constraints = limits.to_constraints()
    allow = limits.allow_fallback_outside_constraints
    if not req.routed:
        pinned = next((m for m in models if m.name == req.model), None)
        if pinned is None:
            raise RouterError(f"The model '{req.model}' does not exist", code="model_not_found", status=404,
                              param="model")  # fmt: skip
        score = service.scorer.score(routing_text(messages))
        return Plan([pinned], models, Classification(score, "pinned"), constraints, allow, estimate)
    needed = estimate + (req.max_completion_tokens or req.max_tokens or 0)
    fitting = tuple(m for m in models if m.context_window is None or m.context_window >= needed)
    if not fitting:
        raise RouterError(
            f"the conversation needs about {needed} tokens; no model's context window is that large",
            code="context_length_exceeded", status=400, param="messages",
        )  # fmt: skip
    classification = await service.classify(routing_text(messages), fitting, deadline)
    decision = choose(fitting, classification.complexity, constraints)
    chain = fallback_chain(fitting, decision, classification.complexity, constraints, allow)
    return Plan(chain, models, classification, constraints, allow, estimate)


def _router_headers(
    rid: str, model: str, classification: Classification, cost: float | None
) -> dict[str, str]:
    headers = {
        "x-router-model": model,
        "x-router-complexity": f"{classification.complexity:.4f}",
        "x-router-classifier": classification.classifier,
    }
    if cost is not None:
        headers["x-router-cost-usd"] = f"{cost:.8f}"
    return headers


def build_router(runtime: Runtime) -> APIRouter:
    from router.api.app import parse_body

    api = APIRouter(prefix="/api/v1")

    @api.get("/models", responses=OPENAI_ERRORS)
    async def list_models() -> dict[str, Any]:
        service = await runtime.service()
        models = await service.models()
        data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "router"}]
        data += [{"id": m.name, "object": "model", "created": 0, "owned_by": "azure-openai"} for m in models]
        return {"object": "list", "data": data}

    @api.post(
        "/chat/completions",
        responses=OPENAI_ERRORS,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}
                },
            }
        },
    )
    async def chat_completions(request: Request) -> Any:
        # Any Authorization: Bearer value is ignored: in Azure the Functions host checks the function key.
        req = await parse_body(request, ChatCompletionRequest)
        rid = str(request.scope["state"]["request_id"])
        service = await runtime.service()
        limits = _limits(request, req)
        deadline = Deadline.for_request(service.settings, limits.to_constraints())
        body = req.upstream_body()  # the messages as sent upstream are also what routing reads
        plan = await _plan(service, req, limits, deadline, body["messages"])
        if req.stream:
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}

        send = service.clients.stream if req.stream else service.clients.post_json

        async def call(model: ModelConfig, timeout_s: float) -> Any:
            return await send(service.endpoint_for(model), model.deployment, body, timeout_s)

        try:
            execution = await service.execute(
                plan.chain, call, deadline, models=plan.models, constraints=plan.constraints,
                allow_outside_constraints=plan.allow_outside,
            )  # fmt: skip
        except ExecutionFailed as failure:
            if failure.failed or plan.classification.judge_cost_usd:
                service.recorder.submit(
                    service.make_record(
                        rid, failure.model, plan.models, plan.classification, 0, 0, deadline.elapsed_ms(),
                        failure.failed, error_code=stored_error_code(failure), api="chat",
                    )
                )  # fmt: skip
            raise failure.error from None

        model = execution.model
        if req.stream:
            stream = _relay(
                service, execution.result, model, plan, rid, deadline, execution.failed,
                caller_wants_usage=bool(req.stream_options and req.stream_options.include_usage),
            )  # fmt: skip
            return StreamingResponse(
                stream,
                media_type="text/event-stream",
                headers={
                    **_router_headers(rid, model.name, plan.classification, None),
                    "cache-control": "no-cache",
                },
            )
        payload: dict[str, Any] = execution.result  # the upstream chat.completion, relayed as JSON
        usage = payload.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        rec = service.make_record(
            rid, model, plan.models, plan.classification, prompt_tokens, completion_tokens,
            deadline.elapsed_ms(), execution.failed, api="chat",
        )  # fmt: skip
        await service.recorder.record(rec)
        payload["model"] = model.name
        return JSONResponse(
            payload, headers=_router_headers(rid, model.name, plan.classification, rec.cost_usd)
        )

    return api


async def _relay(
    service: RouterService,
    upstream: Any,
    model: ModelConfig,
    plan: Plan,
    rid: str,
    deadline: Deadline,
    failed: list[Any],
    *,
    caller_wants_usage: bool,
) -> AsyncIterator[bytes]:
    """Relay upstream chunks as SSE. The cost record is written however the stream ends: complete
    (exact usage from upstream), upstream error, or the caller going away (tokens so far, estimated)."""
    usage = None
    streamed_chars = 0
    error_code: str | None = "client_disconnected"
    try:
        async for chunk in upstream:
            if chunk.usage is not None:
                usage = chunk.usage
            data = chunk.model_dump(mode="json", exclude_unset=True)
            data["model"] = model.name
            if not data.get("choices") and "usage" in data and not caller_wants_usage:
                continue  # the usage-only chunk the router asked for on its own account
            if not caller_wants_usage:
                data.pop("usage", None)
            for choice in chunk.choices or ():
                delta = choice.delta
                if delta is not None:
                    streamed_chars += len(content_text(delta.content) if delta.content else "")
                    if delta.tool_calls:
                        streamed_chars += len(
                            json.dumps([t.model_dump(mode="json") for t in delta.tool_calls])
                        )
            yield b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"
        error_code = None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        from router.service import error_kind

        error_code = error_kind(exc)[0]
        log.warning("stream from %s failed: %s", model.name, error_code)
        err = {"error": {"message": f"upstream stream failed ({error_code})", "type": "server_error",
                         "param": None, "code": error_code}}  # fmt: skip
        yield b"data: " + json.dumps(err).encode() + b"\n\n"
    finally:
        if usage is not None:
            prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
        else:  # the caller left (or upstream broke) before the usage chunk: estimate what was generated
            prompt_tokens, completion_tokens = plan.prompt_tokens_estimate, math.ceil(streamed_chars / 4)
        # No await here: this may run in a cancelled task (the caller disconnected).
        service.recorder.submit(
            service.make_record(
                rid, model, plan.models, plan.classification, prompt_tokens, completion_tokens,
                deadline.elapsed_ms(), failed, error_code=error_code, api="chat",
            )
        )  # fmt: skip
        closing = getattr(upstream, "close", None)
        if closing is not None:
            task = asyncio.get_running_loop().create_task(closing())
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
