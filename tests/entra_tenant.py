"""A loopback stand-in for a Microsoft Entra tenant: OpenID metadata and a JWKS endpoint served over HTTP
by a ThreadServer, and tokens signed with a locally generated RSA key. Entra's real token service cannot
exist here (and tests never reach the internet); the app's validation code, PyJWT and cryptography run
for real against these documents."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TENANT = "3f1c2a9e-5b7d-4c1a-9e2f-7a6b5c4d3e21"
OTHER_TENANT = "9a8b7c6d-1e2f-4a3b-8c7d-6e5f4a3b2c1d"
AUDIENCE = "api://llm-router-tests"
CLIENT_ID = "6c2d0f4e-1a3b-4c5d-8e9f-0a1b2c3d4e5f"
APP_ID = "1d2e3f4a-5b6c-4d7e-8f9a-0b1c2d3e4f5a"  # the calling app (its managed identity's client id)
IDENTITY_SECRET = uuid.uuid4().hex  # the calling app's IDENTITY_HEADER


def new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    return {"kty": "RSA", "use": "sig", "kid": kid, "n": _b64(n), "e": _b64(e), "x5t": kid}


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass
class Tenant:
    tenant: str = TENANT
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    metadata_hits: int = 0
    jwks_hits: int = 0
    base_url: str = ""
    issued_for: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys["kid-1"] = new_rsa()

    @property
    def metadata_url(self) -> str:
        return f"{self.base_url}/{self.tenant}/v2.0/.well-known/openid-configuration"

    def app(self) -> Starlette:
        async def metadata(request: Request) -> JSONResponse:
            self.metadata_hits += 1
            return JSONResponse(
                {
                    "issuer": f"https://login.microsoftonline.com/{self.tenant}/v2.0",
                    "jwks_uri": f"{self.base_url}/{self.tenant}/discovery/v2.0/keys",
                    "id_token_signing_alg_values_supported": ["RS256"],
                }
            )

        async def jwks(request: Request) -> JSONResponse:
            self.jwks_hits += 1
            return JSONResponse({"keys": [jwk_of(k, kid) for kid, k in self.keys.items()]})

        async def msi_token(request: Request) -> JSONResponse:
            """The App Service managed-identity protocol, as a calling app's azure-identity uses it: a
            token for ``resource``, signed by this tenant, naming the identity's client id as the app."""
            if request.headers.get("x-identity-header") != IDENTITY_SECRET:
                return JSONResponse({"error": "bad identity header"}, status_code=401)
            resource = request.query_params.get("resource") or ""
            self.issued_for.append(resource)
            token = self.token(aud=resource, azp=None, appid=APP_ID, ver="1.0",
                               iss=f"https://sts.windows.net/{self.tenant}/")  # fmt: skip
            expires = str(int(time.time()) + 3600)
            return JSONResponse({"access_token": token, "expires_on": expires, "resource": resource,
                                 "token_type": "Bearer", "client_id": APP_ID})  # fmt: skip

        return Starlette(
            routes=[
                Route(f"/{self.tenant}/v2.0/.well-known/openid-configuration", metadata),
                Route(f"/{self.tenant}/discovery/v2.0/keys", jwks),
                Route("/msi/token", msi_token),
            ]
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": AUDIENCE,
            "iss": f"https://login.microsoftonline.com/{self.tenant}/v2.0",
            "iat": now - 30,
            "nbf": now - 30,
            "exp": now + 3600,
            "tid": self.tenant,
            "oid": str(uuid.uuid4()),
            "azp": APP_ID,
            "sub": APP_ID,
            "ver": "2.0",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, kid: str = "kid-1", key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        signing = key or self.keys[kid]
        return jwt.encode(self.claims(**claims), signing, algorithm="RS256", headers={"kid": kid})


def unsigned(claims: dict[str, Any], kid: str = "kid-1") -> str:
    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(claims: dict[str, Any], key: rsa.RSAPrivateKey, kid: str = "kid-1") -> str:
    """The classic algorithm-confusion forgery: HMAC-signed with the public key's PEM as the secret."""
    import hashlib
    import hmac

    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(public_pem(key), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload changed and the original signature kept."""
    head, payload, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return f"{head}.{_b64(json.dumps(data).encode())}.{sig}"
