"""Which Azure OpenAI endpoint a model's calls (and the managed identity's token) go to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.errors import UpstreamError

if TYPE_CHECKING:
    from router.models.config import ModelConfig


def endpoint_for(model: ModelConfig, default: str | None) -> str:
    """The model's own endpoint, else ``AZURE_OPENAI_ENDPOINT``."""
    endpoint = model.endpoint or default
    if not endpoint:
        raise UpstreamError(f"model {model.name!r} has no endpoint and AZURE_OPENAI_ENDPOINT is not set")
    return endpoint
