"""Who is calling: the credential a request carries, checked by the modes ``AUTH_MODE`` lists.

Pure logic over the request's headers; the HTTP edge (401/503 bodies) is ``router.api.auth``.

- ``keys``: a router key, as ``api-key: <key>`` (the Azure OpenAI SDKs) or
  ``Authorization: Bearer <key>`` (the OpenAI SDKs).
- ``entra``: ``Authorization: Bearer <Entra access token>``.
- ``function-key``: the Functions host checked the shared key before the app ran; the app cannot tell
  callers apart, so the caller is ``anonymous``.

Without ``function-key`` in the list, every request (``/api/health`` aside) must carry a credential an
enabled mode accepts. With it, a request that carries no credential for another listed mode is the
host-checked anonymous caller; one that does (a router key, or a bearer value shaped as a JWT under
``entra``) must be valid: a bad credential is a 401, never quietly anonymous.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.callers.entra import EntraVerifier
from router.callers.identity import ANONYMOUS, Caller
from router.callers.keys import KeyVerifier, looks_like_key
from router.errors import AuthRejected as Rejected


@dataclass(frozen=True, slots=True)
class Credentials:
    bearer: str | None = None  # Authorization: Bearer <value>
    api_key: str | None = None  # api-key: <value>
    malformed: bool = False  # an Authorization header that is not "Bearer <value>"


def credentials_from(headers: Iterable[tuple[bytes, bytes]]) -> Credentials:
    bearer = api_key = None
    malformed = False
    for name, raw in headers:
        name = name.lower()
        if name not in (b"authorization", b"api-key"):
            continue
        try:
            value = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            malformed = True
            continue
        if name == b"api-key":
            api_key = value or None
            continue
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            bearer = token.strip()
        else:
            malformed = True
    return Credentials(bearer=bearer, api_key=api_key, malformed=malformed)


def _jwt_shaped(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(parts[:2])


class Authenticator:
    def __init__(
        self, modes: tuple[str, ...], *, entra: EntraVerifier | None = None, keys: KeyVerifier | None = None
    ) -> None:
        self.modes = modes
        self.host_checked = "function-key" in modes
        self.entra = entra if "entra" in modes else None
        self.keys = keys if "keys" in modes else None

    async def authenticate(self, creds: Credentials) -> Caller:
        """The caller, or ``Rejected``; ``KeysUnavailable`` when Entra's keys cannot be had at all."""
        chosen = self._choose(creds)
        if chosen is None:
            if self.host_checked:
                return ANONYMOUS
            if creds.malformed:
                raise Rejected("malformed Authorization header")
            if creds.bearer or creds.api_key:
                raise Rejected("no credential an enabled mode accepts")
            raise Rejected("no credential")
        kind, value = chosen
        if kind == "key":
            assert self.keys is not None
            caller = await self.keys.verify(value)
            if caller is None:
                raise Rejected("unknown, revoked or malformed router key")
            return caller
        assert self.entra is not None
        return await self.entra.verify(value)  # TokenRejected is a Rejected

    def _choose(self, creds: Credentials) -> tuple[str, str] | None:
        """Which verifier checks which value; None when the request carries nothing an enabled mode reads."""
        if self.keys is not None:
            for value in (creds.api_key, creds.bearer):
                if value is not None and looks_like_key(value):
                    return "key", value
        bearer = creds.bearer
        if self.entra is not None and bearer is not None and (_jwt_shaped(bearer) or not self.host_checked):
            return "entra", bearer
        return None
