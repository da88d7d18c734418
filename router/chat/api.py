"""``/api/v1/chat/completions`` and ``/api/v1/models``: a drop-in base_url for OpenAI SDK apps; and
``complete``, the one chat-completion path that every surface calls (Azure's wire format too,
``router.chat.azure``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from router.api.body import json_body, parse_body
from router.api.caller import caller_of
from router.api.handlers import request_id
from router.api.schemas import ConstraintsIn
from router.chat.affinity import (
    ROUTE_REASON_HEADER,
    SESSION_HEADER,
    conversation_turns,
    session_model,
    session_value,
)
from router.chat.conversation import estimate_prompt_tokens, routing_text
from router.chat.schemas import OPENAI_ERRORS, ChatCompletionRequest
from router.chat.stream import StreamCall, relay
from router.errors import RouterError
from router.pipeline.admission import prompt_upper_bound
from router.pipeline.affinity import route_reason
from router.pipeline.capabilities import needs_of, translate
from router.pipeline.plan import Ask, PlanRequest
from router.pipeline.record import Outcome
from router.upstream.protocol import completion_from
from router.upstream.usage import TokenUsage, read_usage, reply_chars

if TYPE_CHECKING:
    from router.callers.identity import Caller
    from router.models.config import ModelConfig
    from router.pipeline.backends import Target
    from router.pipeline.execute import Deadline, Execution
    from router.pipeline.plan import Plan
    from router.pipeline.service import RouterService
    from router.quality.sampler import Later
    from router.runtime import Runtime
    from router.settings import Settings

# Comma-separated names of the caller's parameters the router changed before sending the request
# (today: max_tokens / max_completion_tokens clamped to MAX_OUTPUT_TOKENS on an auto-routed call).
DROPPED_PARAMS_HEADER = "x-router-dropped-params"
_OUTPUT_LIMITS = ("max_tokens", "max_completion_tokens")
# "downgraded": the caller was over budget and the cheapest model within it answered (router.callers).
BUDGET_HEADER = "x-router-budget"

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


def bill_limits(req: ChatCompletionRequest, body: dict[str, Any], settings: Settings) -> list[str]:
    """Bound what one call can cost before it is sent: ``n`` over ``MAX_CHOICES`` is the caller's 400;
    an output limit over ``MAX_OUTPUT_TOKENS`` is a 400 on a pinned model (the caller chose that model and
    its price) and clamped on auto (the router chose; it answers within its own bounds). Returns the
    names of the clamped parameters, for ``x-router-dropped-params``."""
    if req.n is not None and req.n > settings.MAX_CHOICES:
        raise RouterError(f"n must be at most {settings.MAX_CHOICES} (MAX_CHOICES)", code="validation_error",
                          status=400, param="n")  # fmt: skip
    limit, clamped = settings.MAX_OUTPUT_TOKENS, []
    for name in _OUTPUT_LIMITS:
        value = body.get(name)
        if value is None or value <= limit:
            continue
        if not req.routed:
            raise RouterError(f"{name} must be at most {limit} (MAX_OUTPUT_TOKENS)", code="validation_error",
                              status=400, param=name)  # fmt: skip
        body[name] = limit
        clamped.append(name)
    return clamped


def _output_bound(body: dict[str, Any], prompt_estimate: int, settings: Settings) -> TokenUsage:
    """The most an answer could have used (for one dropped unread for its size): every choice at its
    output limit, as sent."""
    output = body.get("max_completion_tokens") or body.get("max_tokens") or settings.MAX_OUTPUT_TOKENS
    return TokenUsage(prompt_estimate, output * (body.get("n") or 1), estimated=True)


def _plan_request(
    req: ChatCompletionRequest,
    limits: ConstraintsIn,
    body: dict[str, Any],
    prompt_estimate: int,
    caller: Caller,
    session: str | None,
) -> PlanRequest:
    """``session``: the caller's x-router-session header, or None when CONVERSATION_AFFINITY is off (the
    earlier turns are then not read either)."""
    output = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    turns = conversation_turns(body["messages"]) if session is not None and req.routed else None
    choices = body.get("n") or 1
    ask = Ask(prompt_upper_bound(body["messages"], req.tools), output or None, choices,
              rate_tokens=prompt_estimate + output * choices)  # fmt: skip
    return PlanRequest(
        text=routing_text(body["messages"]),
        constraints=limits.to_constraints(),
        allow_outside_constraints=limits.allow_fallback_outside_constraints,
        pinned=None if req.routed else req.model,
        context_tokens=prompt_estimate + output,
        needs=needs_of(body),
        caller=caller,
        earlier=turns.earlier if turns else (),
        session_model=session_model(session) if turns else None,
        turn_key=turns.key if turns else None,
        ask=ask,
    )


def _router_headers(plan: Plan, model: str, cost: float | None) -> dict[str, str]:
    """The x-router-* headers of an answer from ``model``; ``x-router-session`` names it for the next turn,
    ``x-router-budget`` says when a budget downgraded it."""
    classification = plan.classification
    headers = {
        "x-router-model": model,
        ROUTE_REASON_HEADER: route_reason(plan.route_reason, plan.chain[0].name, model),
        SESSION_HEADER: session_value(model),
        "x-router-complexity": f"{classification.complexity:.4f}",
        "x-router-classifier": classification.classifier,
        "x-router-scorer": classification.scorer,
    }
    if cost is not None:
        headers["x-router-cost-usd"] = f"{cost:.8f}"
    if plan.budget is not None:
        headers[BUDGET_HEADER] = plan.budget
    return headers


def _quality_sample(
    runtime: Runtime, plan: Plan, model: ModelConfig, rid: str, body: dict[str, Any], api: str
) -> Later | None:
    """Whether this call is also compared with the baseline, after its response (router.quality)."""
    if runtime.settings.QUALITY_SAMPLE_RATE <= 0:
        return None  # the default: not even the routing text is rebuilt
    messages = body["messages"]
    return runtime.sampler.consider(plan, model, request_id=rid, api=api, prompt=routing_text(messages),
                                    messages=messages, params=body)  # fmt: skip


async def model_list(runtime: Runtime) -> dict[str, Any]:
    """``auto`` and every enabled catalogue model, as OpenAI's ``GET /models`` lists them."""
    service = await runtime.service()
    models = await service.models()
    data = [{"id": "auto", "object": "model", "created": 0, "owned_by": "router"}]
    data += [{"id": m.name, "object": "model", "created": 0, "owned_by": "azure-openai"} for m in models]
    return {"object": "list", "data": data}


def _check_pinned(service: RouterService, plan: Plan, body: dict[str, Any], routed: bool) -> None:
    """The caller chose the model: a parameter it refuses is their 400, before any call (nothing
    spent: the budget reservation is released)."""
    if routed:
        return
    try:
        translate(body, plan.chain[0], pinned=True)
    except RouterError:
        service.release(plan)
        raise


def _sender(service: RouterService, req: ChatCompletionRequest, body: dict[str, Any]) -> Any:
    """The upstream call for this request; a stream asks for its usage (the cost record needs it)."""
    if req.stream:
        body["stream_options"] = {**body.get("stream_options", {}), "include_usage": True}
        return service.clients.stream
    return service.clients.post_json


def build_router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/api/v1")

    @api.get("/models", responses=OPENAI_ERRORS)
    async def list_models() -> dict[str, Any]:
        return await model_list(runtime)

    @api.post("/chat/completions", responses=OPENAI_ERRORS, openapi_extra=json_body(ChatCompletionRequest))
    async def chat_completions(request: Request) -> Any:
        # Any Authorization: Bearer value is ignored: in Azure the Functions host checks the function key.
        return await complete(runtime, request, await parse_body(request, ChatCompletionRequest))

    return api


async def complete(runtime: Runtime, request: Request, req: ChatCompletionRequest, api: str = "chat") -> Any:
    """One chat completion, for every surface that serves one (``/api/v1`` and Azure's wire format):
    plan → execute → record, streamed or JSON. ``api`` is what the cost record says made the call."""
    rid = request_id(request)
    service = await runtime.service()
    limits = _limits(request, req)
    deadline = service.deadline(limits.to_constraints())
    body = req.upstream_body()  # the messages as sent upstream are also what routing reads
    dropped = bill_limits(req, body, service.settings)
    prompt_estimate = estimate_prompt_tokens(body["messages"], req.tools)
    session = request.headers.get(SESSION_HEADER, "") if service.settings.CONVERSATION_AFFINITY else None
    planned = _plan_request(req, limits, body, prompt_estimate, caller_of(request), session)
    plan = await service.plan(planned, deadline)
    _check_pinned(service, plan, body, req.routed)
    send = _sender(service, req, body)
    changed: dict[str, list[str]] = {}

    async def call(target: Target, timeout_s: float) -> Any:  # target.model: as its backend serves it
        sent = translate(body, model := target.model, pinned=False)  # as it accepts it (fallbacks too)
        changed[model.name] = sent.dropped
        return await send(service.endpoint_for(model), model.deployment, sent.body, timeout_s,
                          headers=target.headers, on_headers=target.on_headers)  # fmt: skip

    bound = _output_bound(body, prompt_estimate, service.settings)
    execution = await service.execute(plan, call, deadline, request_id=rid, api=api, too_large=bound)
    dropped = [*dropped, *(n for n in changed.get(execution.model.name, []) if n not in dropped)]
    extra = {DROPPED_PARAMS_HEADER: ",".join(dropped)} if dropped else {}
    later = _quality_sample(runtime, plan, execution.model, rid, body, api)
    if req.stream:
        stream = StreamCall(
            service=service, plan=plan, model=execution.model, request_id=rid, deadline=deadline,
            failed=execution.failed, prompt_tokens_estimate=prompt_estimate,
            caller_wants_usage=bool(req.stream_options and req.stream_options.include_usage),
            idle_timeout_s=service.settings.STREAM_IDLE_TIMEOUT_S,
            on_end=later.stream_ended if later is not None else None, api=api,
        )  # fmt: skip
        headers = {**_router_headers(plan, execution.model.name, None), **extra}
        headers["cache-control"] = "no-cache"
        events = relay(execution.result, stream)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers, background=later)
    reply = JsonReply(rid, deadline, prompt_estimate, extra, later, api)
    return await _json_reply(service, plan, execution, reply)


@dataclass(frozen=True, slots=True)
class JsonReply:
    """What the non-streaming answer needs besides the execution: for its record and its headers."""

    request_id: str
    deadline: Deadline
    prompt_estimate: int
    headers: dict[str, str]
    later: Later | None = None  # a quality sample, compared after the response is sent
    api: str = "chat"


async def _json_reply(
    service: RouterService, plan: Plan, execution: Execution[Any], reply: JsonReply
) -> JSONResponse:
    """The upstream chat.completion relayed as JSON (its ``usage`` as sent). The record is built in
    ``finally`` from the usage coerced or, when missing or invalid, estimated and flagged."""
    model, payload = execution.model, execution.result
    usage = TokenUsage(reply.prompt_estimate, 0, estimated=True)
    try:
        usage = read_usage(payload.get("usage"), reply.prompt_estimate, reply_chars(payload))
        payload["model"] = model.name
    finally:
        outcome = Outcome(
            request_id=reply.request_id, api=reply.api, model=model, latency_ms=reply.deadline.elapsed_ms(),
            failed=execution.failed, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, usage_estimated=usage.estimated,
            cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
        )  # fmt: skip
        rec = await service.record(plan, outcome)
    headers = {**_router_headers(plan, model.name, rec.cost_usd), **reply.headers}
    if reply.later is not None:
        reply.later.answered(completion_from(payload, []).text, rec.cost_usd)
    return JSONResponse(payload, headers=headers, background=reply.later)
