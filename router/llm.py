"""Azure OpenAI access: one ``AsyncAzureOpenAI`` per endpoint for the life of the process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from openai import AsyncAzureOpenAI


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    raw: Any = None


class OpenAIClients:
    """Clients keyed by endpoint, created on first use with an Entra token provider (no API keys).

    The SDK's own retries are off: the router owns the retry/fallback policy, so two layers never
    multiply attempts against a throttled deployment.
    """

    def __init__(
        self,
        credential_factory: Callable[[], AsyncTokenCredential],
        api_version: str,
        timeout_s: float,
        http_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._credential_factory = credential_factory
        self._api_version = api_version
        self._timeout_s = timeout_s
        self._http_client_factory = http_client_factory
        self._clients: dict[str, AsyncAzureOpenAI] = {}
        self._lock = asyncio.Lock()

    def get(self, endpoint: str) -> AsyncAzureOpenAI:
        client = self._clients.get(endpoint)
        if client is None:
            client = self._clients[endpoint] = self._create(endpoint)
        return client

    def _create(self, endpoint: str) -> AsyncAzureOpenAI:
        from azure.identity.aio import get_bearer_token_provider
        from openai import AsyncAzureOpenAI

        from router.credentials import OPENAI_SCOPE

        kwargs: dict[str, Any] = {}
        if self._http_client_factory is not None:
            kwargs["http_client"] = self._http_client_factory()
        return AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=self._api_version,
            azure_ad_token_provider=get_bearer_token_provider(self._credential_factory(), OPENAI_SCOPE),
            max_retries=0,
            timeout=self._timeout_s,
            **kwargs,
        )

    async def chat(
        self, endpoint: str, deployment: str, messages: list[dict[str, Any]], timeout_s: float, **params: Any
    ) -> Completion:
        response = await self.get(endpoint).chat.completions.create(
            model=deployment,
            messages=messages,  # type: ignore[arg-type]
            timeout=timeout_s,
            **params,
        )
        usage = response.usage
        text = response.choices[0].message.content if response.choices else None
        return Completion(
            text=text or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            raw=response,
        )

    async def create(self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float) -> Any:
        """A Chat Completions call with the caller's parameters passed through as given (the SDK's
        ``extra_body`` carries any it has no keyword for). Returns the SDK object or, with
        ``stream: true``, the SDK's async stream."""
        params = dict(body)
        params.pop("model", None)
        messages = params.pop("messages")
        return await self.get(endpoint).chat.completions.create(
            model=deployment, messages=messages, timeout=timeout_s, **params
        )

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
