"""Azure OpenAI's wire rules, as pure functions: which ``api-version`` values a path accepts, which
catalogue model a deployment name means, and the 429 an all-throttled call becomes.

Versions: the deployments paths require a dated ``api-version`` (``YYYY-MM-DD`` or ``YYYY-MM-DD-preview``,
from 2023: the first versions with chat completions). Any such version is accepted, including versions
newer than this code, since a client upgraded before the router must keep working; Azure itself accepts
only the versions it has released (``400 BadRequest "API version not supported"``). The v1 paths take
no dated version: Azure answers that same 400 to one there, and accepts none, ``preview`` or ``latest``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from router.chat.schemas import AUTO_MODELS
from router.errors import RouterError, UpstreamError
from router.models.config import ModelConfig

API_VERSION = "api-version"
V1_VERSIONS = ("preview", "latest")
# 2023-01-01 … 2099-12-31, with -preview or not: also the OpenAPI pattern, so the documented set is exact.
DATED_VERSION = r"^20(2[3-9]|[3-9][0-9])-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(-preview)?$"
_DATED = re.compile(DATED_VERSION)

DEPLOYMENT_NOT_FOUND = (
    "The API deployment for this resource does not exist. The router serves 'auto', a catalogue model "
    "name or one of their deployment names (GET /openai/v1/models lists them)."
)

# What every eligible deployment being throttled looks like from the router's own execution.
THROTTLED_CODES = ("upstream_http_429", "upstream_cooling_down")


def _bad_version(message: str) -> RouterError:
    return RouterError(message, code="BadRequest", status=400, param=API_VERSION)


def check_dated_version(value: str | None) -> str:
    """The ``api-version`` of a deployments path, else a 400 naming it."""
    if not value:
        raise _bad_version("Missing required query parameter: api-version (for example 2024-10-21)")
    if not _DATED.match(value):
        raise _bad_version(f"API version not supported: {value!r} (use a dated version such as 2024-10-21)")
    return value


def check_v1_version(value: str | None) -> None:
    """The v1 surface: no ``api-version``, or ``preview``/``latest``; a dated one is Azure's 400."""
    if value is not None and value not in V1_VERSIONS:
        raise _bad_version(f"API version not supported: {value!r} (the v1 API takes none, or 'preview')")


def resolve_deployment(name: str, models: Iterable[ModelConfig], *, param: str | None) -> str:
    """The model name to run for an Azure deployment name: ``auto`` routes, a catalogue model name pins
    it, a deployment name pins the first enabled model deployed under it. Else Azure's 404."""
    if name in AUTO_MODELS:
        return name
    catalogue = tuple(models)
    for model in catalogue:
        if model.name == name:
            return model.name
    for model in catalogue:
        if model.deployment == name:
            return model.name
    raise RouterError(DEPLOYMENT_NOT_FOUND, code="DeploymentNotFound", status=404, param=param)


def throttled(error: UpstreamError, cooldowns_s: Iterable[float], default_s: float) -> RouterError:
    """Every deployment the call could use answered 429 or is cooling down after one: Azure's 429, with
    the soonest cooldown end as Retry-After (the upstream's own Retry-After sets those cooldowns)."""
    waits = [c for c in cooldowns_s if c > 0]
    wait = min(waits) if waits else default_s
    message = (
        f"Requests to every deployment this call may use are being throttled ({error.code}). "
        f"Please retry after {max(1, round(wait))} seconds."
    )
    return RouterError(message, code="429", status=429, retry_after_s=wait)
