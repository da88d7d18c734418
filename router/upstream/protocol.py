"""The upstream seam: what the pipeline needs from an Azure OpenAI client."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from router.chat.conversation import estimate_prompt_tokens
from router.upstream.usage import read_usage, reply_chars

if TYPE_CHECKING:
    from router.upstream.sse import SSEStream


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    raw: Any = None
    usage_estimated: bool = False  # the upstream's usage was missing or invalid: the counts are estimates
    cached_tokens: int = 0  # of prompt_tokens, from the prompt cache
    reasoning_tokens: int = 0  # of completion_tokens, hidden reasoning


# Called with a successful response's headers (a case-insensitive mapping) before its body is read: how
# the pipeline sees x-ratelimit-remaining-* and x-ms-deployment-name at no cost to calls that do not ask.
HeaderSink = Callable[[Any], None]


class UpstreamClient(Protocol):
    """Chat Completions against ``{endpoint}/openai/deployments/{deployment}`` with the process's Entra
    token. Errors are the ``openai`` SDK's exception classes (``error_kind`` reads them), and
    ``UpstreamTooLarge`` for a body over ``MAX_UPSTREAM_BYTES``. ``headers`` are sent as extra request
    headers (Azure's spillover header); ``on_headers`` receives the response headers."""

    async def chat(
        self, endpoint: str, deployment: str, messages: list[dict[str, Any]], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None, **params: Any,
    ) -> Completion: ...  # fmt: skip

    async def post_json(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> dict[str, Any]: ...  # fmt: skip

    async def stream(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> SSEStream: ...  # fmt: skip

    async def close(self) -> None: ...


class ChatFromPostJson:
    """``chat`` for a transport that implements ``post_json``: the messages and parameters as one
    body, the JSON answer read by ``completion_from``. Shared so that every transport agrees."""

    async def post_json(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        raise NotImplementedError

    async def chat(
        self, endpoint: str, deployment: str, messages: list[dict[str, Any]], timeout_s: float, *,
        headers: Mapping[str, str] | None = None, on_headers: HeaderSink | None = None, **params: Any,
    ) -> Completion:  # fmt: skip
        body = {"messages": messages, **params}
        data = await self.post_json(
            endpoint, deployment, body, timeout_s, headers=headers, on_headers=on_headers
        )
        return completion_from(data, messages)


def completion_from(data: dict[str, Any], messages: list[dict[str, Any]]) -> Completion:
    """The text and usage of a chat.completion JSON body; a missing part reads as empty, missing or
    invalid usage as an estimate from ``messages`` and the reply (flagged)."""
    choices = data.get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    usage = read_usage(data.get("usage"), estimate_prompt_tokens(messages), reply_chars(data))
    return Completion(
        text=text if isinstance(text, str) else "",
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        raw=data,
        usage_estimated=usage.estimated,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
    )
