"""The Chat Completions request as Azure OpenAI accepts it, plus the router's own ``router`` object.

Known parameters are validated and passed through untouched; an unknown top-level key is refused with
a 400 naming it (as Azure does), never silently dropped.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.api.schemas import ConstraintsIn

AUTO_MODELS = ("auto", "router")


class ChatMessage(BaseModel):
    # Messages carry many optional fields (name, tool_calls, tool_call_id, refusal, audio…): kept as sent.
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


_Float = Annotated[float, Field(allow_inf_nan=False)]


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        min_length=1, max_length=128, description='"auto" (or "router") routes; a catalogue name pins.'
    )
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    stop: str | list[str] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    presence_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None
    logit_bias: dict[str, _Float] | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    reasoning_effort: str | None = None
    router: ConstraintsIn | None = Field(None, description="Routing limits (the OpenAI SDK's extra_body).")

    @property
    def routed(self) -> bool:
        return self.model in AUTO_MODELS

    def upstream_body(self) -> dict[str, Any]:
        """What is sent to the deployment: every parameter the caller set, as set (not the router's)."""
        body = self.model_dump(mode="json", exclude_unset=True, exclude={"router", "model"})
        body["messages"] = [m.model_dump(mode="json", exclude_unset=True) for m in self.messages]
        return body


class AzureChatCompletionRequest(ChatCompletionRequest):
    """The body of ``/openai/deployments/{name}/chat/completions``: the path names the deployment, so the
    body's ``model`` is optional and ignored, as with Azure OpenAI."""

    model: str = Field("", max_length=256, description="Ignored: the deployment in the path decides.")


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str
    request_id: str


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


OPENAI_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OpenAIError} for code in (400, 404, 405, 413, 429, 502, 503, 504)
}
AZURE_ERRORS: dict[int | str, dict[str, Any]] = {**OPENAI_ERRORS, 429: {"model": OpenAIError}}
