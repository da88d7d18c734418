"""Azure OpenAI access behind one small protocol (``UpstreamClient``), as httpx does with transports.

Two interchangeable implementations, picked by ``UPSTREAM_CLIENT`` through ``create_upstream``:

- ``openai`` (``sdk.OpenAIClients``): the ``openai`` SDK's ``AsyncAzureOpenAI``, one per endpoint;
- ``aiohttp`` (``aiohttp_client.AiohttpOpenAIClients``): non-streaming calls as one aiohttp POST with the
  same URL, body, Entra token and SDK exception classes; streams through the SDK.

``errors.error_kind`` turns whatever either raises into the (code, kind, retry-after) the pipeline's
retry, fallback and health rules read, so those rules never see an SDK type. Every call takes optional
extra request ``headers`` (Azure's spillover header) and an ``on_headers`` callback that receives the
response headers (``ratelimit.read_limits``: remaining tokens/requests, the deployment that answered),
streams included, at no cost to a call that passes neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from router.upstream.aiohttp_client import AiohttpOpenAIClients
from router.upstream.limits import DEFAULT_MAX_BYTES
from router.upstream.protocol import Completion, UpstreamClient
from router.upstream.sdk import OpenAIClients

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

# Name → class (the UPSTREAM_CLIENT setting); every class takes the same constructor arguments.
IMPLEMENTATIONS: dict[str, type[OpenAIClients] | type[AiohttpOpenAIClients]] = {
    "openai": OpenAIClients,
    "aiohttp": AiohttpOpenAIClients,
}


def create_upstream(
    kind: str,
    credential_factory: Callable[[], AsyncTokenCredential],
    api_version: str,
    timeout_s: float,
    http_client_factory: Callable[[], Any] | None = None,
    max_response_bytes: int = DEFAULT_MAX_BYTES,
) -> UpstreamClient:
    try:
        cls = IMPLEMENTATIONS[kind]
    except KeyError:
        raise ValueError(
            f"unknown UPSTREAM_CLIENT {kind!r}; choose one of {sorted(IMPLEMENTATIONS)}"
        ) from None
    return cls(credential_factory, api_version, timeout_s, http_client_factory, max_response_bytes)


__all__ = ["IMPLEMENTATIONS", "Completion", "UpstreamClient", "create_upstream"]
