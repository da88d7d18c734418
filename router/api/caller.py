"""The caller an authentication step attached to the request (``request.state.caller``), or anonymous."""

from __future__ import annotations

from starlette.requests import Request

from router.callers.identity import ANONYMOUS, Caller


def caller_of(request: Request) -> Caller:
    caller = getattr(request.state, "caller", None)
    return caller if isinstance(caller, Caller) else ANONYMOUS
