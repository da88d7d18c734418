"""Exception → JSON error response, for every route: the status, a stable code, the field at fault,
and the request id (the router's shape, OpenAI's on ``/api/v1``, Azure OpenAI's on ``/openai/``); a 429
also says when to retry (``retry-after``, ``retry-after-ms``)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.api.error_bodies import error_body
from router.errors import RouterError

log = logging.getLogger("router.api")

_STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = error_body(request.url.path, status, code, message, request_id(request), param, details)
    return JSONResponse(body, status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> tuple[str, str, str | None]:
    """(code, message naming the field(s), the first field)."""
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return "invalid_json", "request body is not valid JSON", None
    parts = []
    fields = []
    for e in errors[:5]:
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        field = ".".join(loc) or "body"
        fields.append(field)
        if e.get("type") == "extra_forbidden":
            parts.append(f"{field}: unrecognized request argument")
        else:
            parts.append(f"{field}: {e.get('msg', 'invalid')}")
    return "validation_error", "; ".join(parts), fields[0] if fields else None


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message, param = validation_message(exc)
    return error_response(request, 400, code, message, param=param)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    # Keep the exception's headers: a 405 must say which methods are allowed (Allow).
    return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)


def retry_headers(retry_after_s: float | None) -> dict[str, str] | None:
    """Retry-After (whole seconds, rounded up) and Azure's ``retry-after-ms``, which the SDKs prefer."""
    if retry_after_s is None:
        return None
    wait = max(0.0, retry_after_s)
    return {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}


async def _router_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RouterError)
    headers = {**(retry_headers(exc.retry_after_s) or {}), **exc.headers}
    return error_response(request, exc.status, exc.code, exc.message, param=exc.param,
                          headers=headers or None, details=exc.details)  # fmt: skip


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in request %s: %s", request_id(request), type(exc).__name__, exc_info=exc)
    return error_response(request, 500, "internal_error", "internal error; quote the request id")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RouterError, _router_error)
    app.add_exception_handler(Exception, _unexpected)
