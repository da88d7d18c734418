"""An upstream Chat Completions stream read as Server-Sent Events: chunks as JSON objects.

Read here rather than through the SDK's ``AsyncStream`` because the relay must know how the stream
ended: ``done`` is true only when the upstream sent ``data: [DONE]``, so a connection cut between two
chunks is told apart from a complete answer. The chunks stay plain dicts (relayed as received, with no
model objects built and dumped again per chunk).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from router.errors import UpstreamError

if TYPE_CHECKING:
    import httpx2


class SSEStream:
    def __init__(self, response: httpx2.Response) -> None:
        self.response = response
        self.done = False  # the upstream's [DONE] arrived
        self._lines = response.aiter_lines()

    async def next_chunk(self) -> dict[str, Any] | None:
        """The next chunk object; None when the stream is over (see ``done`` for how it ended).

        Transport failures are the SDK's exception classes, as for every other upstream call."""
        import httpx2
        import openai

        try:
            return await self._next()
        except httpx2.TimeoutException as exc:
            raise openai.APITimeoutError(request=self.response.request) from exc
        except httpx2.TransportError as exc:
            raise openai.APIConnectionError(request=self.response.request) from exc

    async def _next(self) -> dict[str, Any] | None:
        data: list[str] = []
        async for line in self._lines:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:  # a blank line ends an event; comments and other fields are ignored
                event, data = "\n".join(data), []
                if event.startswith("[DONE]"):
                    self.done = True
                    return None
                chunk = _parse(event)
                if chunk is not None:
                    return chunk
        return None

    async def close(self) -> None:
        await self.response.aclose()


def _parse(event: str) -> dict[str, Any] | None:
    try:
        chunk = json.loads(event)
    except ValueError:
        raise UpstreamError("the upstream sent an invalid stream event", code="stream_invalid") from None
    if not isinstance(chunk, dict):
        return None
    error = chunk.get("error")
    if error:  # Azure reports a failure mid-stream as an event with an "error" object
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamError(f"the upstream stream failed: {str(message)[:200]}", code="stream_error")
    return chunk
