"""``UPSTREAM_CLIENT=openai``: one ``AsyncAzureOpenAI`` per endpoint for the life of the process."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from router.credentials import OPENAI_SCOPE
from router.upstream.limits import DEFAULT_MAX_BYTES
from router.upstream.protocol import ChatFromPostJson, HeaderSink
from router.upstream.sse import SSEStream

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from openai import AsyncAzureOpenAI


class OpenAIClients(ChatFromPostJson):
    """Clients keyed by endpoint, created on first use with an Entra token provider (no API keys).

    The SDK's own retries are off: the router owns the retry/fallback policy, so two layers never
    multiply attempts against a throttled deployment. Every body the SDK reads is capped at
    ``max_response_bytes`` in its HTTP transport (``router.upstream.capped_http``).
    """

    def __init__(
        self,
        credential_factory: Callable[[], AsyncTokenCredential],
        api_version: str,
        timeout_s: float,
        http_client_factory: Callable[[], Any] | None = None,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._credential_factory = credential_factory
        self._api_version = api_version
        self._timeout_s = timeout_s
        self._http_client_factory = http_client_factory
        self._max_response_bytes = max_response_bytes
        self._clients: dict[str, AsyncAzureOpenAI] = {}

    def get(self, endpoint: str) -> AsyncAzureOpenAI:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = self._create(endpoint)
        return client

    def _create(self, endpoint: str) -> AsyncAzureOpenAI:
        from azure.identity.aio import get_bearer_token_provider
        from openai import AsyncAzureOpenAI

        from router.upstream.capped_http import capped_http_client  # imports httpx2: not at startup

        factory = self._http_client_factory
        http_client = factory() if factory is not None else capped_http_client(self._max_response_bytes)
        return AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=self._api_version,
            azure_ad_token_provider=get_bearer_token_provider(self._credential_factory(), OPENAI_SCOPE),
            max_retries=0,
            timeout=self._timeout_s,
            http_client=http_client,
        )

    async def post_json(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """A non-streaming Chat Completions call through the SDK's documented low-level ``post``: same
        Entra token provider, Azure deployment URL and error mapping as ``chat.completions.create``,
        without building typed request and response objects the router would only turn back into JSON
        (about 0.5 ms per call). The caller's parameters go through exactly as given."""
        import httpx2

        response = await self.get(endpoint).post(
            "/chat/completions",
            body={**body, "model": deployment},
            cast_to=httpx2.Response,
            options=_options(timeout_s, headers),
        )
        if on_headers is not None:
            on_headers(response.headers)
        data = json.loads(response.content)
        if not isinstance(data, dict):
            raise ValueError("upstream answered with a non-object JSON body")
        return data

    async def stream(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> SSEStream:  # fmt: skip
        """A streaming Chat Completions call through the same ``post``: the SDK sends it and raises its
        errors; the body is left unread for ``SSEStream`` (which knows whether ``[DONE]`` came)."""
        import httpx2

        response = await self.get(endpoint).post(
            "/chat/completions",
            body={**body, "model": deployment},
            cast_to=httpx2.Response,
            options=_options(timeout_s, headers),
            stream=True,
        )
        if on_headers is not None:
            on_headers(response.headers)
        return SSEStream(response)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


def _options(timeout_s: float, headers: Mapping[str, str] | None) -> Any:
    return {"timeout": timeout_s, "headers": dict(headers)} if headers else {"timeout": timeout_s}
