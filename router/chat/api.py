"""``/api/v1/chat/completions`` and ``/api/v1/models``: a drop-in base_url for OpenAI SDK apps."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router.api.body import json_body, parse_body
from router.api.handlers import request_id
from router.api.schemas import ConstraintsIn
from router.chat.conversation import estimate_prompt_tokens, routing_text
from router.chat.schemas import OPENAI_ERRORS, ChatCompletionRequest
from router.chat.stream import StreamCall, relay
from router.errors import RouterError
from router.pipeline.plan import PlanRequest
from router.pipeline.record import Outcome

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.pipeline.classify import Classification
    from router.runtime import Runtime

_HEADER_LIMITS = {"x-router-max-latency-ms": "max_latency_ms", "x-router-max-cost-per-1k": "max_cost_per_1k"}


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


def _plan_request(
    req: ChatCompletionRequest, limits: ConstraintsIn, messages: list[dict[str, Any]]
) -> PlanRequest:
    output = req.max_completion_tokens or req.max_tokens or 0
    return PlanRequest(
        text=routing_text(messages),
        constraints=limits.to_constraints(),
        allow_outside_constraints=limits.allow_fallback_outside_constraints,
        pinned=None if req.routed else req.model,
        context_tokens=estimate_prompt_tokens(messages, req.tools) + output,
    )


def _router_headers(model: str, classification: Classification, cost: float | None) -> dict[str, str]:
    headers = {
        "x-router-model": model,
        "x-router-complexity": f"{classification.complexity:.4f}",
        "x-router-classifier": classification.classifier,
        "x-router-scorer": classification.scorer,
    }
    if cost is not None:
        headers["x-router-cost-usd"] = f"{cost:.8f}"
    return headers


def build_router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api/v1")

    @api.get("/models", responses=OPENAI_ERRORS)
    async def list_models() -> dict[str, Any]:
        service = await runtime.service()
        models = await service.models()
        data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "router"}]
        data += [{"id": m.name, "object": "model", "created": 0, "owned_by": "azure-openai"} for m in models]
        return {"object": "list", "data": data}

    @api.post("/chat/completions", responses=OPENAI_ERRORS, openapi_extra=json_body(ChatCompletionRequest))
    async def chat_completions(request: Request) -> Any:
        # Any Authorization: Bearer value is ignored: in Azure the Functions host checks the function key.
        req = await parse_body(request, ChatCompletionRequest)
        rid = request_id(request)
        service = await runtime.service()
        limits = _limits(request, req)
        deadline = service.deadline(limits.to_constraints())
        body = req.upstream_body()  # the messages as sent upstream are also what routing reads
        plan = await service.plan(_plan_request(req, limits, body["messages"]), deadline)
        if req.stream:
            body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        send = service.clients.stream if req.stream else service.clients.post_json

        async def call(model: ModelConfig, timeout_s: float) -> Any:
            return await send(service.endpoint_for(model), model.deployment, body, timeout_s)

        execution = await service.execute(plan, call, deadline, request_id=rid, api="chat")
        model = execution.model
        if req.stream:
            stream = StreamCall(
                service=service, plan=plan, model=model, request_id=rid, deadline=deadline,
                failed=execution.failed,
                prompt_tokens_estimate=estimate_prompt_tokens(body["messages"], req.tools),
                caller_wants_usage=bool(req.stream_options and req.stream_options.include_usage),
            )  # fmt: skip
            headers = {**_router_headers(model.name, plan.classification, None), "cache-control": "no-cache"}
            return StreamingResponse(
                relay(execution.result, stream), media_type="text/event-stream", headers=headers
            )
        payload: dict[str, Any] = execution.result  # the upstream chat.completion, relayed as JSON
        usage = payload.get("usage") or {}
        outcome = Outcome(
            request_id=rid, api="chat", model=model, latency_ms=deadline.elapsed_ms(),
            failed=execution.failed,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )  # fmt: skip
        rec = await service.record(plan, outcome)
        payload["model"] = model.name
        return JSONResponse(payload, headers=_router_headers(model.name, plan.classification, rec.cost_usd))

    return api
