"""function_app.py in-process: what it indexes, and the relay that serves the router's app under HTTP
streams. The same file under the real worker library and a fake host: tests/test_functions_worker.py."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys

import httpx2
import pytest
from fastapi import FastAPI, Request

from router.dev.simulator import Reply
from tests.conftest import MODELS, unique


@pytest.fixture
def function_app_module(monkeypatch, azurite, simulator_server):
    _, sim_server = simulator_server
    env = {
        "AZURE_OPENAI_ENDPOINT": sim_server.url,
        "ALLOW_LOOPBACK_ENDPOINTS": "true",
        "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "MODELS_TABLE": unique("models"),
        "COSTS_TABLE": unique("costs"),
        "HEALTH_TABLE": unique("health"),
        "CLASSIFIER": "seed",  # deterministic routing for the assertions below
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    sys.modules.pop("function_app", None)
    module = importlib.import_module("function_app")
    yield module
    sys.modules.pop("function_app", None)


def test_indexes_the_http_trigger_and_the_roll_up_timer(function_app_module):
    functions = {f.get_function_name(): f for f in function_app_module.app.get_functions()}
    assert set(functions) == {"http_app_func", "rollup_closed_days"}
    spec = json.loads(functions["http_app_func"].get_function_json())
    triggers = [b for b in spec["bindings"] if b["type"] == "httpTrigger"]
    assert len(triggers) == 1
    assert triggers[0]["authLevel"] == "FUNCTION"
    assert triggers[0]["route"] == "/{*route}"
    assert {"GET", "POST"} <= set(triggers[0]["methods"])
    assert spec["scriptFile"] == "function_app.py"
    timer = json.loads(functions["rollup_closed_days"].get_function_json())["bindings"][0]
    assert timer["type"] == "timerTrigger" and timer["schedule"] == "0 */15 * * * *"  # the default


def test_host_json_serves_paths_without_a_prefix():
    with open("host.json", encoding="utf-8") as f:
        host = json.load(f)
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["version"] == "2.0"


def _as_the_worker_serves(function_app_module, target, **relay_args):
    """The worker's own HTTP app for HTTP streams: a FastAPI catch-all handing its Request over (as
    azure_functions_runtime.http_v2 does); here it calls ``relay`` directly, in-process."""
    outer = FastAPI()

    @outer.api_route("/{path:path}", methods=["GET", "POST"])
    async def catch_all(request: Request):
        return await function_app_module.relay(target, request, **relay_args)

    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=outer), base_url="http://worker.test")


async def _chunks_app(scope, receive, send):
    """A toy ASGI app: reads the body, answers two Set-Cookie headers and three body chunks."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = [(b"content-type", b"text/event-stream"), (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    for part in (b"data: " + body + b"\n\n", scope["path"].encode() + b"\n\n", b"data: [DONE]\n\n"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def test_relay_passes_status_headers_and_every_chunk(function_app_module):
    async with _as_the_worker_serves(function_app_module, _chunks_app) as client:
        r = await client.post("/api/v1/chat/completions?x=1", content=b"hello")
    assert r.status_code == 201
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert r.text == "data: hello\n\n/api/v1/chat/completions\n\ndata: [DONE]\n\n"


async def test_relay_ends_a_stream_at_the_cutoff_with_an_error_event(function_app_module):
    async def slow(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        await asyncio.sleep(30)

    async with _as_the_worker_serves(function_app_module, slow, cutoff_s=0.3) as client:
        r = await client.get("/api/v1/chat/completions")
    events = r.text.split("\n\n")
    assert events[0] == "data: first"
    assert json.loads(events[1].removeprefix("data: "))["error"]["code"] == "response_time_limit"


async def test_relay_raises_when_the_app_fails_before_answering(function_app_module):
    async def broken(scope, receive, send):
        raise ValueError("boom")

    async with _as_the_worker_serves(function_app_module, broken) as client:
        with pytest.raises(ValueError, match="boom"):  # the worker's server turns this into a 500
            await client.get("/api/health")


async def test_the_router_app_through_the_relay(function_app_module, simulator):
    """The real app behind the relay, in-process: route and a bad body (the real worker: see
    tests/test_functions_worker.py)."""
    runtime = function_app_module.runtime
    from router.models.store import upsert_table

    await upsert_table(await runtime.table(runtime.settings.MODELS_TABLE), MODELS)
    simulator.script("dep-small", Reply(content="42", prompt_tokens=1000, completion_tokens=1000))
    try:
        async with _as_the_worker_serves(function_app_module, function_app_module.api) as client:
            r = await client.post(
                "/api/route", json={"query": "What is 6 x 7?"}, headers={"x-request-id": "fn-1"}
            )
            assert r.status_code == 200, r.text
            assert r.json()["model_used"] == "small" and r.json()["response"] == "42"
            assert r.headers["x-request-id"] == "fn-1"
            bad = await client.post("/api/route", content=b'{"query": 5}')
            assert bad.status_code == 400 and "query" in bad.json()["error"]["message"]
        await runtime.built_service.recorder.idle()
        table = await runtime.table(runtime.settings.COSTS_TABLE)
        assert [e["request_id"] async for e in table.list_entities()] == ["fn-1"]
    finally:
        await runtime.close()


def test_import_fails_with_the_setting_named(monkeypatch):
    monkeypatch.delenv("TABLES_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("TABLES_ENDPOINT", raising=False)
    sys.modules.pop("function_app", None)
    from router.settings import SettingsError

    with pytest.raises(SettingsError, match="TABLES_ENDPOINT"):
        importlib.import_module("function_app")
    sys.modules.pop("function_app", None)
