"""What an upstream failure means for the pipeline: the one place that knows the SDK's exception types.

``error_kind`` maps any exception from an ``UpstreamClient`` to ``(code, kind, retry_after_s)``; ``kind``
is ``"retry"`` (try the model's next backend, then the next model; also a backend whose deployment does
not exist), ``"context"`` (try a model with a larger context window) or
``"fatal"`` (answer the caller). ``retry_after_seconds`` reads Azure's Retry-After headers.
"""

from __future__ import annotations

import asyncio
import math
import time
from email.utils import parsedate_to_datetime
from typing import Any

from router.errors import UpstreamError

RETRYABLE_STATUS = {408, 429}


def error_kind(exc: BaseException) -> tuple[str, str, float | None]:
    """(code, kind, retry_after_s) for an exception raised by an upstream call."""
    import openai  # already imported by whichever client raised; never on the success path

    if isinstance(exc, asyncio.TimeoutError | openai.APITimeoutError):
        return "timeout", "retry", None
    if isinstance(exc, openai.APIStatusError):
        body: Any = exc.body
        code = body.get("code") if isinstance(body, dict) else None
        if code == "content_filter":
            return "content_filter", "fatal", None
        if code == "context_length_exceeded":
            return "context_length_exceeded", "context", None
        if code == "DeploymentNotFound":  # that backend is misconfigured, not the request: try the next
            return "deployment_not_found", "retry", None
        status = exc.status_code
        retry_after = retry_after_seconds(exc.response.headers) if status == 429 else None
        kind = "retry" if status in RETRYABLE_STATUS or status >= 500 else "fatal"
        return f"http_{status}", kind, retry_after
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", "retry", None
    if isinstance(exc, UpstreamError):
        return exc.code, "fatal", None
    return type(exc).__name__, "fatal", None


def upstream_message(exc: BaseException) -> str | None:
    """The upstream's own error message (truncated), for errors that are the caller's to fix."""
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:500] if message else None


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Azure OpenAI sends ``retry-after-ms`` and/or ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
