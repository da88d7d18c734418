"""Errors the API turns into ``{"error": {"code", "message", "request_id"}}`` with a status code."""

from __future__ import annotations


class RouterError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NoModelsError(RouterError):
    status = 503
    code = "no_models"


class UpstreamError(RouterError):
    status = 502
    code = "upstream_error"


class UpstreamTimeout(RouterError):
    status = 504
    code = "upstream_timeout"
