"""Azure OpenAI's wire format, so an unchanged ``AzureOpenAI`` / ``AsyncAzureOpenAI`` client (or the
OpenAI SDK on Azure's v1 API) works by pointing its endpoint at the router:

- ``POST /openai/deployments/{name}/chat/completions?api-version=…``: ``name`` is ``auto``, a catalogue
  model or one of its deployment names; the body's ``model`` is ignored, as with Azure.
- ``POST /openai/v1/chat/completions`` and ``GET /openai/v1/models``: Azure's v1 API (``base_url`` =
  ``{endpoint}/openai/v1/``); ``model`` is ``auto``, a catalogue model or a deployment name.
- ``GET /openai/models?api-version=…``: what ``AzureOpenAI.models.list()`` calls.

One implementation: these call the same ``router.chat.api.complete`` as ``/api/v1`` (records say
``api="azure"``). Errors have Azure's shape (``router.api.error_bodies``), responses carry
``apim-request-id`` (``router.api.middleware``), and a call every deployment throttles is Azure's 429
with ``retry-after`` / ``retry-after-ms`` where ``/api/v1`` answers 502.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from router.api.body import json_body, parse_body
from router.chat.api import complete, model_list
from router.chat.azure_wire import (
    API_VERSION,
    DATED_VERSION,
    THROTTLED_CODES,
    V1_VERSIONS,
    check_dated_version,
    check_v1_version,
    resolve_deployment,
    throttled,
)
from router.chat.schemas import AZURE_ERRORS, AzureChatCompletionRequest, ChatCompletionRequest
from router.errors import UpstreamError
from router.pipeline.backends import backend_key

if TYPE_CHECKING:
    from router.runtime import Runtime

AZURE_API = "azure"  # the cost record's api for calls on these paths


def _version_doc(dated: bool) -> dict[str, Any]:
    """``openapi_extra`` for the hand-checked ``api-version`` query parameter (required when dated)."""
    schema: dict[str, Any] = {"type": "string", "pattern": DATED_VERSION, "example": "2024-10-21"}
    if not dated:
        schema = {"type": "string", "enum": list(V1_VERSIONS)}
    return {"parameters": [{"name": API_VERSION, "in": "query", "required": dated, "schema": schema}]}


def _doc(body: type[ChatCompletionRequest], dated: bool) -> dict[str, Any]:
    return {**json_body(body), **_version_doc(dated)}


async def _complete(runtime: Runtime, request: Request, req: ChatCompletionRequest) -> Any:
    try:
        return await complete(runtime, request, req, api=AZURE_API)
    except UpstreamError as exc:
        if exc.code not in THROTTLED_CODES:
            raise
        service = await runtime.service()
        health, models = service.health, await service.models()  # health is kept per backend
        cooldowns = [health.cooldown_remaining(backend_key(m, b)) for m in models for b in m.backends]
        raise throttled(exc, cooldowns, service.settings.COOLDOWN_DEFAULT_S) from None


def build_router(runtime: Runtime) -> APIRouter:
    api = APIRouter(prefix="/openai")
    deployment_doc = _doc(AzureChatCompletionRequest, dated=True)

    @api.post(
        "/deployments/{deployment}/chat/completions", responses=AZURE_ERRORS, openapi_extra=deployment_doc
    )
    async def deployment_chat(request: Request, deployment: str) -> Any:
        check_dated_version(request.query_params.get(API_VERSION))
        service = await runtime.service()
        name = resolve_deployment(deployment, await service.models(), param=None)
        req = await parse_body(request, AzureChatCompletionRequest)
        return await _complete(runtime, request, req.model_copy(update={"model": name}))

    @api.post(
        "/v1/chat/completions", responses=AZURE_ERRORS, openapi_extra=_doc(ChatCompletionRequest, False)
    )
    async def v1_chat(request: Request) -> Any:
        check_v1_version(request.query_params.get(API_VERSION))
        req = await parse_body(request, ChatCompletionRequest)
        service = await runtime.service()
        name = resolve_deployment(req.model, await service.models(), param="model")
        return await _complete(runtime, request, req.model_copy(update={"model": name}))

    @api.get("/v1/models", responses=AZURE_ERRORS, openapi_extra=_version_doc(False))
    async def v1_models(request: Request) -> dict[str, Any]:
        check_v1_version(request.query_params.get(API_VERSION))
        return await model_list(runtime)

    @api.get("/models", responses=AZURE_ERRORS, openapi_extra=_version_doc(True))
    async def models(request: Request) -> dict[str, Any]:
        check_dated_version(request.query_params.get(API_VERSION))
        return await model_list(runtime)

    return api
