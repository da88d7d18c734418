"""What the classifier sees of a conversation, and how big the prompt is. Pure functions.

Difficulty lives mostly in the latest user turn, but a short follow-up ("and now in Rust?") is only as
easy as the conversation it continues, so the system prompt, recent turns, tool results and any code
come along, each clipped so a long history cannot swamp the question.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

_SYSTEM_CHARS = 600
_TURN_CHARS = 400
_PRIOR_TURNS = 4
_TOOL_CHARS = 400


def content_text(content: Any) -> str:
    """Text of a message's content: a string, or the text parts of a content-part array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, Mapping):
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif part.get("type") in ("image_url", "input_image"):
                    parts.append("[image]")
        return "\n".join(parts)
    return ""


def routing_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The latest user turn in full, then clipped context: system prompt, prior turns, tool results."""
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
    latest = content_text(messages[last_user].get("content")) if last_user is not None else ""
    context: list[str] = []
    for m in messages:
        if m.get("role") in ("system", "developer"):
            context.append(content_text(m.get("content"))[:_SYSTEM_CHARS])
    prior = [
        m for i, m in enumerate(messages) if i != last_user and m.get("role") in ("user", "assistant", "tool")
    ]
    for m in prior[-_PRIOR_TURNS:]:
        limit = _TOOL_CHARS if m.get("role") == "tool" else _TURN_CHARS
        text = content_text(m.get("content"))
        if m.get("tool_calls"):
            text += " " + json.dumps(m["tool_calls"])[:limit]
        context.append(text[:limit])
    joined = "\n".join(c for c in context if c)
    if "```" in joined and "```" not in latest:
        joined += "\n```"  # keep the signal that code is in play, even if clipping cut the fence
    return latest if not joined else f"{latest}\n\n{joined}"


def estimate_prompt_tokens(messages: Sequence[Mapping[str, Any]], tools: Any = None) -> int:
    """An upper-leaning estimate (about 3.5 characters a token, plus per-message overhead) used only to
    rule out models whose context window is too small; billing uses the upstream's exact usage."""
    chars = 0
    for m in messages:
        chars += len(content_text(m.get("content")))
        if m.get("tool_calls"):
            chars += len(json.dumps(m["tool_calls"]))
    if tools:
        chars += len(json.dumps(tools))
    return math.ceil(chars / 3.5) + 4 * len(messages) + 3
