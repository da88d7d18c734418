"""Request bodies parsed by hand (any content type, one pydantic pass straight from the bytes), and the
OpenAPI entries that document them as if FastAPI had parsed them."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
COMPONENT_REF = "#/components/schemas/{model}"


async def parse_body(request: Request, model: type[M]) -> M:
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for an endpoint whose body is ``model``, parsed by ``parse_body``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": COMPONENT_REF.format(model=model.__name__)}}},
        }
    }
