"""The date-range query parameters shared by the report endpoints (``/api/costs``, ``/api/dashboard``,
``/api/quality``): documented as dates, validated by hand (``period.py``) so that errors name the
parameter in our words, and the same error responses in the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from router.errors import RouterError

_DAY = {"format": "date", "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
FromQ = Annotated[
    str | None,
    Query(alias="from", description="First UTC day (default: 6 days before to)", json_schema_extra=_DAY),
]
ToQ = Annotated[
    str | None, Query(description="Last UTC day, inclusive (default: today)", json_schema_extra=_DAY)
]
_JSON_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameter (named in the message)", "content": _JSON_ERROR},
    500: {"description": "Internal error", "content": _JSON_ERROR},
}


def single(request: Request, *names: str) -> None:
    """A repeated parameter is an error, not silently the first or last value."""
    for name in names:
        if len(request.query_params.getlist(name)) > 1:
            raise RouterError(f"{name}: give it once", code="validation_error", status=400)
