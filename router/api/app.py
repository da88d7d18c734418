"""The ASGI app factory: one FastAPI app with every route, for the Functions host and ``serve`` alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from router.api import core, handlers
from router.api.auth import AuthMiddleware, build_authenticator, close_authenticator
from router.api.body import COMPONENT_REF
from router.api.middleware import AwaitCostRecords, EdgeMiddleware
from router.api.schemas import DecideRequest, RouteRequest
from router.chat import api as chat_api
from router.chat import azure as azure_api
from router.chat.schemas import AzureChatCompletionRequest, ChatCompletionRequest
from router.quality import api as quality_api
from router.quality.sampler import AfterResponse
from router.reports import api as reports_api
from router.runtime import Runtime

# Bodies parsed by hand (router.api.body): their schemas are added to the OpenAPI document here.
_BODY_MODELS: tuple[type[BaseModel], ...] = (
    RouteRequest,
    DecideRequest,
    ChatCompletionRequest,
    AzureChatCompletionRequest,
)


def create_app(runtime: Runtime | None = None, *, functions_host: bool = False) -> FastAPI:
    """Build the app. Settings are validated here, so a bad setting fails at startup with its name.

    ``functions_host``: built by ``function_app.py``. That host never runs the ASGI lifespan shutdown
    (no drain), so each invocation waits up to ``COST_AWAIT_MS`` for its cost records instead."""
    runtime = runtime or Runtime()
    settings = runtime.settings
    authenticator = build_authenticator(settings, runtime.read_key_row)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await close_authenticator(authenticator)
        await runtime.close()

    app = FastAPI(
        title="Azure LLM model router",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/api/docs" if settings.DOCS_ENABLED else None,
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.authenticator = authenticator
    handlers.install(app)
    app.include_router(core.build_router(runtime))
    app.include_router(chat_api.build_router(runtime))
    app.include_router(azure_api.build_router(runtime))
    app.include_router(reports_api.build_router(runtime))
    app.include_router(quality_api.build_router(runtime))
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.MAX_BODY_BYTES)
    if authenticator is not None:  # outside the edge: no answer at all (not even a 413) without a credential
        app.add_middleware(AuthMiddleware, authenticator=authenticator)
    if functions_host and settings.COST_AWAIT_MS > 0:
        app.add_middleware(AwaitCostRecords, budget_s=settings.COST_AWAIT_MS / 1000)
    app.add_middleware(AfterResponse)  # outermost: quality samples start once the whole call has returned
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in _BODY_MODELS:
            body_schema = model.model_json_schema(ref_template=COMPONENT_REF)
            components.update(body_schema.pop("$defs", {}))
            components[model.__name__] = body_schema
        app.openapi_schema = schema
    return app.openapi_schema
