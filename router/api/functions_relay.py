"""The HTTP streams relay: the router's ASGI app served from the Python worker's own HTTP server.

HTTP streams (azurefunctions-extensions-http-fastapi, PYTHON_ENABLE_INIT_INDEXING=1): the worker runs
its own HTTP server and the Functions host proxies each request to it, so a response leaves as the app
produces it. The trigger in ``function_app.py`` hands over the worker's FastAPI ``Request``; ``relay``
runs the same ASGI app that ``python -m router serve`` runs on it and returns a ``StreamingResponse``
that forwards every body chunk as the app sends it (Server-Sent Events included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from azurefunctions.extensions.http.fastapi import Request, StreamingResponse
from starlette.types import ASGIApp

from router.settings import HTTP_RESPONSE_LIMIT_S

log = logging.getLogger("router")

Message = MutableMapping[str, Any]
# The HTTP connection scope of the ASGI spec: what the router's app gets from the worker's request. The
# keys the worker's own FastAPI app added while routing to the trigger (app, router, route, endpoint,
# path_params, its exit stacks) stay behind, so the router's app routes the request afresh and nothing
# of it is tied to the trigger call, which returns as soon as the response starts.
_HTTP_SCOPE_KEYS = frozenset(
    [
        "type",
        "asgi",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "root_path",
        "query_string",
        "headers",
        "client",
        "server",
        "extensions",
    ]
)
# A response still open this long after the request arrived is ended by the relay (an SSE error event
# for event streams), just before Azure's front end would cut the connection at 230 s.
RESPONSE_CUTOFF_S = HTTP_RESPONSE_LIMIT_S - 5
_background: set[asyncio.Task[None]] = set()
_DONE: Message = {"type": "relay.done"}
_CUTOFF_EVENT = (
    b'data: {"error":{"message":"response time limit reached","type":"server_error",'
    b'"param":null,"code":"response_time_limit"}}\n\n'
)


async def relay(asgi: ASGIApp, request: Request, cutoff_s: float = RESPONSE_CUTOFF_S) -> StreamingResponse:
    """Run ``asgi`` on the worker's request; the response's status and headers once the app starts it,
    then each body chunk as it is sent."""
    started = time.monotonic()
    scope = {k: v for k, v in request.scope.items() if k in _HTTP_SCOPE_KEYS}
    scope["state"] = {}
    sent: asyncio.Queue[Message] = asyncio.Queue()

    async def send(message: Message) -> None:
        await sent.put(message)

    async def run() -> None:
        try:
            await asgi(scope, request.receive, send)
        finally:
            sent.put_nowait(_DONE)  # ends the body even if the app failed after starting the response

    task = asyncio.create_task(run())
    _background.add(task)  # keeps a stream that outlives this call (the invocation) referenced
    task.add_done_callback(_background.discard)
    start = await sent.get()
    if start is _DONE:
        await task  # the app ended without a response: its error (the worker's server answers 500)
        raise RuntimeError("the app sent no response")
    response = StreamingResponse(_body(sent, task, started + cutoff_s, start), status_code=start["status"])
    response.raw_headers = list(start.get("headers", []))
    return response


async def _body(
    sent: asyncio.Queue[Message], task: asyncio.Task[None], cutoff: float, start: Message
) -> AsyncIterator[bytes]:
    more = True
    while more:
        try:
            message = await asyncio.wait_for(sent.get(), max(cutoff - time.monotonic(), 0))
        except TimeoutError:
            log.warning("response cut off before the platform's %.0f s limit", HTTP_RESPONSE_LIMIT_S)
            if _is_event_stream(start):
                yield _CUTOFF_EVENT
            task.cancel()
            return
        if message is _DONE:
            return
        if message["type"] == "http.response.body":
            if message.get("body"):
                yield message["body"]
            more = message.get("more_body", False)
    # The app's call goes on after its last body chunk: under the Functions host it awaits the request's
    # cost records (COST_AWAIT_MS). The response ends only when that call returns, so the request counts
    # as in flight (for the host's drain on recycle or scale-in) until its records are stored or logged.
    remaining = max(cutoff - time.monotonic(), 0)
    with contextlib.suppress(TimeoutError):
        while await asyncio.wait_for(sent.get(), remaining) is not _DONE:
            pass


def _is_event_stream(start: Message) -> bool:
    headers = start.get("headers", [])
    return any(k.lower() == b"content-type" and v.startswith(b"text/event-stream") for k, v in headers)
