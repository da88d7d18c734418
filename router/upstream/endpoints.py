"""Which Azure OpenAI endpoint a model's calls (and the managed identity's token) go to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from router.errors import UpstreamError

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.settings import Settings


def endpoint_for(model: ModelConfig, settings: Settings) -> str:
    """The model's own endpoint, else ``AZURE_OPENAI_ENDPOINT``, checked against the endpoint policy
    right here, before any call carries a token: a config that slipped past the table check (built in
    code, or the policy tightened since) is refused, never sent to."""
    endpoint = model.endpoint or settings.AZURE_OPENAI_ENDPOINT
    if not endpoint:
        raise UpstreamError(f"model {model.name!r} has no endpoint and AZURE_OPENAI_ENDPOINT is not set")
    why = settings.endpoint_policy.problem(endpoint)
    if why:
        raise UpstreamError(f"model {model.name!r}: endpoint {why}; not called")
    return endpoint.rstrip("/")
