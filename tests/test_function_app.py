"""function_app.py as the Functions host sees it: one HTTP trigger, function-level auth, and the app
answering a real ``func.HttpRequest`` in-process (the host itself cannot run here)."""

from __future__ import annotations

import importlib
import json
import sys
import uuid
from types import SimpleNamespace

import azure.functions as func
import pytest

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


def test_indexes_as_one_http_trigger_with_function_auth(function_app_module):
    functions = function_app_module.app.get_functions()
    assert len(functions) == 1
    spec = json.loads(functions[0].get_function_json())
    triggers = [b for b in spec["bindings"] if b["type"] == "httpTrigger"]
    assert len(triggers) == 1
    assert triggers[0]["authLevel"] == "FUNCTION"
    assert triggers[0]["route"] == "/{*route}"
    assert {"GET", "POST"} <= set(triggers[0]["methods"])
    assert spec["scriptFile"] == "function_app.py"


def test_host_json_serves_paths_without_a_prefix():
    with open("host.json", encoding="utf-8") as f:
        host = json.load(f)
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["version"] == "2.0"


def _context() -> SimpleNamespace:
    return SimpleNamespace(
        invocation_id=str(uuid.uuid4()),
        function_name="http_app_func",
        function_directory=".",
        trace_context=None,
        retry_context=None,
        thread_local_storage=None,
    )


async def test_route_through_the_function_in_process(function_app_module, simulator):
    fastapi_app = function_app_module.app.middleware._app
    runtime = fastapi_app.state.runtime
    from router.models.store import upsert_table

    await upsert_table(await runtime.table(runtime.settings.MODELS_TABLE), MODELS)
    simulator.script("dep-small", Reply(content="42", prompt_tokens=1000, completion_tokens=1000))
    handler = function_app_module.app.get_functions()[0].get_user_function()
    req = func.HttpRequest(
        method="POST",
        url="https://router.azurewebsites.net/api/route",
        headers={"content-type": "application/json", "x-request-id": "fn-1", "x-functions-key": "k"},
        body=json.dumps({"query": "What is 6 x 7?"}).encode(),
    )
    try:
        resp = await handler(req, _context())
        assert resp.status_code == 200, resp.get_body()
        body = json.loads(resp.get_body())
        assert body["model_used"] == "small"
        assert body["response"] == "42"
        assert body["estimated_cost"] == pytest.approx(1 * 0.00015 + 1 * 0.0006)
        assert resp.headers["x-request-id"] == "fn-1"

        bad = func.HttpRequest(
            method="POST", url="https://router.azurewebsites.net/api/route", headers={}, body=b'{"query": 5}'
        )
        resp = await handler(bad, _context())
        assert resp.status_code == 400
        assert "query" in json.loads(resp.get_body())["error"]["message"]

        await runtime.built_service.recorder.idle()  # cost records are written off the response path
        table = await runtime.table(runtime.settings.COSTS_TABLE)
        records = [e async for e in table.list_entities()]
        assert [r["request_id"] for r in records] == ["fn-1"]
    finally:
        # The host's shutdown path: ASGI lifespan shutdown closes the runtime's clients.
        await function_app_module.app.middleware.notify_shutdown()
        assert runtime.built_service is None


def test_import_fails_with_the_setting_named(monkeypatch):
    monkeypatch.delenv("TABLES_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("TABLES_ENDPOINT", raising=False)
    sys.modules.pop("function_app", None)
    from router.settings import SettingsError

    with pytest.raises(SettingsError, match="TABLES_ENDPOINT"):
        importlib.import_module("function_app")
    sys.modules.pop("function_app", None)
