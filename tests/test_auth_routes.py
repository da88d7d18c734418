"""Which requests the app answers without a credential, per AUTH_MODE: under entra or keys, none but
``/api/health``, over every route the app registers (docs and the OpenAPI document included, and any
added later: the test walks ``app.routes``); under function-key (the host checks the key) every caller
is anonymous; a comma list with function-key keeps anonymous calls and still refuses a bad credential.
And function_app.py's trigger auth level follows AUTH_MODE."""

from __future__ import annotations

import importlib
import json
import re
import sys
from typing import Any

import pytest

from router.dev.simulator import Reply
from tests.conftest import Harness, unique
from tests.entra_tenant import AUDIENCE, TENANT
from tests.test_auth_keys import create

ENTRA = {"AUTH_TENANT_ID": TENANT, "AUTH_AUDIENCE": AUDIENCE, "AUTH_METADATA_URL": "http://127.0.0.1:9/none"}
OPEN = {"/api/health"}


def every_request(app: Any) -> list[tuple[str, str]]:
    """(method, path) for every method of every route the app registers, path parameters filled in: the
    routes in the OpenAPI document (every API route; the app has none outside it) and the app's own
    plain routes (the docs page and the document itself)."""
    pairs = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    for route in app.routes:
        if hasattr(route, "path"):
            pairs |= {(m, route.path) for m in getattr(route, "methods", None) or {"GET"}}
    return sorted((m, re.sub(r"\{[^}]+\}", "x", p)) for m, p in pairs)


@pytest.mark.parametrize("mode", ["keys", "entra", "entra,keys", "keys,entra"])
async def test_nothing_but_health_answers_without_a_valid_credential(harness_factory: Any, mode: str):
    h: Harness = await harness_factory(
        AUTH_MODE=mode, DOCS_ENABLED=True, CALLERS_TABLE=unique("callers"), **ENTRA
    )
    requests = every_request(h.app)
    paths = {p for _, p in requests}
    assert {"/api/route", "/api/v1/chat/completions", "/api/costs", "/api/docs", "/api/openapi.json"} <= paths
    extra = [("GET", "/nope"), ("GET", "/api/health/"), ("POST", "/openai/deployments/x/chat/completions"),
             ("DELETE", "/api/route"), ("GET", "/")]  # fmt: skip
    for method, path in requests + extra:
        for headers in ({}, {"api-key": "rk_nope"}, {"authorization": "Bearer a.b.c"}):
            r = await h.client.request(method, path, headers=headers, content=b"{}")
            if path in OPEN:
                assert r.status_code == 200, (method, path)
            else:
                assert r.status_code == 401, (mode, method, path, headers, r.status_code)
                assert method == "HEAD" or r.json()["error"]["code"] == "unauthorized"
    assert await h.costs() == []


async def test_an_oversized_body_without_a_credential_is_401_not_413(harness_factory: Any):
    h: Harness = await harness_factory(AUTH_MODE="keys", MAX_BODY_BYTES=100, CALLERS_TABLE=unique("callers"))
    r = await h.client.post("/api/route", content=b"x" * 1000)
    assert r.status_code == 401


async def test_function_key_mode_is_todays_behaviour_with_anonymous_records(harness: Harness):
    harness.simulator.script("dep-small", Reply(content="ok", prompt_tokens=10, completion_tokens=5))
    assert harness.app.state.authenticator is None
    r = await harness.client.post(
        "/api/route", json={"query": "hi"}, headers={"authorization": "Bearer whatever"}
    )
    assert r.status_code == 200
    (row,) = await harness.costs()
    assert (row["caller"], row["team"]) == ("anonymous", "anonymous")


async def test_function_key_with_keys_keeps_anonymous_calls_and_refuses_bad_keys(harness_factory: Any):
    h: Harness = await harness_factory(AUTH_MODE="function-key,keys", CALLERS_TABLE=unique("callers"))
    h.simulator.script("dep-small", *[Reply(content="ok", prompt_tokens=10, completion_tokens=5)] * 3)
    key = create(h.settings, "frank", "--team", "web")
    calls = {
        "anon": {},
        "placeholder": {"authorization": "Bearer unused"},  # an SDK's dummy api_key beside the function key
        "keyed": {"api-key": key},
    }
    for rid, headers in calls.items():
        r = await h.client.post("/api/route", json={"query": "hi"}, headers={**headers, "x-request-id": rid})
        assert r.status_code == 200, (rid, r.text)
    bad = await h.client.post("/api/route", json={"query": "hi"}, headers={"api-key": key[:-2] + "zz"})
    assert bad.status_code == 401
    rows = {x["request_id"]: (x["caller"], x["team"]) for x in await h.costs()}
    assert rows == {"anon": ("anonymous",) * 2, "placeholder": ("anonymous",) * 2, "keyed": ("frank", "web")}


@pytest.mark.parametrize(
    ("mode", "level"), [("function-key", "FUNCTION"), ("keys", "ANONYMOUS"), ("entra", "ANONYMOUS"),
                        ("keys,function-key", "FUNCTION")],
)  # fmt: skip
def test_the_trigger_auth_level_follows_auth_mode(monkeypatch: Any, azurite: Any, mode: str, level: str):
    env = {"TABLES_CONNECTION_STRING": azurite.connection_string, "AUTH_MODE": mode, "CLASSIFIER": "seed",
           "ALLOW_LOOPBACK_ENDPOINTS": "true", **ENTRA}  # fmt: skip
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sys.modules.pop("function_app", None)
    try:
        module = importlib.import_module("function_app")
        functions = {f.get_function_name(): f for f in module.app.get_functions()}
        spec = json.loads(functions["http_app_func"].get_function_json())
        (trigger,) = [b for b in spec["bindings"] if b["type"] == "httpTrigger"]
        assert trigger["authLevel"] == level
    finally:
        sys.modules.pop("function_app", None)
