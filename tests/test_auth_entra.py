"""AUTH_MODE=entra end to end: bearer tokens signed with a local RSA key, the tenant's OpenID metadata and
signing keys served on loopback (tests/entra_tenant.py), real Azurite and the simulator behind the app.

Proves: a valid token is served and its app is the caller (and the team claim the team) of the cost
record; every bad token is the same 401 with no detail (the reason only in the log, never the token);
keys are fetched once and cached, re-fetched on an unknown kid at most once per AUTH_KEYS_MIN_REFRESH_S
and periodically in the background; the metadata URL policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from router.api.app import create_app
from router.callers.modes import check_entra_settings, url_problem
from router.dev.simulator import Reply
from router.errors import SettingsError
from router.runtime import Runtime
from router.settings import load_settings
from tests.conftest import Harness
from tests.entra_tenant import (
    APP_ID,
    AUDIENCE,
    CLIENT_ID,
    IDENTITY_SECRET,
    OTHER_TENANT,
    TENANT,
    Tenant,
    hs256_with_public_key,
    new_rsa,
    tampered,
    unsigned,
)
from tests.support import ThreadServer


@pytest.fixture(scope="module")
def tenant_server() -> Iterator[tuple[Tenant, ThreadServer]]:
    tenant = Tenant()
    server = ThreadServer(tenant.app()).start()
    tenant.base_url = server.url
    yield tenant, server
    server.stop()


@pytest.fixture
def tenant(tenant_server: tuple[Tenant, ThreadServer]) -> Tenant:
    t, _ = tenant_server
    t.keys = {"kid-1": t.keys["kid-1"]}
    t.metadata_hits = t.jwks_hits = 0
    return t


def entra_settings(tenant: Tenant, **extra: Any) -> dict[str, Any]:
    return {
        "AUTH_MODE": "entra",
        "AUTH_TENANT_ID": TENANT,
        "AUTH_AUDIENCE": f"{AUDIENCE},{CLIENT_ID}",
        "AUTH_METADATA_URL": tenant.metadata_url,
        "AUTH_TEAM_CLAIM": "team",
        **extra,
    }


@pytest.fixture
async def entra(harness_factory: Any, tenant: Tenant) -> Harness:
    h: Harness = await harness_factory(**entra_settings(tenant))
    h.simulator.script("dep-small", *[Reply(content="ok", prompt_tokens=1000, completion_tokens=500)] * 5)
    return h


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_valid_token_is_served_and_its_app_and_team_are_on_the_cost_record(
    entra: Harness, tenant: Tenant
):
    token = tenant.token(team="payments")
    r = await entra.client.post(
        "/api/route", json={"query": "hi"}, headers={**bearer(token), "x-request-id": "e1"}
    )
    assert r.status_code == 200, r.text
    (row,) = [x for x in await entra.costs() if x["request_id"] == "e1"]
    assert (row["caller"], row["team"]) == (APP_ID, "payments")
    # $0.00015 × 1 + $0.0006 × 0.5 on "small"
    assert row["cost_usd"] == pytest.approx(0.00045, abs=1e-9)


async def test_v1_issuer_client_id_audience_and_appid_are_accepted(entra: Harness, tenant: Tenant):
    token = tenant.token(
        iss=f"https://sts.windows.net/{TENANT}/", aud=CLIENT_ID, azp=None, appid="v1-app", ver="1.0"
    )
    r = await entra.client.post(
        "/api/route", json={"query": "hi"}, headers={**bearer(token), "x-request-id": "e2"}
    )
    assert r.status_code == 200, r.text
    (row,) = [x for x in await entra.costs() if x["request_id"] == "e2"]
    assert (row["caller"], row["team"]) == ("v1-app", "v1-app")  # no team claim: the team is the caller


async def test_a_user_token_is_attributed_to_the_user(entra: Harness, tenant: Tenant):
    token = tenant.token(scp="user_impersonation", oid="user-oid-1", team=["blue", "green"])
    r = await entra.client.post(
        "/api/route", json={"query": "hi"}, headers={**bearer(token), "x-request-id": "e3"}
    )
    assert r.status_code == 200, r.text
    (row,) = [x for x in await entra.costs() if x["request_id"] == "e3"]
    assert (row["caller"], row["team"]) == ("user-oid-1", "blue")


def bad_tokens(tenant: Tenant) -> dict[str, str]:
    good = tenant.token()
    claims = tenant.claims()
    other_key = new_rsa()
    return {
        "garbage": "not-a-token",
        "three garbage parts": "a.b.c",
        "expired": tenant.token(exp=int(claims["iat"]) - 3600, nbf=int(claims["iat"]) - 7200),
        "not yet valid": tenant.token(nbf=int(claims["exp"]) - 60),
        "no exp": tenant.token(exp=None),
        "wrong audience": tenant.token(aud="api://someone-else"),
        "no audience": tenant.token(aud=None),
        "wrong issuer": tenant.token(iss="https://evil.example.com/v2.0"),
        "other tenant's issuer": tenant.token(iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"),
        "other tenant's tid": tenant.token(tid=OTHER_TENANT),
        "alg none": unsigned(claims),
        "alg none, signature kept": unsigned(claims) + good.split(".")[2],
        "HS256 with the public key": hs256_with_public_key(claims, tenant.keys["kid-1"]),
        "unknown kid": tenant.token(kid="kid-unknown", key=other_key),
        "known kid, another key": tenant.token(kid="kid-1", key=other_key),
        "tampered payload": tampered(good, azp="someone-else"),
        "tampered audience": tampered(tenant.token(aud="api://other"), aud=AUDIENCE),
        "truncated signature": good[:-10],
        "no caller id": tenant.token(azp=None, oid=None),
    }


async def test_every_bad_token_is_the_same_401_without_detail(
    entra: Harness, tenant: Tenant, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="router.auth")
    reference = await entra.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "ref"})
    assert reference.status_code == 401
    expected = reference.json()
    assert expected == {"error": {"code": "unauthorized", "message": "missing or invalid credentials",
                                  "request_id": "ref"}}  # fmt: skip
    tokens = bad_tokens(tenant)
    for name, token in tokens.items():
        r = await entra.client.post(
            "/api/route", json={"query": "hi"}, headers={**bearer(token), "x-request-id": "ref"}
        )
        assert r.status_code == 401, (name, r.text)
        assert r.json() == expected, name
        assert (
            r.headers["www-authenticate"]
            == reference.headers["www-authenticate"]
            == 'Bearer realm="llm-router"'
        )
        assert r.headers["x-request-id"] == "ref"
    for header in ("Basic dXNlcjpwdw==", "Bearer", "bearer  ", "Token x"):
        r = await entra.client.post("/api/route", json={"query": "hi"}, headers={"authorization": header})
        assert r.status_code == 401 and r.json()["error"]["message"] == expected["error"]["message"], header
    assert await entra.costs() == []  # nothing reached a model
    text = caplog.text
    assert "refused (401)" in text and "ExpiredSignatureError" in text and "InvalidAudienceError" in text
    assert "algorithm 'none' is not allowed" in text and "algorithm 'HS256' is not allowed" in text
    for name, token in tokens.items():  # the reason is logged, never the credential
        assert token not in text, name
        assert all(part not in text for part in token.split(".") if len(part) > 16), name


async def test_the_openai_path_answers_401_in_openai_shape(entra: Harness, tenant: Tenant):
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    r = await entra.client.post("/api/v1/chat/completions", json=body, headers=bearer(tenant.token(aud="x")))
    assert r.status_code == 401
    error = r.json()["error"]
    assert (error["type"], error["code"], error["message"]) == (
        "authentication_error",
        "unauthorized",
        "missing or invalid credentials",
    )
    ok = await entra.client.post("/api/v1/chat/completions", json=body, headers=bearer(tenant.token()))
    assert ok.status_code == 200, ok.text


async def test_keys_are_fetched_once_then_served_from_the_cache(entra: Harness, tenant: Tenant):
    for i in range(5):
        r = await entra.client.get("/api/models", headers=bearer(tenant.token(oid=f"o{i}")))
        assert r.status_code == 200
    assert (tenant.metadata_hits, tenant.jwks_hits) == (1, 1)


async def test_a_rolled_key_is_fetched_on_its_unknown_kid_and_kid_floods_are_rate_limited(
    entra: Harness, tenant: Tenant
):
    keys = entra.app.state.authenticator.entra.keys
    keys.clock = clock = FakeClock()
    assert (await entra.client.get("/api/models", headers=bearer(tenant.token()))).status_code == 200
    assert tenant.jwks_hits == 1
    clock.now += 61  # past AUTH_KEYS_MIN_REFRESH_S (60)
    tenant.keys["kid-2"] = new_rsa()  # Entra publishes a new key and signs with it
    r = await entra.client.get("/api/models", headers=bearer(tenant.token(kid="kid-2")))
    assert r.status_code == 200 and tenant.jwks_hits == 2
    # Made-up kids: the first one within the interval may not fetch again; none of them is accepted.
    stranger = new_rsa()
    results = await asyncio.gather(*(
        entra.client.get("/api/models", headers=bearer(tenant.token(kid=f"made-up-{i}", key=stranger)))
        for i in range(20)
    ))  # fmt: skip
    assert {x.status_code for x in results} == {401}
    assert tenant.jwks_hits == 2
    clock.now += 61
    await asyncio.gather(*(
        entra.client.get("/api/models", headers=bearer(tenant.token(kid=f"again-{i}", key=stranger)))
        for i in range(20)
    ))  # fmt: skip
    assert tenant.jwks_hits == 3  # one shared fetch for the whole flood


async def test_keys_refresh_periodically_in_the_background(entra: Harness, tenant: Tenant):
    keys = entra.app.state.authenticator.entra.keys
    keys.clock = clock = FakeClock()
    assert (await entra.client.get("/api/models", headers=bearer(tenant.token()))).status_code == 200
    clock.now += 3601  # AUTH_KEYS_REFRESH_S
    r = await entra.client.get("/api/models", headers=bearer(tenant.token()))
    assert r.status_code == 200  # answered from the cached keys while the refresh runs
    for _ in range(100):
        if tenant.jwks_hits == 2:
            break
        await asyncio.sleep(0.02)
    assert tenant.jwks_hits == 2


async def test_unreachable_metadata_is_503_with_a_request_id_not_401(harness_factory: Any, tenant: Tenant):
    h = await harness_factory(**entra_settings(tenant, AUTH_METADATA_URL="http://127.0.0.1:9/x"))
    r = await h.client.get("/api/models", headers={**bearer(tenant.token()), "x-request-id": "down-1"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "auth_unavailable" and r.json()["error"]["request_id"] == "down-1"


def test_entra_settings_are_checked_at_startup():
    base = {"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true", "AUTH_MODE": "entra"}
    with pytest.raises(SettingsError, match="AUTH_TENANT_ID"):
        load_settings(base)
    with pytest.raises(SettingsError, match="AUTH_AUDIENCE"):
        load_settings({**base, "AUTH_TENANT_ID": TENANT})
    evil = {"AUTH_TENANT_ID": TENANT, "AUTH_AUDIENCE": AUDIENCE,
            "AUTH_METADATA_URL": "https://evil.example.com/.well-known/openid-configuration"}  # fmt: skip
    with pytest.raises(SettingsError, match="AUTH_METADATA_URL"):
        load_settings({**base, **evil})
    with pytest.raises(SettingsError, match="AUTH_MODE"):
        load_settings({**base, "AUTH_MODE": "entra,magic"})
    s = load_settings(
        {**base, "AUTH_MODE": "Keys, entra", "AUTH_TENANT_ID": TENANT, "AUTH_AUDIENCE": AUDIENCE}
    )
    assert s.auth_modes == ("keys", "entra")
    assert load_settings({"TABLES_CONNECTION_STRING": "x"}).auth_modes == ("function-key",)


def test_metadata_url_policy():
    assert (
        url_problem(
            f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration", False
        )
        is None
    )
    assert url_problem("https://login.microsoftonline.com.evil.example/x", False)
    assert url_problem("http://login.microsoftonline.com/x", False)
    assert url_problem("https://user@login.microsoftonline.com/x", False)
    assert url_problem("http://127.0.0.1:8080/x", False)
    assert url_problem("http://127.0.0.1:8080/x", True) is None
    assert url_problem("http://localhost.evil.example/x", True)
    check_entra_settings(TENANT, AUDIENCE, None, False)


async def test_a_calling_app_with_its_managed_identity_streams_through_the_openai_sdk(
    harness_factory: Any, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
):
    """The README's set-up end to end: the calling app's real azure-identity credential gets a token for
    ``api://<router>/.default`` (from the loopback managed-identity endpoint, signed by the local tenant),
    the real OpenAI SDK sends it as its bearer over HTTP, streamed and not, and each cost record names
    the identity's app id."""
    from azure.identity.aio import ManagedIdentityCredential, get_bearer_token_provider

    h: Harness = await harness_factory(**entra_settings(tenant))
    answer = Reply(content="hello there", prompt_tokens=100, completion_tokens=20)
    h.simulator.script("dep-small", answer, answer)
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    # The calling app's own identity endpoint (the router keeps the tests' one for its upstream calls).
    with monkeypatch.context() as env:
        env.setenv("IDENTITY_ENDPOINT", f"{tenant.base_url}/msi/token")
        env.setenv("IDENTITY_HEADER", IDENTITY_SECRET)
        credential = ManagedIdentityCredential()
    try:
        provider = get_bearer_token_provider(credential, f"{AUDIENCE}/.default")
        client = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key=await provider(), max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        reply = await client.chat.completions.create(model="auto", messages=messages,  # type: ignore[arg-type]
                                                     extra_headers={"x-request-id": "mi-1"})  # fmt: skip
        assert reply.choices[0].message.content == "hello there"
        stream = await client.chat.completions.create(model="auto", messages=messages, stream=True,  # type: ignore[arg-type]
                                                      extra_headers={"x-request-id": "mi-2"})  # fmt: skip
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "hello there"
        await client.close()
        assert tenant.issued_for == [AUDIENCE]
        rows: dict[str, Any] = {}
        for _ in range(200):  # the serving app writes its records in the background
            rows = {r["request_id"]: r for r in await h.costs() if r["request_id"] in ("mi-1", "mi-2")}
            if len(rows) == 2:
                break
            await asyncio.sleep(0.05)
        assert {rid: (r["caller"], r["team"], r["api"]) for rid, r in rows.items()} == {
            "mi-1": (APP_ID, APP_ID, "chat"), "mi-2": (APP_ID, APP_ID, "chat"),
        }  # fmt: skip
        # $0.00015 × 0.1 + $0.0006 × 0.02 on "small"
        assert rows["mi-1"]["cost_usd"] == pytest.approx(0.000027, abs=1e-9)
    finally:
        await credential.close()
        server.stop()
