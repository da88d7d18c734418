"""The ASGI app factory. Thin handlers: validate at the edge, call the service, shape the answer."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.api.errors import error_body
from router.api.middleware import EdgeMiddleware
from router.api.schemas import (
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
from router.errors import RouterError
from router.runtime import Runtime

log = logging.getLogger("router.api")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 405, 413, 502, 503, 504)
}
_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(request.url.path, status, code, message, _request_id(request), param)
    return JSONResponse(body, status_code=status, headers=headers)


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def _validation_message(exc: RequestValidationError) -> tuple[str, str, str | None]:
    """(code, message naming the field(s), the first field)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "invalid_json", "request body is not valid JSON", None
    parts = []
    fields = []
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        fields.append(field)
        if e.get("type") == "extra_forbidden":
            parts.append(f"{field}: unrecognized request argument")
        else:
            parts.append(f"{field}: {e.get('msg', 'invalid')}")
    return "validation_error", "; ".join(parts), fields[0] if fields else None


M = TypeVar("M", bound=BaseModel)
_COMPONENT_REF = "#/components/schemas/{model}"
_BODY_MODELS: tuple[type[BaseModel], ...] = (RouteRequest,)


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI for a body parsed by hand (any content type; one pydantic pass straight from bytes)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": _COMPONENT_REF.format(model=model.__name__)}}
            },
        }
    }


async def parse_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """Build the app. Settings are validated here, so a bad setting fails at startup with its name."""
    runtime = runtime or Runtime()
    settings = runtime.settings

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.close()

    app = FastAPI(
        title="Azure LLM model router",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, param = _validation_message(exc)
        return error_response(request, 400, code, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
        return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RouterError)
    async def _router_error(request: Request, exc: RouterError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.message, param=exc.param)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = _request_id(request)
        log.error("unhandled error in request %s: %s", rid, type(exc).__name__, exc_info=exc)
        return error_response(request, 500, "internal_error", "internal error; quote the request id")

    @app.post(
        "/api/route", response_model=RouteResponse, responses=_ERRORS, openapi_extra=_json_body(RouteRequest)
    )
    async def route(request: Request) -> Response:
        body = await parse_body(request, RouteRequest)
        rid = _request_id(request)
        service = await runtime.service()
        result = await service.route(body.query, body.to_constraints(), rid, body.allow_outside_constraints)
        _log_call(rid, result.model.name, result.classification.complexity, result.cost_usd, body.query)
        answer = RouteResponse(
            response=result.text,
            model_used=result.model.name,
            estimated_cost=result.cost_usd,
            complexity=result.classification.complexity,
            classifier=result.classification.classifier,
            usage=Usage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
            ),
            latency_ms=round(result.latency_ms, 3),
            request_id=rid,
            fallbacks=[FallbackOut(model=a.model, error_code=a.error_code) for a in result.fallbacks],
        )
        # Built from typed values just above: serialised once here, not re-validated by FastAPI.
        return Response(answer.model_dump_json(), media_type="application/json")

    @app.post(
        "/api/decide",
        response_model=DecideResponse,
        responses=_ERRORS,
        openapi_extra=_json_body(RouteRequest),
    )
    async def decide(request: Request) -> DecideResponse:
        body = await parse_body(request, RouteRequest)
        service = await runtime.service()
        decision, classification = await service.decide(body.query, body.to_constraints())
        return DecideResponse(
            model=decision.model.name,
            complexity=classification.complexity,
            classifier=classification.classifier,
            candidates=[m.name for m in decision.candidates],
            reason=decision.reason,
            request_id=_request_id(request),
        )

    @app.get("/api/models", response_model=ModelsResponse, responses=_ERRORS)
    async def models() -> ModelsResponse:
        service = await runtime.service()
        await service.models()
        return ModelsResponse(
            models=[
                ModelOut(
                    **m.model_dump(exclude={"input_cost_per_1k", "output_cost_per_1k"}),
                    input_cost_per_1k=m.input_price,
                    output_cost_per_1k=m.output_price,
                )
                for m in await service.catalog.all_models()
            ]
        )

    @app.get("/api/health", response_model=HealthResponse, responses=_ERRORS)
    async def health() -> HealthResponse:
        service = await runtime.service()
        models = await service.models()
        return HealthResponse(
            status="ok",
            models=len(models),
            pending_cost_records=service.recorder.pending,
            unhealthy=service.health.snapshot(),
        )

    def _log_call(rid: str, model: str, complexity: float, cost: float, query: str) -> None:
        if settings.LOG_PROMPTS:
            log.info(
                "route %s model=%s complexity=%.3f cost=%.8f query=%r", rid, model, complexity, cost, query
            )
        else:
            log.info("route %s model=%s complexity=%.3f cost=%.8f", rid, model, complexity, cost)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in body_models:
                body_schema = model.model_json_schema(ref_template=_COMPONENT_REF)
                components.update(body_schema.pop("$defs", {}))
                components[model.__name__] = body_schema
            app.openapi_schema = schema
        return app.openapi_schema

    from router.chat.api import build_router as chat_router
    from router.chat.schemas import ChatCompletionRequest

    body_models: tuple[type[BaseModel], ...] = (*_BODY_MODELS, ChatCompletionRequest)
    app.include_router(chat_router(runtime))
    from router.reports.api import build_router as reports_router

    app.include_router(reports_router(runtime))

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.MAX_BODY_BYTES)
    return app
