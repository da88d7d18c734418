"""What conversation affinity reads from a chat request: its earlier turns and the ``x-router-session``
hint, and the hint the router sends back. Pure (the decision itself: ``router.pipeline.affinity``).

The hint is ``s1.`` + the answering model's name in unpadded base64url: opaque to callers (send back
what you got), readable by any instance without a key or a lookup, and untrusted: a value that does not
decode to a catalogue name is ignored like an absent one (a hint can only keep a conversation where it
is; it is never an error to send a stale or foreign one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from router.chat.conversation import routing_text
from router.pipeline.affinity import EarlierTurn

SESSION_HEADER = "x-router-session"
ROUTE_REASON_HEADER = "x-router-route-reason"
# Earlier user turns re-scored per request (each ~70 µs with learned-v2): the latest ones, where the
# conversation's model shows; older turns of a very long chat add time but, affinity only moving up,
# rarely a different answer.
MAX_EARLIER_TURNS = 32
_PREFIX = "s1."
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # a catalogue name (router.models.config)


@dataclass(frozen=True, slots=True)
class Turns:
    earlier: tuple[EarlierTurn, ...]  # oldest first, at most MAX_EARLIER_TURNS
    key: bytes | None  # this turn's digest (the next turn's earlier one), when it ends in a user message


def conversation_turns(messages: Sequence[Mapping[str, Any]]) -> Turns:
    """Every earlier user turn: a digest of the conversation up to and including it (one pass over the
    messages), and its routing text as the classifier read it when that turn was asked (built only if
    its score is not remembered). A user message is earlier when anything follows it: a conversation
    ending in tool results continues the turn that called the tool."""
    digest = hashlib.blake2b(digest_size=16)
    last = len(messages) - 1
    earlier = []
    for i, message in enumerate(messages):
        digest.update(_message_bytes(message))
        if message.get("role") == "user" and i < last:
            earlier.append(EarlierTurn(digest.copy().digest(), partial(_text_up_to, messages, i + 1)))
    ends_with_user = bool(messages) and messages[-1].get("role") == "user"
    return Turns(tuple(earlier[-MAX_EARLIER_TURNS:]), digest.digest() if ends_with_user else None)


def _message_bytes(message: Mapping[str, Any]) -> bytes:
    """The message, unambiguously: its role, a string content as it is (the bulk, and fast), anything
    else (content parts, tool calls, names) as canonical JSON."""
    content = message.get("content")
    rest = {k: v for k, v in message.items() if k not in ("role", "content")}
    if not isinstance(content, str):
        rest["content"] = content
    extra = json.dumps(rest, sort_keys=True, separators=(",", ":"), default=str) if rest else ""
    text = content if isinstance(content, str) else ""
    head = f"{message.get('role')}\x00{len(text)}\x00{extra}\x00"
    return (head + text + "\x01").encode("utf-8", "surrogatepass")


def _text_up_to(messages: Sequence[Mapping[str, Any]], end: int) -> str:
    return routing_text(messages[:end])


def session_value(model: str) -> str:
    """The ``x-router-session`` value naming ``model``, the one that answered."""
    return _PREFIX + base64.urlsafe_b64encode(model.encode()).rstrip(b"=").decode("ascii")


def session_model(value: str | None) -> str | None:
    """The model a ``x-router-session`` value names, or None when it is absent or not one of ours."""
    if not value or not value.startswith(_PREFIX) or len(value) > 200:
        return None
    data = value[len(_PREFIX) :]
    try:
        name = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        return None
    return name if _NAME.match(name) else None
