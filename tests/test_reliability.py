"""Faults with real components: the simulator scripted to throttle, fail, hang and filter; a server that
resets connections; Azurite stopped and restarted under the app; two app processes sharing cooldowns."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from router.api.app import create_app
from router.dev.azurite import Azurite, free_port
from router.dev.simulator import Reply
from router.models.store import upsert_table
from router.runtime import Runtime
from router.settings import load_settings
from tests.conftest import CLIENT_ID, MODELS, UPSTREAM_CLIENTS, Harness, unique
from tests.support import ResettingServer


@pytest.fixture(params=UPSTREAM_CLIENTS)
def upstream_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs against both upstream clients."""
    return str(request.param)


ROOT = Path(__file__).resolve().parents[1]


async def test_429_falls_back_to_the_next_candidate_and_cools_the_model_down(harness: Harness):
    sim = harness.simulator
    sim.script("dep-small", Reply(status=429, headers={"retry-after-ms": "30000"}))
    r = await harness.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "fb-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_used"] == "medium"
    assert body["fallbacks"] == [{"model": "small", "error_code": "http_429"}]
    [rec] = await harness.costs()
    assert rec["model"] == "medium" and rec["status"] == "ok" and rec["fallbacks"] == 1
    assert json.loads(rec["attempts"]) == [{"model": "small", "error_code": "http_429"}]

    # During the cooldown the throttled deployment is not even tried.
    r = await harness.client.post("/api/route", json={"query": "hi"})
    assert r.json()["model_used"] == "medium" and r.json()["fallbacks"] == []
    assert len(sim.calls_to("dep-small")) == 1
    health = (await harness.client.get("/api/health")).json()
    assert 25 < health["unhealthy"]["small"]["cooldown_s"] <= 30


async def test_cooldown_ends_when_retry_after_passes(harness: Harness):
    harness.simulator.script("dep-small", Reply(status=429, headers={"retry-after": "0.4"}))
    assert (await harness.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "medium"
    assert (await harness.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "medium"
    await asyncio.sleep(0.5)
    assert (await harness.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "small"


async def test_circuit_opens_after_repeated_failures_then_half_open_probe_closes_it(harness_factory):
    h = await harness_factory(CIRCUIT_FAILURES=2, CIRCUIT_OPEN_S=0.4)
    sim = h.simulator
    sim.script("dep-small", Reply(status=500), Reply(status=503))
    for _ in range(2):
        r = await h.client.post("/api/route", json={"query": "hi"})
        assert r.json()["model_used"] == "medium"
    assert len(sim.calls_to("dep-small")) == 2
    # Open: skipped without a call.
    assert (await h.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "medium"
    assert len(sim.calls_to("dep-small")) == 2
    await asyncio.sleep(0.5)
    # Half-open: one probe goes through, succeeds, and closes the circuit.
    assert (await h.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "small"
    assert (await h.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "small"
    assert len(sim.calls_to("dep-small")) == 4
    assert (await h.client.get("/api/health")).json()["unhealthy"] == {}


async def test_failed_half_open_probe_reopens_the_circuit(harness_factory):
    h = await harness_factory(CIRCUIT_FAILURES=1, CIRCUIT_OPEN_S=0.3)
    h.simulator.script("dep-small", Reply(status=500), Reply(status=500))
    await h.client.post("/api/route", json={"query": "hi"})
    await asyncio.sleep(0.35)
    r = await h.client.post("/api/route", json={"query": "hi"})  # the probe fails, medium answers
    assert r.json()["fallbacks"] == [{"model": "small", "error_code": "http_500"}]
    assert (await h.client.post("/api/route", json={"query": "hi"})).json()["fallbacks"] == []
    assert len(h.simulator.calls_to("dep-small")) == 2


async def test_content_filter_is_returned_not_retried(harness: Harness):
    harness.simulator.script(
        "dep-small", Reply(status=400, error_code="content_filter", error_message="filtered by policy")
    )
    r = await harness.client.post("/api/route", json={"query": "hi"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "content_filter"
    assert not harness.simulator.calls_to("dep-medium")
    [rec] = await harness.costs()
    assert rec["status"] == "error" and rec["error_code"] == "content_filter"


async def test_context_length_error_falls_forward_to_a_larger_window(harness: Harness):
    harness.simulator.script("dep-small", Reply(status=400, error_code="context_length_exceeded"))
    r = await harness.client.post("/api/route", json={"query": "hi"})
    assert r.status_code == 200
    # medium has the same 128k window as small; large (1M) is the next larger window.
    assert r.json()["model_used"] == "large"
    assert r.json()["fallbacks"] == [{"model": "small", "error_code": "context_length_exceeded"}]
    assert not harness.simulator.calls_to("dep-medium")


async def test_fallback_respects_explicit_constraints_unless_allowed(harness: Harness):
    sim = harness.simulator
    for _ in range(2):
        sim.script("dep-small", Reply(status=503))
        sim.script("dep-medium", Reply(status=503))
    limits = {"max_cost_per_1k": 0.001}
    r = await harness.client.post("/api/route", json={"query": "hi", "constraints": limits})
    assert r.status_code == 502
    assert not sim.calls_to("dep-large")
    r = await harness.client.post(
        "/api/route",
        json={"query": "hi", "constraints": {**limits, "allow_fallback_outside_constraints": True}},
    )
    assert r.status_code == 200
    assert r.json()["model_used"] == "large"


async def test_connection_reset_falls_back(harness_factory):
    dead = ResettingServer().start()
    try:
        small = MODELS[0].model_copy(update={"endpoint": dead.url})
        h = await harness_factory(models=[small, *MODELS[1:]])
        r = await h.client.post("/api/route", json={"query": "hi"})
        assert r.status_code == 200
        assert r.json()["fallbacks"] == [{"model": "small", "error_code": "connection_error"}]
        assert dead.accepted >= 1
    finally:
        dead.stop()


async def test_hung_deployment_times_out_per_attempt_and_falls_back(harness_factory):
    h = await harness_factory(ATTEMPT_TIMEOUT_S=0.3, REQUEST_TIMEOUT_S=5)
    h.simulator.script("dep-small", Reply(content="late", delay_s=5))
    started = time.perf_counter()
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert time.perf_counter() - started < 2
    assert r.json()["model_used"] == "medium"
    assert r.json()["fallbacks"] == [{"model": "small", "error_code": "timeout"}]


async def test_callers_latency_budget_is_a_deadline(harness: Harness):
    for dep in ("dep-small", "dep-medium", "dep-large"):
        harness.simulator.script(dep, Reply(content="slow", delay_s=2))
    started = time.perf_counter()
    r = await harness.client.post("/api/route", json={"query": "hi", "constraints": {"max_latency_ms": 400}})
    assert time.perf_counter() - started < 1.5
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    [rec] = await harness.costs()
    assert rec["error_code"] == "timeout"


async def test_every_model_cooling_down_still_tries_the_choice_once(harness: Harness):
    for dep in ("dep-small", "dep-medium", "dep-large"):
        harness.simulator.script(dep, Reply(status=429, headers={"retry-after": "60"}))
    r = await harness.client.post("/api/route", json={"query": "hi"})
    assert r.status_code == 502
    r = await harness.client.post("/api/route", json={"query": "hi"})  # all cooling: one honest attempt
    assert r.status_code == 200 and r.json()["model_used"] == "small"


async def test_cost_records_survive_a_table_outage_exactly_once(
    settings_factory, simulator, tmp_path, caplog
):
    store = Azurite(workdir=str(tmp_path / "azurite")).start()
    settings = settings_factory(TABLES_CONNECTION_STRING=store.connection_string, HEALTH_REFRESH_S=3600)
    runtime = Runtime(settings)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")

    async def send(tag: str, n: int) -> None:
        for i in range(n):
            r = await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": f"{tag}-{i}"})
            assert r.status_code == 200, r.text

    try:
        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        await send("before", 3)
        service = runtime.built_service
        await service.recorder.idle()
        store.stop()
        await send("during", 4)
        await service.recorder.idle()
        assert service.recorder.buffered == 4
        assert (await client.get("/api/health")).json()["pending_cost_records"] == 4
        # Each parked record is in the log in full, so it is recoverable even if the process dies now.
        logged = [line for line in caplog.text.splitlines() if '"cost_record"' in line]
        assert len(logged) == 4 and all('"request_id":"during-' in line for line in logged)
        store.start()
        await send("after", 2)  # later requests flush the parked records
        await service.recorder.idle()
        assert service.recorder.buffered == 0
        table = await runtime.table(settings.COSTS_TABLE)
        ids = sorted([e["request_id"] async for e in table.list_entities()])
        expected = [f"after-{i}" for i in range(2)] + [f"before-{i}" for i in range(3)]
        expected += [f"during-{i}" for i in range(4)]
        assert ids == sorted(expected)  # every record, none twice
    finally:
        await client.aclose()
        await runtime.close()
        store.stop()


async def test_shutdown_drains_parked_records(settings_factory, simulator, tmp_path):
    store = Azurite(workdir=str(tmp_path / "azurite")).start()
    settings = settings_factory(TABLES_CONNECTION_STRING=store.connection_string)
    runtime = Runtime(settings)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")
    try:
        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "warm"})
        await runtime.built_service.recorder.idle()
        store.stop()
        await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "parked"})
        await runtime.built_service.recorder.idle()
        store.start()
        await runtime.close()  # lifespan shutdown: drain
        check = Runtime(settings)
        table = await check.table(settings.COSTS_TABLE)
        assert sorted([e["request_id"] async for e in table.list_entities()]) == ["parked", "warm"]
        await check.close()
    finally:
        await client.aclose()
        store.stop()


def _serve(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--port", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(f"/tmp/serve-{port}.log", "wb"),
    )  # fmt: skip


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx2.get(f"{url}/api/health", timeout=1).status_code in (200, 503):
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise TimeoutError(url)


async def test_two_instances_share_a_cooldown_through_table_storage(azurite, simulator_server, identity):
    sim, sim_server = simulator_server
    sim.reset()
    endpoint, id_server = identity
    models_table = unique("models")
    env = {
        **os.environ,
        "AZURE_OPENAI_ENDPOINT": sim_server.url,
        "ALLOW_LOOPBACK_ENDPOINTS": "true",
        "AZURE_CLIENT_ID": CLIENT_ID,
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "MODELS_TABLE": models_table,
        "COSTS_TABLE": unique("costs"),
        "HEALTH_TABLE": unique("health"),
        "HEALTH_REFRESH_S": "0.3",
        "IDENTITY_ENDPOINT": f"{id_server.url}/msi/token",
        "IDENTITY_HEADER": endpoint.header_secret,
    }
    seed = Runtime(load_settings(env))
    await upsert_table(await seed.table(models_table), MODELS)
    await seed.close()
    port_a, port_b = free_port(), free_port()
    a, b = _serve(port_a, env), _serve(port_b, env)
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    try:
        await asyncio.to_thread(_wait_up, url_a, a)
        await asyncio.to_thread(_wait_up, url_b, b)
        async with httpx2.AsyncClient(timeout=10) as client:
            # Both instances warm (catalogue loaded, health table read once).
            for url in (url_a, url_b):
                assert (await client.post(f"{url}/api/route", json={"query": "hi"})).json()[
                    "model_used"
                ] == "small"
            sim.script("dep-small", Reply(status=429, headers={"retry-after": "60"}))
            r = await client.post(f"{url_a}/api/route", json={"query": "hi"})
            assert r.json()["model_used"] == "medium"  # A saw the 429 and fell back
            learned_from = time.monotonic()
            deadline = learned_from + 5
            while True:  # B learns it from the health table within its refresh interval
                await client.post(f"{url_b}/api/route", json={"query": "hi"})
                health = (await client.get(f"{url_b}/api/health")).json()
                if "small" in health["unhealthy"]:
                    learned_in = time.monotonic() - learned_from
                    break
                assert time.monotonic() < deadline, "instance B never saw the shared cooldown"
                await asyncio.sleep(0.1)
            calls_seen = len(sim.calls_to("dep-small"))
            for _ in range(3):
                r = await client.post(f"{url_b}/api/route", json={"query": "hi"})
                assert r.json()["model_used"] == "medium"
            assert len(sim.calls_to("dep-small")) == calls_seen  # B no longer sends to the throttled one
            assert learned_in < 0.3 + 1.5  # within its refresh interval (0.3 s) plus request time
    finally:
        for proc in (a, b):
            proc.send_signal(2)
        for proc in (a, b):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_when_the_only_capable_model_fails_a_less_capable_one_answers(harness: Harness):
    from tests.test_api_route import HARD

    harness.simulator.script("dep-large", Reply(status=503))
    r = await harness.client.post("/api/route", json={"query": HARD})
    assert r.status_code == 200
    assert r.json()["model_used"] == "medium"  # a degraded answer beats a 502, and it says so
    assert r.json()["fallbacks"] == [{"model": "large", "error_code": "http_503"}]
