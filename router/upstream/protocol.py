"""The upstream seam: what the pipeline needs from an Azure OpenAI client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    raw: Any = None


class UpstreamClient(Protocol):
    """Chat Completions against ``{endpoint}/openai/deployments/{deployment}`` with the process's Entra
    token. Errors are the ``openai`` SDK's exception classes (``error_kind`` reads them)."""

    async def chat(
        self, endpoint: str, deployment: str, messages: list[dict[str, Any]], timeout_s: float, **params: Any
    ) -> Completion: ...

    async def post_json(
        self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float
    ) -> dict[str, Any]: ...

    async def stream(self, endpoint: str, deployment: str, body: dict[str, Any], timeout_s: float) -> Any: ...

    async def close(self) -> None: ...


def completion_from(data: dict[str, Any]) -> Completion:
    """The text and usage of a chat.completion JSON body (missing parts read as empty / zero)."""
    choices = data.get("choices") or []
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    text = message.get("content") if isinstance(message, dict) else None
    usage = data.get("usage") or {}
    return Completion(
        text=text if isinstance(text, str) else "",
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        raw=data,
    )
