"""function_app.py under Microsoft's Python worker library, driven over gRPC by a fake host.

The worker is a separate process: ``azure_functions_runtime`` (PyPI azure-functions-runtime) answers
every FunctionRpc request, indexes function_app.py itself and, with HTTP streams, serves HTTP on the
port it announces. The fake host (tests/functions_host/host.py) plays the Functions host: gRPC server,
function-key check, HTTP proxy. Azurite, the Azure OpenAI simulator and the loopback managed-identity
endpoint are the same real components the other tests use; nothing here is mocked. What the fake host
cannot reproduce is listed in its docstring and in README "Under the real Python worker".
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import openai
import pytest

from router.costs.records import CostRecord
from router.dev.simulator import Reply
from router.models.store import upsert_table
from router.reports.store import MARKER
from router.runtime import Runtime
from router.settings import Settings
from tests.conftest import CLIENT_ID, MODELS, unique
from tests.functions_host import rpc
from tests.functions_host.host import FakeHost

# Skipped only outside CI: under CI (scripts/test installs it) a missing worker library is a failure.
pytestmark = pytest.mark.skipif(
    not rpc.available() and not os.environ.get("CI"),
    reason="worker library not installed: run scripts/test (scripts/_setup.sh)",
)

KEY = "fake-host-function-key"
SUCCESS = 1  # StatusResult.Success


@pytest.fixture(scope="module")
def app_settings(azurite: Any, simulator_server: Any, identity: Any) -> dict[str, str]:
    _, sim = simulator_server
    endpoint, identity_server = identity
    return {
        "AZURE_OPENAI_ENDPOINT": sim.url,
        "ALLOW_LOOPBACK_ENDPOINTS": "true",
        "AZURE_CLIENT_ID": CLIENT_ID,
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "MODELS_TABLE": unique("models"),
        "COSTS_TABLE": unique("costs"),
        "HEALTH_TABLE": unique("health"),
        "COSTS_ROLLUP_TABLE": unique("rollups"),
        "CLASSIFIER": "seed",
        "ROLLUP_SCHEDULE": "0 */5 * * * *",  # not the default: the setting reaches the indexed metadata
        "PYTHON_ENABLE_INIT_INDEXING": "1",
        "IDENTITY_ENDPOINT": f"{identity_server.url}/msi/token",
        "IDENTITY_HEADER": endpoint.header_secret,
    }


@pytest.fixture(scope="module")
async def runtime(app_settings: dict[str, str]) -> AsyncIterator[Runtime]:
    """The test's own view of the worker's tables (same settings), to seed models and read records."""
    rt = Runtime(Settings(**{k: v for k, v in app_settings.items() if k in Settings.model_fields}))
    await upsert_table(await rt.table(rt.settings.MODELS_TABLE), MODELS)
    yield rt
    await rt.close()


@pytest.fixture(scope="module")
def host(app_settings: dict[str, str], runtime: Runtime) -> Any:
    fake = FakeHost(app_settings, KEY).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def loaded(host: FakeHost) -> dict[str, Any]:
    """The host's start-up sequence: init, metadata, one load per function, then the HTTP front."""
    t0 = time.monotonic()
    init = host.init()
    assert init.result.status == SUCCESS, init.result.exception.message + host.worker_output()
    metadata = host.metadata()
    assert metadata.result.status == SUCCESS, metadata.result.exception.message
    loads = {name: host.load(m) for name, m in host.functions.items()}
    url = host.serve_http()
    return {
        "init": init,
        "metadata": metadata,
        "loads": loads,
        "url": url,
        "startup_s": time.monotonic() - t0,
    }


@pytest.fixture
def sim(simulator_server: Any) -> Any:
    simulator, _ = simulator_server
    simulator.reset()
    return simulator


def bindings(host: FakeHost, name: str) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in (json.loads(raw) for raw in host.functions[name].raw_bindings)}


def test_worker_init_announces_http_streams(loaded: dict[str, Any]) -> None:
    caps = dict(loaded["init"].capabilities)
    # HttpUri is the worker's own HTTP server: only announced when HTTP streams are enabled.
    assert caps["HttpUri"].startswith("http://127.0.0.1:")
    assert caps["RequiresRouteParameters"] == "true"
    assert loaded["init"].worker_metadata.runtime_name == "python"


def test_indexing_reports_both_functions_with_their_triggers(host: FakeHost, loaded: dict[str, Any]) -> None:
    assert set(host.functions) == {"http_app_func", "rollup_closed_days"}
    http = bindings(host, "http_app_func")
    assert http["req"]["type"] == "httpTrigger" and http["req"]["direction"] == "IN"
    assert http["req"]["authLevel"] == "FUNCTION"
    assert http["req"]["route"] == "/{*route}"
    assert set(http["req"]["methods"]) == {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}
    assert http["$return"] == {"direction": "OUT", "type": "http", "name": "$return"}
    timer = bindings(host, "rollup_closed_days")["timer"]
    assert timer["type"] == "timerTrigger"
    assert timer["schedule"] == "0 */5 * * * *"  # ROLLUP_SCHEDULE from the app settings
    assert timer["runOnStartup"] is False
    for meta in host.functions.values():
        assert meta.script_file.endswith("function_app.py") and meta.language == "python"
        assert meta.properties["worker_indexed"] == "True"
    assert {n: r.result.status for n, r in loaded["loads"].items()} == dict.fromkeys(host.functions, SUCCESS)


async def test_route_end_to_end_with_the_function_key(host: FakeHost, loaded: dict[str, Any], sim: Any,
                                                      runtime: Runtime) -> None:  # fmt: skip
    sim.script("dep-small", Reply(content="42", prompt_tokens=1000, completion_tokens=1000))
    async with httpx2.AsyncClient(base_url=loaded["url"], timeout=30) as client:
        body = {"query": "What is 6 x 7?"}
        assert (await client.post("/api/route", json=body)).status_code == 401  # the host, not the app
        assert (
            await client.post("/api/route", json=body, headers={"x-functions-key": "wrong"})
        ).status_code == 401
        before = host.mark()
        rid = f"worker-{uuid.uuid4().hex[:8]}"
        r = await client.post("/api/route", json=body, headers={"x-functions-key": KEY, "x-request-id": rid})
        assert r.status_code == 200, r.text + host.worker_output()
        assert r.json()["model_used"] == "small" and r.json()["response"] == "42"
        assert r.json()["estimated_cost"] == pytest.approx(0.00015 + 0.0006)
        assert r.headers["x-request-id"] == rid
        bad = await client.post("/api/route", content=b'{"query": 5}', params={"code": KEY})
        assert bad.status_code == 400 and "query" in bad.json()["error"]["message"]
    answered = host.invocations_after(before, 2)
    assert len(answered) == 2  # the two calls the key let through, each one invocation
    assert all(host.invocations[i].result.status == SUCCESS for i in answered)
    table = await runtime.table(runtime.settings.COSTS_TABLE)
    records: list[Any] = []
    for _ in range(100):  # written in the background by the worker's recorder
        records = [e async for e in table.query_entities("request_id eq @r", parameters={"r": rid})]
        if records:
            break
        await asyncio.sleep(0.05)
    assert [r["model"] for r in records] == ["small"]


async def test_health_and_chat_completions(loaded: dict[str, Any], sim: Any) -> None:
    sim.script("dep-small", Reply(content="hello", prompt_tokens=10, completion_tokens=2))
    async with httpx2.AsyncClient(
        base_url=loaded["url"], headers={"x-functions-key": KEY}, timeout=30
    ) as client:
        health = await client.get("/api/health")
        assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["models"] == 3
        chat = await client.post(
            "/api/v1/chat/completions",
            json={"model": "auto", "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert chat.status_code == 200, chat.text
        assert chat.json()["object"] == "chat.completion" and chat.json()["model"] == "small"
        assert chat.json()["choices"][0]["message"]["content"] == "hello"
        assert (await client.get("/api/nowhere")).status_code == 404  # the app's 404, through the worker


async def test_the_azure_wire_format_through_the_worker(loaded: dict[str, Any], sim: Any) -> None:
    """An unchanged AzureOpenAI client through the host: the function key goes in default_headers (the
    host checks it; the SDK's own ``api-key`` alone is refused there), Azure's paths reach the app."""
    sim.script("dep-small", Reply(content="hello", prompt_tokens=10, completion_tokens=2))
    keyless = openai.AsyncAzureOpenAI(azure_endpoint=loaded["url"], api_key="not-a-function-key",
                                      api_version="2024-10-21", max_retries=0)  # fmt: skip
    keyed = openai.AsyncAzureOpenAI(azure_endpoint=loaded["url"], api_key="not-a-function-key",
                                    api_version="2024-10-21", default_headers={"x-functions-key": KEY},
                                    max_retries=0)  # fmt: skip
    try:
        with pytest.raises(openai.AuthenticationError):
            await keyless.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Hi"}])
        completion = await keyed.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Hi"}]
        )
        assert completion.model == "small" and completion.choices[0].message.content == "hello"
        stream = await keyed.chat.completions.create(
            model="dep-small", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        assert {c.model async for c in stream} == {"small"}
        with pytest.raises(openai.NotFoundError) as info:
            await keyed.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
        assert info.value.code == "DeploymentNotFound"
    finally:
        await keyless.close()
        await keyed.close()


WORDS, GAP = 12, 0.25  # the simulator sends one word every 0.25 s: about 3 s from first to last


def is_word(event: bytes) -> bool:
    return b'"content":"w' in event or b'"content":" w' in event


async def stream_arrivals(url: str, sim: Any) -> list[tuple[float, bytes]]:
    """(seconds since the request was sent, event) for each SSE event of one streamed chat call."""
    sim.script("dep-small", Reply(content=" ".join(f"w{i}" for i in range(WORDS)), chunk_delay_s=GAP))
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "Say hi"}]}
    arrivals: list[tuple[float, bytes]] = []
    sent = time.monotonic()
    async with (
        httpx2.AsyncClient(base_url=url, headers={"x-functions-key": KEY}, timeout=30) as client,
        client.stream("POST", "/api/v1/chat/completions", json=body) as r,
    ):
        assert r.status_code == 200, (await r.aread()).decode()
        assert r.headers["content-type"].startswith("text/event-stream")
        buffer = b""
        async for chunk in r.aiter_raw():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                arrivals.append((time.monotonic() - sent, event))
    assert arrivals[-1][1] == b"data: [DONE]"
    assert len([e for _, e in arrivals if is_word(e)]) == WORDS
    return arrivals


def word_times(arrivals: list[tuple[float, bytes]]) -> tuple[float, float]:
    words = [t for t, e in arrivals if is_word(e)]
    return words[0], words[-1]


async def test_stream_chunks_reach_the_client_while_the_upstream_is_still_sending(
    host: FakeHost, loaded: dict[str, Any], sim: Any, record_property: Any
) -> None:
    before = host.mark()
    started = time.monotonic()
    first, last = word_times(await stream_arrivals(loaded["url"], sim))
    (invocation,) = host.invocations_after(before, 1)
    # Under HTTP streams the invocation is over once the response has started: the InvocationResponse
    # comes back before the last word (what runs after it, the cost record included, runs unobserved).
    answered = host.answered_at[invocation] - started
    assert host.invocations[invocation].result.status == SUCCESS and answered < last, (answered, last)
    record_property("invocation_answered_s", round(answered, 3))
    record_property("first_chunk_s", round(first, 3))
    record_property("last_chunk_s", round(last, 3))
    # The upstream sends the last word (WORDS - 1) * GAP after the first, so a first word that reached
    # the client about that long before the last one left before the upstream had sent the last.
    assert last - first >= (WORDS - 2) * GAP * 0.8, (first, last)
    print(f"HTTP streams: first word {first:.3f} s, last {last:.3f} s, invocation answered {answered:.3f} s")


FORMER_FUNCTION_APP = """
import azure.functions as func

from router.api.app import create_app

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.FUNCTION)
"""


async def test_control_the_former_asgi_function_app_delivers_the_stream_at_once(
    app_settings: dict[str, str], runtime: Runtime, sim: Any, tmp_path: Any, record_property: Any
) -> None:
    """The same worker and host with the function_app.py this project had before HTTP streams: every
    event arrives when the answer is complete, which is what the test above rules out."""
    (tmp_path / "function_app.py").write_text(FORMER_FUNCTION_APP)
    former = FakeHost(app_settings, KEY, app_dir=tmp_path).start()
    try:
        assert "HttpUri" not in former.init().capabilities
        for meta in former.metadata().function_metadata_results:
            assert former.load(meta).result.status == SUCCESS
        first, last = word_times(await stream_arrivals(former.serve_http(), sim))
    finally:
        former.stop()
    record_property("buffered_first_chunk_s", round(first, 3))
    assert first >= (WORDS - 1) * GAP * 0.9 and last - first < 0.2, (first, last)
    print(f"AsgiFunctionApp: first word at {first:.3f} s, last at {last:.3f} s after the request")


async def test_timer_function_rolls_up_closed_days_under_the_worker(host: FakeHost, loaded: dict[str, Any],
                                                                    runtime: Runtime) -> None:  # fmt: skip
    s = runtime.settings
    closed = (datetime.now(UTC) - timedelta(days=2)).replace(hour=12, minute=0, second=0, microsecond=0)
    costs = await runtime.table(s.COSTS_TABLE)
    for i in range(3):
        record = CostRecord(
            request_id=f"timer-{i}", timestamp=closed + timedelta(minutes=i), model="small",
            deployment="dep-small", complexity=0.2, classifier="seed", cost_usd=0.01,
            baseline_model="large", baseline_cost_usd=0.05, latency_ms=100,
        )  # fmt: skip
        await costs.upsert_entity(record.to_entity())
    response = host.invoke_timer("rollup_closed_days")
    assert response.result.status == SUCCESS, response.result.exception.message + host.worker_output()
    rollups = await runtime.table(s.COSTS_ROLLUP_TABLE)
    day = closed.date().isoformat()
    rows = [e async for e in rollups.query_entities("PartitionKey eq @d", parameters={"d": day})]
    marker = next(e for e in rows if e["RowKey"] == MARKER)
    assert marker["calls"] == 3 and marker["groups"] == 1
    assert host.log_containing("roll-up:") is not None
    again = host.invoke_timer("rollup_closed_days", past_due=True)  # idempotent: nothing left to do
    assert again.result.status == SUCCESS
    assert host.log_containing("0 rolled up") is not None, [log.message for log in host.logs[-10:]]


def test_harness_timings(host: FakeHost, loaded: dict[str, Any], record_property: Any) -> None:
    record_property("worker_start_s", round(host.started_s, 3))
    record_property("init_to_loaded_s", round(loaded["startup_s"], 3))
    assert host.started_s < 30 and loaded["startup_s"] < 30


async def test_a_client_leaving_mid_stream_is_recorded_as_disconnected(
    loaded: dict[str, Any], sim: Any, runtime: Runtime
) -> None:
    """The disconnect travels client -> host -> worker's server -> relay -> the router's app, whose
    stream relay records the call as ``client_disconnected`` (tokens so far), as under uvicorn."""
    sim.script("dep-small", Reply(content=" ".join(f"w{i}" for i in range(40)), chunk_delay_s=0.1))
    rid = f"leave-{uuid.uuid4().hex[:8]}"
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "Say hi"}]}
    headers = {"x-functions-key": KEY, "x-request-id": rid}
    async with (
        httpx2.AsyncClient(base_url=loaded["url"], headers=headers, timeout=30) as client,
        client.stream("POST", "/api/v1/chat/completions", json=body) as r,
    ):
        async for chunk in r.aiter_raw():
            if b'"content":"w0' in chunk:
                break  # leave after the first word; 39 more would take about 4 s
    table = await runtime.table(runtime.settings.COSTS_TABLE)
    records: list[Any] = []
    for _ in range(200):
        records = [e async for e in table.query_entities("request_id eq @r", parameters={"r": rid})]
        if records:
            break
        await asyncio.sleep(0.05)
    assert [(r["status"], r["error_code"]) for r in records] == [("error", "client_disconnected")]
