"""Pure-ASGI middleware: a request id on every response, a hard cap on body size, and (under the
Functions host) an invocation that waits for its cost records."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.api.error_bodies import AZURE_PREFIX, error_bytes
from router.costs.recorder import awaiting_records
from router.errors import BodyTooLarge

_SANE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name.lower() == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _SANE_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:  # the Functions ASGI adapter passes "state": None
            state = scope["state"] = {}
        request_id = state.get("request_id") or request_id_from(scope.get("headers", []))
        state["request_id"] = request_id
        id_headers = [(b"x-request-id", request_id.encode())]
        if scope.get("path", "").startswith(
            AZURE_PREFIX
        ):  # Azure OpenAI's name for it, which its clients log
            id_headers.append((b"apim-request-id", request_id.encode()))

        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_large = int(value) > self.max_body_bytes
                except ValueError:
                    too_large = False
                if too_large:
                    await _send_error(scope, send, 413, self._too_large_message(), id_headers)
                    return

        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *id_headers]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:
            if not started:
                await _send_error(scope, send, 413, self._too_large_message(), id_headers)

    def _too_large_message(self) -> str:
        return f"request body is larger than MAX_BODY_BYTES ({self.max_body_bytes} bytes)"


async def _send_error(
    scope: Scope, send: Send, status: int, message: str, id_headers: list[tuple[bytes, bytes]]
) -> None:
    request_id = id_headers[0][1].decode()
    body = error_bytes(scope.get("path", ""), status, "body_too_large", message, request_id)
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *id_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AwaitCostRecords:
    """Each request waits, at most ``budget_s``, for the cost records it made to be stored; any not
    stored by then are logged in full. For the Functions host, which never runs the ASGI shutdown and
    may end the worker once invocations return: a record must not depend on a later flush."""

    def __init__(self, app: ASGIApp, budget_s: float) -> None:
        self.app = app
        self.budget_s = budget_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with awaiting_records(self.budget_s):
            await self.app(scope, receive, send)
