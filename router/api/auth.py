"""The authentication edge: every request but ``/api/health`` passes ``AUTH_MODE``'s check before any
route (or a 404, or the body-size check) sees it.

A failure is a 401 in the request's API shape (OpenAI's on ``/api/v1``) with one generic body and a
constant ``WWW-Authenticate``, whatever went wrong: the reason (malformed, expired, wrong audience,
unknown key, ...) goes to the log with the request id, never the credential. When Entra's signing keys
cannot be fetched at all the request cannot be checked: 503 ``auth_unavailable`` (retry), not 401.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from router.api.error_bodies import error_body
from router.api.middleware import request_id_from
from router.callers.auth import Authenticator, credentials_from
from router.callers.entra import EntraVerifier, HttpKeySource, SigningKeys
from router.callers.keys import KeyReader, KeyVerifier
from router.callers.modes import audiences, default_metadata_url, issuers
from router.errors import AuthRejected, KeysUnavailable

if TYPE_CHECKING:
    from router.settings import Settings

log = logging.getLogger("router.auth")

OPEN_PATHS = frozenset({"/api/health"})  # answers without a credential (liveness probes)
WWW_AUTHENTICATE = 'Bearer realm="llm-router"'
UNAUTHORIZED = "missing or invalid credentials"


def build_authenticator(settings: Settings, read_key_row: KeyReader) -> Authenticator | None:
    """The authenticator ``AUTH_MODE`` asks for; None for ``function-key`` alone (the host checks)."""
    modes = settings.auth_modes
    if modes == ("function-key",):
        return None
    entra = None
    if "entra" in modes:
        tenant = settings.AUTH_TENANT_ID or ""
        source = HttpKeySource(
            settings.AUTH_METADATA_URL or default_metadata_url(tenant), settings.ALLOW_LOOPBACK_ENDPOINTS
        )
        keys = SigningKeys(source, settings.AUTH_KEYS_REFRESH_S, settings.AUTH_KEYS_MIN_REFRESH_S)
        entra = EntraVerifier(
            keys, tenant=tenant, audiences=audiences(settings.AUTH_AUDIENCE), issuers=issuers(tenant),
            leeway_s=settings.AUTH_CLOCK_SKEW_S, team_claim=settings.AUTH_TEAM_CLAIM,
        )  # fmt: skip
    router_keys = KeyVerifier(read_key_row, settings.CALLERS_CACHE_TTL_S) if "keys" in modes else None
    return Authenticator(modes, entra=entra, keys=router_keys)


async def close_authenticator(auth: Authenticator | None) -> None:
    if auth is not None and auth.entra is not None:
        fetch = auth.entra.keys.fetch
        if isinstance(fetch, HttpKeySource):
            await fetch.close()


class AuthMiddleware:
    """Sets ``scope["state"]["caller"]`` for every authenticated request, or answers 401/503."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        if scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", [])
        try:
            state["caller"] = await self.authenticator.authenticate(credentials_from(headers))
        except AuthRejected as exc:
            rid = state.setdefault("request_id", request_id_from(headers))
            log.info("request %s refused (401): %s", rid, exc.reason)
            await _answer(scope, send, 401, "unauthorized", UNAUTHORIZED, rid)
            return
        except KeysUnavailable as exc:
            rid = state.setdefault("request_id", request_id_from(headers))
            log.warning("request %s not checked (503): %s", rid, exc)
            message = "the credential cannot be checked right now; retry later"
            await _answer(scope, send, 503, "auth_unavailable", message, rid)
            return
        except Exception as exc:
            rid = state.setdefault("request_id", request_id_from(headers))
            log.error("request %s not checked (503): %s", rid, type(exc).__name__, exc_info=exc)
            message = "the credential cannot be checked right now; quote the request id"
            await _answer(scope, send, 503, "auth_unavailable", message, rid)
            return
        await self.app(scope, receive, send)


async def _answer(scope: Scope, send: Send, status: int, code: str, message: str, rid: str) -> None:
    body = json.dumps(error_body(scope.get("path", ""), status, code, message, rid)).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", rid.encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", WWW_AUTHENTICATE.encode()))
    else:
        headers.append((b"retry-after", b"5"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
