"""``AUTH_MODE=entra``: bearer tokens from Microsoft Entra ID, validated in-process.

A token passes only when all of these hold (PyJWT does the cryptography and the registered claims):

- header ``alg`` is ``RS256`` (Entra's only signing algorithm); ``none`` and every HS*/ES*/PS* value are
  refused before a key is looked at, so a public key can never be used as an HMAC secret;
- the signature verifies against the tenant's published signing key named by ``kid``;
- ``iss`` is the tenant's v1 (``https://sts.windows.net/{tid}/``) or v2
  (``https://login.microsoftonline.com/{tid}/v2.0``) issuer, and ``tid`` (when present) is the tenant;
- ``aud`` is one of ``AUTH_AUDIENCE`` (``api://<app>`` and/or the app's client id);
- ``exp`` is in the future and ``nbf`` (when present) in the past, within ``AUTH_CLOCK_SKEW_S``.

Signing keys come from the OpenID metadata's ``jwks_uri`` and are cached: no network call per request.
They are re-fetched in the background every ``AUTH_KEYS_REFRESH_S`` and, when a token names a ``kid`` the
cache does not know (Entra rolled its keys), at once, but at most once per ``AUTH_KEYS_MIN_REFRESH_S``, so
tokens with made-up ``kid`` values cannot make the app hammer the metadata endpoint.

The caller: an app-only token (no ``scp``: a managed identity or a client-credentials app) is its app,
``azp`` (v2) or ``appid`` (v1); a delegated token (``scp``: a user through an app) is the user, ``oid``.
The team is the ``AUTH_TEAM_CLAIM`` claim when configured and present, else the caller id.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from router.callers.identity import Caller
from router.callers.modes import url_problem
from router.errors import KeysUnavailable, TokenRejected

if TYPE_CHECKING:
    import httpx2

log = logging.getLogger("router.auth")

ALGORITHMS = ["RS256"]
MAX_DOCUMENT_BYTES = 512 * 1024  # metadata and key-set documents are a few kB
FETCH_TIMEOUT_S = 5.0
_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


KeyFetch = Callable[[], Awaitable[dict[str, Any]]]


def parse_jwks(document: Mapping[str, Any]) -> dict[str, Any]:
    """kid → RSA public key, for the signing keys of a JWKS document (others are skipped)."""
    import jwt  # PyJWT and cryptography (~40 ms): imported only where Entra auth is configured

    keys: dict[str, Any] = {}
    for jwk in document.get("keys") or []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = jwt.PyJWK(jwk, algorithm="RS256").key
        except (jwt.PyJWKError, ValueError, TypeError):
            log.warning("signing key %r in the key set is unusable; skipped", kid[:64])
    return keys


class HttpKeySource:
    """Fetches the OpenID metadata, then its ``jwks_uri``, with one reused HTTP client. Both URLs must
    pass the metadata policy (an Entra login host over https, or loopback when allowed)."""

    def __init__(self, metadata_url: str, allow_loopback: bool) -> None:
        self.metadata_url = metadata_url
        self.allow_loopback = allow_loopback
        self._client: httpx2.AsyncClient | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx2

        why = url_problem(url, self.allow_loopback)
        if why:
            raise KeysUnavailable(f"key URL {why}")
        if self._client is None:
            self._client = httpx2.AsyncClient(
                timeout=FETCH_TIMEOUT_S, trust_env=False, follow_redirects=False
            )
        try:
            response = await self._client.get(url, headers={"accept": "application/json"})
        except httpx2.HTTPError as exc:
            raise KeysUnavailable(f"fetch failed: {type(exc).__name__}") from None
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT_BYTES:
            raise KeysUnavailable(f"fetch answered HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise KeysUnavailable("fetch answered something other than JSON") from None
        if not isinstance(data, dict):
            raise KeysUnavailable("fetch answered something other than a JSON object")
        return data

    async def __call__(self) -> dict[str, Any]:
        metadata = await self._get_json(self.metadata_url)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailable("the OpenID metadata has no jwks_uri")
        return parse_jwks(await self._get_json(jwks_uri))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class SigningKeys:
    """The tenant's signing keys, cached; refreshed periodically (background) and on an unknown kid
    (at most once per ``min_refresh_s``); concurrent refreshes share one fetch."""

    def __init__(
        self,
        fetch: KeyFetch,
        refresh_s: float,
        min_refresh_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetch = fetch
        self.refresh_s = refresh_s
        self.min_refresh_s = min_refresh_s
        self.clock = clock
        self._keys: dict[str, Any] | None = None
        self._fetched_at = 0.0  # last successful fetch
        self._tried_at: float | None = None  # last attempt, successful or not
        self._inflight: asyncio.Task[None] | None = None
        self.fetches = 0

    async def get(self, kid: str) -> Any | None:
        now = self.clock()
        if self._keys is None:
            if self._may_retry(now) or self._inflight is not None:
                await self._refresh()
            if self._keys is None:
                raise KeysUnavailable("no signing keys could be fetched")
        elif now - self._fetched_at >= self.refresh_s and self._inflight is None:
            self._start_refresh()  # periodic: the cached keys answer this request
        key = self._keys.get(kid)
        if key is None and self._may_retry(now):
            await self._refresh()
            key = self._keys.get(kid)
        return key

    def _may_retry(self, now: float) -> bool:
        return self._tried_at is None or now - self._tried_at >= self.min_refresh_s

    def _start_refresh(self) -> asyncio.Task[None]:
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch_once())
            self._inflight.add_done_callback(self._done)
        return self._inflight

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None

    async def _refresh(self) -> None:
        await asyncio.shield(self._start_refresh())

    async def _fetch_once(self) -> None:
        self._tried_at = self.clock()
        self.fetches += 1
        try:
            keys = await self.fetch()
        except KeysUnavailable as exc:
            log.warning("Entra signing keys not refreshed: %s", exc)
            return
        except Exception as exc:  # a refresh must never take the request path down
            log.warning("Entra signing keys not refreshed: %s", type(exc).__name__)
            return
        if keys:
            self._keys, self._fetched_at = keys, self.clock()
        else:
            log.warning("Entra signing keys not refreshed: the key set has no RSA signing key")


class EntraVerifier:
    def __init__(
        self,
        keys: SigningKeys,
        *,
        tenant: str,
        audiences: tuple[str, ...],
        issuers: tuple[str, ...],
        leeway_s: float,
        team_claim: str | None = None,
    ) -> None:
        self.keys = keys
        self.tenant = tenant
        self.audiences = list(audiences)
        self.issuers = list(issuers)
        self.leeway_s = leeway_s
        self.team_claim = team_claim
        import jwt  # noqa: F401 - loaded with the verifier (app start-up under entra), not by every app

    async def verify(self, token: str) -> Caller:
        """The caller a valid token names; ``TokenRejected`` (with the reason) otherwise."""
        import jwt  # loaded by __init__: a dictionary look-up here

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenRejected("malformed token") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TokenRejected(f"algorithm {str(alg)[:16]!r} is not allowed")
        if not isinstance(kid, str) or not kid:
            raise TokenRejected("token has no kid")
        key = await self.keys.get(kid)
        if key is None:
            raise TokenRejected("unknown signing key (kid)")
        try:
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, audience=self.audiences, issuer=self.issuers,
                leeway=self.leeway_s, options={"require": ["exp", "iss", "aud"]},
            )  # fmt: skip
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"token refused: {type(exc).__name__}") from None
        if claims.get("tid", self.tenant) != self.tenant:
            raise TokenRejected("token is for another tenant")
        return self._caller(claims)

    def _caller(self, claims: Mapping[str, Any]) -> Caller:
        if "scp" in claims:
            who = claims.get("oid")
        else:
            who = claims.get("azp") or claims.get("appid") or claims.get("oid")
        if not isinstance(who, str) or not _ID.match(who):
            raise TokenRejected("token names no usable caller (azp, appid or oid)")
        team = claims.get(self.team_claim) if self.team_claim else None
        if isinstance(team, list):
            team = next((t for t in team if isinstance(t, str)), None)
        if not isinstance(team, str) or not _ID.match(team):
            team = who
        return Caller(id=who, team=team)
