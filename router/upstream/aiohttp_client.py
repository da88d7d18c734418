"""Non-streaming Chat Completions over one aiohttp session (``UPSTREAM_CLIENT=aiohttp``).

Why it exists: per call, the ``openai`` SDK spends about 1.4 ms of CPU building an httpx2 request
(URL parsing, header models, option objects) before a byte is sent; the same POST over aiohttp costs
about 0.3 ms (bench/README.md). That one layer is most of the latency the router adds.

What it keeps identical to the SDK path, so the router's retry, fallback and health rules cannot tell the
two apart (tests/test_upstream_clients.py runs both against the same faults):

- the Entra token comes from the same credential and scope; it is kept until five minutes before it
  expires (the margin azure-core's bearer policy uses), and if a refresh fails while the old token is
  still valid the old one is used;
- the URL (``/openai/deployments/{deployment}/chat/completions?api-version=…``) and the JSON body;
- the errors: an HTTP error status becomes the SDK's public exception class for that status, with the
  SDK's own message, ``body`` (the ``error`` object) and response (so ``Retry-After`` reads the same);
  a timeout is ``openai.APITimeoutError``, a refused or reset connection ``openai.APIConnectionError``.

Streaming calls are delegated to an ``OpenAIClients`` it owns (composition, not inheritance): the first
token dominates a stream's latency, so the SDK's request building costs little there. Bodies are read
with the same ``MAX_UPSTREAM_BYTES`` cap as the SDK's (``read_capped``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from router.credentials import OPENAI_SCOPE
from router.upstream.limits import DEFAULT_MAX_BYTES, read_capped
from router.upstream.protocol import ChatFromPostJson, HeaderSink
from router.upstream.sdk import OpenAIClients

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import aiohttp
    from azure.core.credentials import AccessToken
    from azure.core.credentials_async import AsyncTokenCredential

    from router.upstream.sse import SSEStream

USER_AGENT = "azure-model-router (aiohttp)"
REFRESH_MARGIN_S = 300.0


class AiohttpOpenAIClients(ChatFromPostJson):
    """An ``UpstreamClient`` whose non-streaming calls skip the SDK's request building."""

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
        self._max_response_bytes = max_response_bytes
        self._sdk = OpenAIClients(
            credential_factory, api_version, timeout_s, http_client_factory, max_response_bytes
        )
        self._session: aiohttp.ClientSession | None = None
        self._token: AccessToken | None = None
        self._token_lock = asyncio.Lock()
        self._urls: dict[tuple[str, str], str] = {}
        self._sdk_import: asyncio.Future[Any] | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            # Created on first use, inside the running loop. No proxy/netrc look-ups from the
            # environment (as for the Table client); keep-alive connections are reused across calls.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1000, ttl_dns_cache=300),
                trust_env=False,
                skip_auto_headers=("User-Agent",),
            )
            # The SDK is needed only for errors and streams: import it (~0.4 s) in a worker thread now,
            # so the first upstream failure does not pay for it on the request path.
            self._sdk_import = asyncio.get_running_loop().run_in_executor(
                None, importlib.import_module, "openai"
            )
        return self._session

    async def _bearer(self) -> str:
        token = self._token
        if token is not None and token.expires_on - time.time() > REFRESH_MARGIN_S:
            return token.token
        async with self._token_lock:  # one refresh at a time; the others wait and reuse it
            token = self._token
            if token is None or token.expires_on - time.time() <= REFRESH_MARGIN_S:
                try:
                    token = self._token = await self._credential_factory().get_token(OPENAI_SCOPE)
                except Exception:
                    if token is None or token.expires_on <= time.time():
                        raise
        return token.token

    def _url(self, endpoint: str, deployment: str) -> str:
        url = self._urls.get((endpoint, deployment))
        if url is None:
            url = self._urls[(endpoint, deployment)] = (
                f"{endpoint.rstrip('/')}/openai/deployments/{quote(deployment, safe='')}"
                f"/chat/completions?api-version={quote(self._api_version, safe='')}"
            )
        return url

    async def stream(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> SSEStream:  # fmt: skip
        return await self._sdk.stream(
            endpoint, deployment, body, timeout_s, headers=headers, on_headers=on_headers
        )

    async def post_json(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        import aiohttp

        session = self._session_now()
        url = self._url(endpoint, deployment)
        sent = {
            "Authorization": f"Bearer {await self._bearer()}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if headers:
            sent.update(headers)
        payload = json.dumps({**body, "model": deployment}, ensure_ascii=False).encode()
        try:
            async with session.post(
                url,
                data=payload,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                allow_redirects=False,
            ) as response:
                content = await read_capped(response, self._max_response_bytes)
                status = response.status
                if status >= 300:
                    raise _status_error(url, status, list(response.headers.items()), content)
                if on_headers is not None:
                    on_headers(response.headers)
        except TimeoutError as exc:
            import openai

            raise openai.APITimeoutError(request=_request(url)) from exc
        except aiohttp.ClientError as exc:
            import openai

            raise openai.APIConnectionError(
                message=f"Connection error: {exc}", request=_request(url)
            ) from exc
        data = json.loads(content)
        if not isinstance(data, dict):
            raise ValueError("upstream answered with a non-object JSON body")
        return data

    async def close(self) -> None:
        session, self._session, self._token = self._session, None, None
        if session is not None:
            await session.close()
            # Let aiohttp's connection transports finish closing before the loop goes away.
            await asyncio.sleep(0)
        await self._sdk.close()


def _status_error(url: str, status: int, headers: list[tuple[str, str]], content: bytes) -> Exception:
    """The exception the SDK raises for this response, built from its public classes the way the SDK's
    ``AsyncAzureOpenAI`` does (error path only, so its cost is fine)."""
    import httpx2
    import openai

    response = httpx2.Response(status, headers=headers, content=content, request=_request(url))
    message = f"Error code: {status}"
    body: Any = content.decode("utf-8", "replace").strip() or None
    try:
        body = json.loads(content)
    except ValueError:
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
    data = body.get("error", body) if isinstance(body, dict) else body
    by_status: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    default = openai.InternalServerError if status >= 500 else openai.APIStatusError
    return by_status.get(status, default)(message, response=response, body=data)


def _request(url: str) -> Any:
    import httpx2

    return httpx2.Request("POST", url)
