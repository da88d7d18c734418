"""One error body per API family: the router's own shape, OpenAI's on the ``/api/v1`` surface (the OpenAI
SDKs parse ``{"error": {"message", "type", "param", "code"}}``) and Azure OpenAI's on ``/openai/``: the same
four fields (Azure's service errors carry ``code`` and ``message``, its model errors all four), with
Azure's own code where Azure has one (``DeploymentNotFound``, ``BadRequest``, ``"404"``, ``"429"``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

OPENAI_PREFIX = "/api/v1/"
AZURE_PREFIX = "/openai/"

# Router codes Azure spells its own way (an unknown path is Azure's "404 Resource not found").
_AZURE_CODES = {"not_found": ("404", "Resource not found")}


def openai_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "authentication_error"
    return "invalid_request_error"


def error_body(
    path: str,
    status: int,
    code: str,
    message: str,
    request_id: str,
    param: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``details``: extra fields of the error object (e.g. a budget's ``remaining_usd``)."""
    extra = dict(details or {})
    if path.startswith(AZURE_PREFIX):
        code, message = _AZURE_CODES.get(code, (code, message))
    if path.startswith((OPENAI_PREFIX, AZURE_PREFIX)):
        return {
            "error": {
                "message": message,
                "type": openai_type(status),
                "param": param,
                "code": code,
                "request_id": request_id,
                **extra,
            }
        }
    return {"error": {"code": code, "message": message, "request_id": request_id, **extra}}


def error_bytes(path: str, status: int, code: str, message: str, request_id: str) -> bytes:
    return json.dumps(error_body(path, status, code, message, request_id)).encode()
