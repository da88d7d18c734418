"""Every exception the router defines, in one place, so a handler can catch a family by its base.

::

    Exception
    ├── RouterError                 an answer to the caller: HTTP ``status`` + stable ``code`` (+ ``param``)
    │   │                           (+ ``retry_after_s`` on a 429: the Retry-After headers)
    │   ├── NoModelsError           503 no_models: the catalogue could not be loaded or has nothing enabled
    │   ├── BudgetExceeded          429 budget_exceeded: the caller's or team's day/month budget is spent
    │   ├── RateLimited             429 rate_limit_exceeded: the caller's tokens-per-minute limit is used up
    │   ├── BudgetUnavailable       503 budget_unavailable: the budgets table cannot be read or written
    │   ├── UpstreamError           502 upstream_*: no deployment could answer
    │   │   └── UpstreamTooLarge    502 response_too_large: an upstream body passed MAX_UPSTREAM_BYTES
    │   └── UpstreamTimeout         504 upstream_timeout: the request's time budget ran out
    ├── ExecutionFailed             internal: every attempt failed; carries the RouterError to answer with
    │                               and the attempts made, so the failure is still recorded
    ├── CatalogUnavailable          internal (RuntimeError): no model configs; surfaces as NoModelsError
    ├── StaleEntity                 internal: a conditional (ETag) table write lost to another writer; retry
    ├── TransactionFailed           internal: a Table entity-group transaction was refused (nothing stored)
    ├── BodyTooLarge                internal: the edge middleware's signal to answer 413 body_too_large
    ├── AuthRejected                internal: no acceptable credential (401 unauthorized, one generic body;
    │   └── TokenRejected           the ``reason`` is logged, never sent); an Entra token that fails a check
    ├── KeysUnavailable             internal: Entra signing keys cannot be fetched (503 auth_unavailable)
    └── ValueError
        ├── SettingsError           a setting is missing or invalid; the message names the variable
        ├── WeightsError            a classifier weights file does not match this version
        ├── DataError               an evaluation data file or option is unusable
        ├── CallerExists            ``callers create`` for a name that already has an active key
        └── UnknownCaller           ``callers revoke`` for a name with no active key

Only ``RouterError`` crosses the HTTP edge (``router.api``): anything else reaching it is a bug and
becomes a 500 ``internal_error`` carrying the request id.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.pipeline.execute import Attempt


class RouterError(Exception):
    status = 500
    code = "internal_error"
    headers: Mapping[str, str] = MappingProxyType({})  # sent with the error (e.g. Retry-After)
    details: Mapping[str, Any] = MappingProxyType({})  # extra fields of the error body

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        param: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after_s = retry_after_s  # a 429's wait, sent as Retry-After and retry-after-ms
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NoModelsError(RouterError):
    status = 503
    code = "no_models"


class BudgetExceeded(RouterError):
    """The request's worst-case cost does not fit what is left of a budget (``router.callers``)."""

    status = 429
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, details: Mapping[str, Any]) -> None:
        super().__init__(message, retry_after_s=retry_after_s)  # Retry-After and retry-after-ms
        self.headers = {"x-router-budget-remaining": f"{details['remaining_usd']:.6f}"}
        self.details = {**details, "retry_after_s": retry_after_s}


class RateLimited(RouterError):
    """The caller's tokens-per-minute limit is used up until the next UTC minute."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: int, details: Mapping[str, Any]) -> None:
        super().__init__(message, retry_after_s=retry_after_s)  # Retry-After and retry-after-ms
        self.details = {**details, "retry_after_s": retry_after_s}


class BudgetUnavailable(RouterError):
    """A budgeted caller's counters could not be read or written: fail closed rather than overspend."""

    status = 503
    code = "budget_unavailable"


class UpstreamError(RouterError):
    status = 502
    code = "upstream_error"


class UpstreamTooLarge(UpstreamError):
    """An upstream response body grew past ``MAX_UPSTREAM_BYTES``; it is dropped, never passed on.

    Not an httpx or SDK exception on purpose: the ``openai`` SDK re-raises foreign exceptions as they
    are, so both upstream clients surface this same type."""

    code = "response_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upstream response is larger than MAX_UPSTREAM_BYTES ({limit} bytes)")
        self.limit = limit


class UpstreamTimeout(RouterError):
    status = 504
    code = "upstream_timeout"


class ExecutionFailed(Exception):
    """Every attempt failed; carries what was tried for the cost record and the caller."""

    def __init__(self, error: RouterError, model: ModelConfig, failed: list[Attempt]) -> None:
        super().__init__(error.message)
        self.error = error
        self.model = model
        self.failed = failed

    @property
    def stored_error_code(self) -> str:
        """The error code kept in the cost record: the upstream's, without the API's ``upstream_``."""
        if self.failed:
            return self.failed[-1].error_code
        return self.error.code.removeprefix("upstream_")


class CatalogUnavailable(RuntimeError):
    """No model configs could be loaded (store unreachable at start, or nothing enabled)."""


class StaleEntity(Exception):
    """A conditional table write was refused (412, or 409 on create): the entity changed since read."""

    def __init__(self, partition: str, row: str) -> None:
        super().__init__(f"entity {partition}/{row} changed since it was read")


class TransactionFailed(Exception):
    """The service refused the transaction; nothing in it was stored (transactions are atomic)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"table transaction failed: HTTP {status} {detail}".strip())
        self.status = status


class BodyTooLarge(Exception):
    """The request body passed ``MAX_BODY_BYTES`` while streaming in (the middleware answers 413)."""


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


class WeightsError(ValueError):
    """The weights file does not match this version's feature set or format."""


class DataError(ValueError):
    """A routing-data file or option cannot be used; the message says which and why."""


class AuthRejected(Exception):
    """No acceptable credential; ``reason`` goes to the log, the caller gets one generic 401."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenRejected(AuthRejected):
    """An Entra token failed a check (signature, algorithm, issuer, audience, lifetime, tenant)."""


class KeysUnavailable(Exception):
    """No Entra signing keys could be fetched yet: the request cannot be checked (503, not 401)."""


class CallerExists(ValueError):
    """``callers create`` for a name that already has an active key."""


class UnknownCaller(ValueError):
    """No caller of that name with an active key."""
