"""The ``openai`` SDK's HTTP client with ``MAX_UPSTREAM_BYTES`` enforced in its transport.

Imported only when the first SDK client is built (httpx2 stays off the import path at startup).
``UpstreamTooLarge`` is not an httpx exception, so the SDK re-raises it unchanged from a call or a
stream instead of wrapping it as a connection error that the router would retry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
from openai import DefaultAsyncHttpxClient

from router.errors import UpstreamTooLarge
from router.upstream.limits import check_length

# The SDK's own pool defaults (openai._constants.DEFAULT_CONNECTION_LIMITS).
_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


def capped_http_client(max_bytes: int) -> httpx2.AsyncClient:
    """The client the SDK builds by default (timeouts, pool limits, redirects), every body capped.

    No proxies from the environment (as for the aiohttp client and the Table client): httpx would send
    proxied requests through transports of its own, around the cap."""
    transport = CappedTransport(httpx2.AsyncHTTPTransport(limits=_LIMITS), max_bytes)
    return DefaultAsyncHttpxClient(transport=transport, limits=_LIMITS, trust_env=False)


class CappedStream(httpx2.AsyncByteStream):
    """A response's bytes as they arrive (on the wire, before any decompression), counted."""

    def __init__(self, inner: httpx2.AsyncByteStream, max_bytes: int) -> None:
        self._inner = inner
        self._max = max_bytes
        self.size = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._inner:
            self.size += len(part)
            if self.size > self._max:
                raise UpstreamTooLarge(self._max)
            yield part

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx2.AsyncBaseTransport):
    """Wraps a transport: a declared Content-Length over the cap fails before the body is read."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, max_bytes: int) -> None:
        self._inner = inner
        self._max = max_bytes

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        try:
            check_length(response.headers, self._max)
        except UpstreamTooLarge:
            await response.aclose()
            raise
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = CappedStream(response.stream, self._max)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
