"""``/api/route``, ``/api/decide``, ``/api/models``, ``/api/health``: the router's own API.

Thin handlers: validate at the edge, run the pipeline, shape the answer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from router.api.body import json_body, parse_body
from router.api.caller import caller_of
from router.api.handlers import request_id
from router.api.schemas import (
    DecideRequest,
    DecideResponse,
    ErrorResponse,
    FallbackOut,
    HealthResponse,
    ModelOut,
    ModelsResponse,
    RouteRequest,
    RouteResponse,
    Usage,
)
from router.chat.affinity import ROUTE_REASON_HEADER, SESSION_HEADER, conversation_turns, session_model
from router.chat.conversation import routing_text
from router.pipeline.plan import PlanRequest

if TYPE_CHECKING:
    from router.callers.identity import Caller
    from router.pipeline.affinity import EarlierTurn
    from router.pipeline.service import RouteResult
    from router.quality.sampler import Later
    from router.runtime import Runtime

log = logging.getLogger("router.api")

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 405, 413, 429, 502, 503, 504)
}

_PRICE_FIELDS = ("input_cost_per_1k", "output_cost_per_1k", "cached_input_cost_per_1k")


def route_response(result: RouteResult, rid: str) -> RouteResponse:
    c = result.classification
    return RouteResponse(
        response=result.text,
        model_used=result.model.name,
        estimated_cost=result.cost_usd,
        complexity=c.complexity,
        classifier=c.classifier,
        scorer=c.scorer,
        usage=Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        ),
        latency_ms=round(result.latency_ms, 3),
        request_id=rid,
        fallbacks=[FallbackOut(model=a.model, error_code=a.error_code) for a in result.fallbacks],
    )


def _log_route(rid: str, result: RouteResult, query: str | None) -> None:
    """One line per routed call; the prompt only when ``LOG_PROMPTS`` is on."""
    c = result.classification
    line = "route %s model=%s complexity=%.4f scorer=%s cost=%.8f"
    args = (rid, result.model.name, c.complexity, c.scorer, result.cost_usd)
    if query is None:
        log.info(line, *args)
    else:
        log.info(line + " query=%r", *args, query)


def _quality_sample(runtime: Runtime, result: RouteResult, rid: str, query: str) -> Later | None:
    """Whether this call is also compared with the baseline, after its response (router.quality)."""
    if runtime.settings.QUALITY_SAMPLE_RATE <= 0:
        return None
    messages = [{"role": "user", "content": query}]
    later = runtime.sampler.consider(
        result.plan, result.model, request_id=rid, api="route", prompt=query, messages=messages
    )
    if later is not None:
        later.answered(result.text, result.cost_usd)
    return later


def decide_request(body: DecideRequest, caller: Caller, session: str | None, affinity: bool) -> PlanRequest:
    """What /api/decide plans: the query alone, or (with ``messages``) the conversation it ends, read as
    the chat endpoint reads it, its earlier turns and ``x-router-session`` included when affinity is on."""
    text = body.query
    earlier: tuple[EarlierTurn, ...] = ()
    if body.messages:
        turn = {"role": "user", "content": body.query}
        messages = [*(m.model_dump(mode="json") for m in body.messages), turn]
        text = routing_text(messages)
        if affinity:
            earlier = conversation_turns(messages).earlier
    return PlanRequest(text, body.to_constraints(), needs=body.needs(), caller=caller, earlier=earlier,
                       session_model=session_model(session) if affinity else None)  # fmt: skip


def build_router(runtime: Runtime) -> APIRouter:
    api = APIRouter()
    log_prompts = runtime.settings.LOG_PROMPTS

    @api.post(
        "/api/route", response_model=RouteResponse, responses=ERRORS, openapi_extra=json_body(RouteRequest)
    )
    async def route(request: Request) -> Response:
        body = await parse_body(request, RouteRequest)
        rid = request_id(request)
        service = await runtime.service()
        result = await service.route(
            body.query, body.to_constraints(), rid, body.allow_outside_constraints, caller_of(request)
        )
        _log_route(rid, result, body.query if log_prompts else None)
        payload = route_response(result, rid).model_dump_json()  # typed: serialised once, not re-validated
        later = _quality_sample(runtime, result, rid, body.query)
        headers = {"x-router-scorer": result.classification.scorer}
        if result.plan.budget is not None:  # over budget: the cheapest model within it answered
            headers["x-router-budget"] = result.plan.budget
        return Response(payload, media_type="application/json", headers=headers, background=later)

    @api.post(
        "/api/decide", response_model=DecideResponse, responses=ERRORS, openapi_extra=json_body(DecideRequest)
    )
    async def decide(request: Request, response: Response) -> DecideResponse:
        body = await parse_body(request, DecideRequest)
        service = await runtime.service()
        session = request.headers.get(SESSION_HEADER) if service.settings.CONVERSATION_AFFINITY else None
        planned = decide_request(body, caller_of(request), session, service.settings.CONVERSATION_AFFINITY)
        plan = await service.plan(
            planned, service.deadline(planned.constraints), admit=False
        )  # no paid answer
        decision, classification = plan.decision, plan.classification
        response.headers["x-router-scorer"] = classification.scorer
        response.headers["x-router-model"] = decision.model.name
        response.headers[ROUTE_REASON_HEADER] = plan.route_reason
        return DecideResponse(
            model=decision.model.name,
            complexity=classification.complexity,
            classifier=classification.classifier,
            scorer=classification.scorer,
            candidates=[m.name for m in decision.candidates],
            reason=decision.reason,
            route_reason=plan.route_reason,
            request_id=request_id(request),
        )

    _add_state_routes(api, runtime)
    return api


def _add_state_routes(api: APIRouter, runtime: Runtime) -> None:
    """``/api/models`` and ``/api/health``: what this instance is working with."""

    @api.get("/api/models", response_model=ModelsResponse, responses=ERRORS)
    async def models() -> ModelsResponse:
        service = await runtime.service()
        await service.models()
        out = []
        for m in await service.catalog.all_models():
            fields = m.model_dump(exclude=set(_PRICE_FIELDS))
            prices = {"input_cost_per_1k": m.input_price, "output_cost_per_1k": m.output_price,
                      "cached_input_cost_per_1k": m.cached_input_price}  # fmt: skip
            out.append(ModelOut(**fields, **prices))
        return ModelsResponse(models=out)

    @api.get("/api/health", response_model=HealthResponse, responses=ERRORS)
    async def health() -> HealthResponse:
        service = await runtime.service()
        models = await service.models()
        return HealthResponse(
            status="ok",
            models=len(models),
            pending_cost_records=service.recorder.pending,
            dropped_cost_records=service.recorder.dropped,
            unhealthy=service.health.snapshot(),
            capacity=service.health.capacity(),
        )
