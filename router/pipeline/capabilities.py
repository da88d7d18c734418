"""What a request needs from a model, and the request as a given model accepts it. Pure.

A request with ``tools``, an image part or ``response_format: json_schema`` is routed only among models
that declare the capability (``supports_tools``, ``supports_vision``, ``supports_json_schema``; all
default true, so existing catalogues keep working). Reasoning models (o-series, gpt-5 family) take
``max_completion_tokens`` instead of ``max_tokens`` and reject sampling parameters: on an auto-routed
request those are dropped and named in ``x-router-dropped-params``; a caller who pinned such a model
gets a 400 naming the parameter, because they chose the model and asked for something it refuses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from router.errors import RouterError

if TYPE_CHECKING:
    from router.models.config import ModelConfig

# Parameters Azure OpenAI's reasoning models refuse with a 400 (unsupported_parameter).
REASONING_REJECTS = (
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
)
CAPABILITIES = ("tools", "vision", "json_schema")


@dataclass(frozen=True, slots=True)
class Needs:
    tools: bool = False
    vision: bool = False
    json_schema: bool = False

    def names(self) -> list[str]:
        return [c for c in CAPABILITIES if getattr(self, c)]


def needs_of(body: Mapping[str, Any]) -> Needs:
    """The capabilities a Chat Completions body needs."""
    fmt = body.get("response_format")
    return Needs(
        tools=bool(body.get("tools") or body.get("functions")),
        vision=any(_has_image(m) for m in body.get("messages") or ()),
        json_schema=isinstance(fmt, Mapping) and fmt.get("type") == "json_schema",
    )


def _has_image(message: Any) -> bool:
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        return False
    return any(isinstance(p, Mapping) and p.get("type") in ("image_url", "input_image") for p in content)


def missing(model: ModelConfig, needs: Needs) -> list[str]:
    """The capabilities ``needs`` asks for that ``model`` does not declare."""
    has = {
        "tools": model.supports_tools,
        "vision": model.supports_vision,
        "json_schema": model.supports_json_schema,
    }
    return [c for c in needs.names() if not has[c]]


def capable(models: tuple[ModelConfig, ...], needs: Needs) -> tuple[ModelConfig, ...]:
    """The models with every capability ``needs`` asks for (all of them, as given, when it asks none)."""
    if not (needs.tools or needs.vision or needs.json_schema):
        return models
    return tuple(m for m in models if not missing(m, needs))


@dataclass(frozen=True, slots=True)
class Translated:
    body: dict[str, Any]
    dropped: list[str]  # parameter names changed or removed for this model, in request order


def translate(body: Mapping[str, Any], model: ModelConfig, *, pinned: bool) -> Translated:
    """``body`` as ``model`` accepts it. Raises a 400 RouterError for a pinned model that refuses a
    parameter, or whose ``max_output_tokens`` the output limit passes."""
    out = dict(body)
    dropped: list[str] = []
    if model.reasoning:
        for name in REASONING_REJECTS:
            if name in out:
                if pinned:
                    raise RouterError(f"model {model.name!r} is a reasoning model and does not accept {name}",
                                      code="unsupported_parameter", status=400, param=name)  # fmt: skip
                del out[name]
                dropped.append(name)
        if "max_tokens" in out:
            value = out.pop("max_tokens")
            out.setdefault("max_completion_tokens", value)
    cap = model.max_output_tokens
    for name in ("max_tokens", "max_completion_tokens"):
        value = out.get(name)
        if cap is None or value is None or value <= cap:
            continue
        if pinned:
            message = f"{name} must be at most {cap} for model {model.name!r} (its max_output_tokens)"
            raise RouterError(message, code="validation_error", status=400, param=name)
        out[name] = cap
        dropped.append(name)
    return Translated(out, dropped)
