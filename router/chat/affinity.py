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
import re
from collections.abc import Mapping, Sequence
from typing import Any

from router.chat.conversation import routing_text

SESSION_HEADER = "x-router-session"
ROUTE_REASON_HEADER = "x-router-route-reason"
# Earlier user turns re-scored per request (each ~70 µs with learned-v2): the latest ones, where the
# conversation's model shows; older turns of a very long chat add time but, affinity only moving up,
# rarely a different answer.
MAX_EARLIER_TURNS = 32
_PREFIX = "s1."
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # a catalogue name (router.models.config)


def earlier_turns(messages: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The routing text of every earlier user turn (the conversation up to and including it, as the
    classifier read it when that turn was asked), oldest first, at most ``MAX_EARLIER_TURNS``. A user
    message is earlier when anything follows it: a conversation ending in tool results continues the
    turn that called the tool."""
    last = len(messages) - 1
    ends = [i for i, m in enumerate(messages) if m.get("role") == "user" and i < last]
    return tuple(routing_text(messages[: i + 1]) for i in ends[-MAX_EARLIER_TURNS:])


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
