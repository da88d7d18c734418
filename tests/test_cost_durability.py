"""Cost records when Table Storage hangs (accepts connections, never answers) and the process goes away.

The guarantee under test: every record handed to the recorder is in the table, or in the log as one
full JSON line that ``python -m router costs replay`` stores exactly once, or both. Real components
throughout (Azurite, the real Table SDK, the real app behind ``function_app.py``'s HTTP streams
trigger); the hung endpoint is a real TCP peer (``tests.support.HangingProxy``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from azure.core.exceptions import AzureError, ServiceRequestError
from azure.data.tables import UpdateMode
from fastapi import FastAPI, Request

from router.api.app import create_app
from router.costs.recorder import CostRecorder
from router.costs.records import CostRecord, record_line
from router.costs.replay import scan
from router.dev.azurite import Azurite, free_port
from router.models.store import upsert_table
from router.runtime import Runtime
from router.settings import Settings, load_settings
from tests.conftest import CLIENT_ID, MODELS
from tests.support import HangingProxy
from tests.test_reliability import _wait_up

ROOT = Path(__file__).resolve().parents[1]
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # router.logs.configure_logging's


@pytest.fixture
def hung() -> Iterator[HangingProxy]:
    proxy = HangingProxy().start()
    yield proxy
    proxy.stop()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """The router's log lines in a file, formatted as ``serve`` formats them (timestamp, level, name)."""
    path = tmp_path / "router.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("router")
    logger.addHandler(handler)
    level, logger.level = logger.level, logging.INFO
    yield path
    logger.removeHandler(handler)
    logger.setLevel(level)
    handler.close()


def make_record(i: int) -> CostRecord:
    """Distinct values in every field, so a replay that mixes records up fails."""
    return CostRecord(
        request_id=f"q-{i}", model=f"m{i % 3}", deployment=f"dep-{i % 3}", complexity=i / 40,
        classifier="seed", prompt_tokens=100 + i, completion_tokens=200 + i, cost_usd=i * 0.001 + 0.0001,
        classifier_model="small" if i % 2 else None, classifier_prompt_tokens=i, classifier_cost_usd=i * 1e-6,
        baseline_model="large", baseline_cost_usd=i * 0.01, latency_ms=10.5 + i,
        status="ok" if i % 5 else "error", error_code=None if i % 5 else "http_500", fallbacks=i % 2,
    )  # fmt: skip


async def stored_entities(settings: Settings) -> dict[str, dict[str, Any]]:
    check = Runtime(settings)
    try:
        table = await check.table(settings.COSTS_TABLE)
        return {e["RowKey"]: dict(e) async for e in table.list_entities()}
    finally:
        await check.close()


def replay(settings: Settings, *logs: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TABLES_CONNECTION_STRING": settings.TABLES_CONNECTION_STRING or "",
           "COSTS_TABLE": settings.COSTS_TABLE}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "router", "costs", "replay", *map(str, logs)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def logged_request_ids(path: Path, phrase: str) -> list[str]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if phrase in line:
            out.append(json.loads(line[line.index('{"cost_record":') :])["cost_record"]["request_id"])
    return out


async def test_table_calls_time_out_instead_of_waiting_300_s(settings_factory, hung: HangingProxy):
    settings = settings_factory(
        TABLES_CONNECTION_STRING=hung.connection_string(settings_factory().TABLES_CONNECTION_STRING),
        TABLES_READ_TIMEOUT_S=0.5,
    )
    runtime = Runtime(settings)
    started = time.monotonic()
    try:
        with pytest.raises(AzureError):  # the SDK's timeout, not the 5 s guard (TimeoutError)
            await asyncio.wait_for(runtime.table(settings.COSTS_TABLE), 5)
        assert time.monotonic() - started < 3  # two attempts (retry_total=1) of 0.5 s each, plus backoff
        assert hung.accepted >= 1
        assert (Settings.model_fields["TABLES_CONNECT_TIMEOUT_S"].default,
                Settings.model_fields["TABLES_READ_TIMEOUT_S"].default) == (3.0, 10.0)  # fmt: skip
    finally:
        await runtime.close()


async def test_shutdown_during_a_hung_table_logs_every_record_and_replay_stores_each_once(
    settings_factory, hung: HangingProxy, log_file: Path
):
    """The finding: 40 records handed over, Table Storage hanging, then shutdown (what SIGTERM runs under
    ``serve``). Some records are in the batch being written, the others queued behind it."""
    real = settings_factory()
    settings = real.model_copy(
        update={
            "TABLES_CONNECTION_STRING": hung.connection_string(real.TABLES_CONNECTION_STRING or ""),
            "COST_DRAIN_S": 1.0,
        }
    )
    runtime = Runtime(settings)
    recorder = (await runtime.service()).recorder
    records = [make_record(i) for i in range(40)]
    for rec in records[:25]:
        recorder.submit(rec)
    await asyncio.sleep(0.2)  # the batcher has taken these 25 and is waiting on the hung table
    for rec in records[25:]:
        recorder.submit(rec)
    assert recorder.pending == 40
    started = time.monotonic()
    await runtime.close()
    assert time.monotonic() - started < 1.0 + 1.0 + 1.0  # drain bound, health bound, closing
    ids = logged_request_ids(log_file, "cost record not stored at shutdown")
    assert sorted(ids) == sorted(r.request_id for r in records)  # every one, in full, once

    # Replay the log, prefixes and unrelated lines included, into the real table: each record once.
    with log_file.open("a", encoding="utf-8") as f:
        f.write("2026-01-01 00:00:00,000 INFO router unrelated line {not json\n")
    result = replay(real, log_file)
    assert result.returncode == 0, result.stderr
    # Lines that name a record twice (parked, then at shutdown) count once.
    assert "40 distinct, 0 invalid; upserted 40, failed 0" in result.stdout
    for _ in range(2):  # a second replay changes nothing
        stored = await stored_entities(real)
        assert len(stored) == 40
        for rec in records:
            expected = rec.to_entity()
            got = stored[expected["RowKey"]]
            assert {k: got.get(k) for k in expected} == expected
            assert got.get("classifier_model") == expected.get("classifier_model")
        assert replay(real, log_file, log_file).returncode == 0


async def test_one_bound_covers_queued_records_and_evictions_are_logged_and_counted(
    settings_factory, azurite: Azurite, simulator, log_file: Path
):
    """With the table hung, records pile up before any write fails (nothing is parked yet): the bound
    must hold for them too, and each record beyond it is logged in full and counted."""
    proxy = HangingProxy(azurite.port).start()
    real = settings_factory(MODELS_TTL_SECONDS=3600, HEALTH_REFRESH_S=3600, COST_BUFFER_MAX=50)
    settings = real.model_copy(
        update={"TABLES_CONNECTION_STRING": proxy.connection_string(real.TABLES_CONNECTION_STRING or "")}
    )
    runtime = Runtime(settings)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")
    try:
        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        assert (await client.get("/api/health")).status_code == 200  # catalogue loaded
        proxy.hang()
        for i in range(120):
            r = await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": f"b-{i}"})
            assert r.status_code == 200
        health = (await client.get("/api/health")).json()
        assert health["pending_cost_records"] == 50
        assert health["dropped_cost_records"] == 70
        dropped = logged_request_ids(log_file, "cost record dropped, COST_BUFFER_MAX=50 reached")
        assert sorted(dropped) == sorted(f"b-{i}" for i in range(50, 120))
    finally:
        await client.aclose()
        proxy.stop()
        await runtime.close()


async def test_a_flush_racing_a_park_at_a_full_buffer_loses_no_record(settings_factory, caplog):
    """Mocked: only the timing. The writer is the real Azurite upsert behind a gate that holds the
    flush of one record mid-write and an injected outage (``ServiceRequestError``); no real fault can
    be timed to interleave a flush and a park this exactly."""
    settings = settings_factory()
    runtime = Runtime(settings)
    table = await runtime.table(settings.COSTS_TABLE)
    a, b, c = (make_record(i) for i in range(3))
    failing, held, gate = {a.row_key, b.row_key}, set(), asyncio.Event()

    async def write(entity: dict[str, Any]) -> None:
        if entity["RowKey"] in held:
            await gate.wait()
        if entity["RowKey"] in failing:
            raise ServiceRequestError("table unreachable")
        await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    recorder = CostRecorder(write, max_pending=2, background=False, retry_delays_s=())
    try:
        await recorder.record(a)
        await recorder.record(b)
        await recorder.idle()
        assert recorder.buffered == 2  # both parked: the buffer is full
        failing, held = {b.row_key, c.row_key}, {a.row_key}
        flushing = asyncio.ensure_future(recorder.flush())
        await asyncio.sleep(0.05)  # the flush is writing a, held at the gate
        await recorder.record(c)  # fails and parks while the flush of a is in flight
        failing = set()
        gate.set()
        await flushing
        await recorder.flush()
        await recorder.idle()
        stored = {e["RowKey"] async for e in table.list_entities()}
        missing = {r.row_key for r in (a, b, c)} - stored
        dropped = [line for line in caplog.text.splitlines() if "cost record dropped" in line]
        # Whatever is not in the table was dropped from memory, logged in full as such, and counted.
        assert {r.row_key for r in (a, b, c) if any(record_line(r) in line for line in dropped)} == missing
        assert recorder.dropped == len(missing) == 1
        assert recorder.pending == 0
    finally:
        await runtime.close()


# -- under the Functions host: no shutdown hook ever runs ------------------------------------------
_IMPORTED: list[Any] = []


@pytest.fixture
def function_app(monkeypatch, settings_factory) -> Iterator[Any]:
    """``function_app.py`` imported as the Functions host imports it, with the environment given."""

    def load(**env: str) -> tuple[Any, Settings]:
        base = settings_factory().model_dump(exclude_none=True)
        values = {k: str(v) for k, v in {**base, "MODELS_TTL_SECONDS": 3600, "HEALTH_REFRESH_S": 3600,
                                        "COST_DRAIN_S": 0.5, **env}.items()}  # fmt: skip
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        sys.modules.pop("function_app", None)
        module = importlib.import_module("function_app")
        _IMPORTED.append(module)  # kept referenced: the app's clients belong to this loop
        return module, load_settings(values)

    yield load
    sys.modules.pop("function_app", None)


def _worker_client(module: Any) -> httpx2.AsyncClient:
    """The worker's own HTTP app for HTTP streams (a FastAPI catch-all handing its Request to the
    trigger, as azure_functions_runtime's http_v2 does), calling ``http_app_func`` in-process."""
    outer = FastAPI()

    @outer.api_route("/{path:path}", methods=["GET", "POST"])
    async def catch_all(request: Request) -> Any:
        return await module.http_app_func(request)

    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=outer), base_url="http://worker.test")


async def _invoke(module: Any, rid: str) -> None:
    """One request through the trigger; returns when its response is complete (body read to the end)."""
    async with _worker_client(module) as client:
        resp = await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": rid})
    assert resp.status_code == 200, resp.text


async def test_each_function_invocation_returns_with_its_record_stored(function_app, simulator):
    """Nothing after the response completes is needed: the table is read by another client right
    after each one, and the app is then dropped without its shutdown (which the host never runs)."""
    module, settings = function_app()
    runtime = module.runtime
    await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
    for i in range(3):
        await _invoke(module, f"fn-{i}")
        ids = sorted(e["request_id"] for e in (await stored_entities(settings)).values())
        assert ids == [f"fn-{j}" for j in range(i + 1)]
    await runtime.close()  # test hygiene only (the shared event loop): the assertions are above


async def test_function_invocation_with_a_hung_table_logs_its_record_before_returning(
    function_app, simulator, azurite: Azurite, log_file: Path
):
    """With Table Storage hung, each invocation waits COST_AWAIT_MS for its record, then logs it in
    full and returns: when the worker is then dropped (recycle, scale-in: no shutdown hook), every
    record is in the table or in the log, and the log replays into the table."""
    proxy = HangingProxy(azurite.port).start()
    module, settings = function_app(
        TABLES_CONNECTION_STRING=proxy.connection_string(azurite.connection_string), COST_AWAIT_MS="300"
    )
    real = settings.model_copy(update={"TABLES_CONNECTION_STRING": azurite.connection_string})
    runtime = module.runtime
    try:
        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        await _invoke(module, "warm")
        proxy.hang()
        for i in range(3):
            started = time.monotonic()
            await _invoke(module, f"hung-{i}")
            assert time.monotonic() - started < 0.3 + 0.7
            assert logged_request_ids(log_file, "not stored within COST_AWAIT_MS") == [
                f"hung-{j}" for j in range(i + 1)
            ]
        # The worker is gone now as far as the records are concerned: no close, no drain.
        ids = sorted(e["request_id"] for e in (await stored_entities(real)).values())
        assert ids == ["warm"]
    finally:
        proxy.stop()
        await runtime.close()  # test hygiene only; its shutdown lines are not used below
    lines = [line for line in log_file.read_text().splitlines() if "not stored within" in line]
    (log_file.parent / "host.log").write_text("\n".join(lines) + "\n")
    result = replay(real, log_file.parent / "host.log")
    assert "3 cost record(s), 3 distinct, 0 invalid; upserted 3, failed 0" in result.stdout, result.stderr
    ids = sorted(e["request_id"] for e in (await stored_entities(real)).values())
    assert ids == ["hung-0", "hung-1", "hung-2", "warm"]


def test_application_insights_never_samples_log_lines_away():
    """In Azure the log is Application Insights: a sampled-away trace would be a record in neither
    the table nor the log."""
    host = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert not sampling["isEnabled"] or "Trace" in sampling["excludedTypes"].split(";")


async def test_sigterm_to_serve_during_a_hung_table_loses_no_record(
    azurite: Azurite, simulator_server, identity, tmp_path: Path
):
    """The finding end to end: ``python -m router serve``, Table Storage hung, 40 calls, SIGTERM. The
    process exits within its drain bound, and its stderr replays into the table: all 40, once each."""
    sim, sim_server = simulator_server
    sim.reset()
    endpoint, id_server = identity
    proxy = HangingProxy(azurite.port).start()
    costs = f"costs{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ, "AZURE_OPENAI_ENDPOINT": sim_server.url, "AZURE_CLIENT_ID": CLIENT_ID,
        "ALLOW_LOOPBACK_ENDPOINTS": "true",
        "TABLES_CONNECTION_STRING": proxy.connection_string(azurite.connection_string),
        "MODELS_TABLE": f"models{uuid.uuid4().hex[:10]}", "COSTS_TABLE": costs,
        "HEALTH_TABLE": f"health{uuid.uuid4().hex[:10]}", "CLASSIFIER": "seed",
        "MODELS_TTL_SECONDS": "3600", "HEALTH_REFRESH_S": "3600", "COST_DRAIN_S": "1",
        "IDENTITY_ENDPOINT": f"{id_server.url}/msi/token", "IDENTITY_HEADER": endpoint.header_secret,
    }  # fmt: skip
    seed = Runtime(load_settings(env))
    await upsert_table(await seed.table(env["MODELS_TABLE"]), MODELS)
    await seed.close()
    port, stderr = free_port(), tmp_path / "serve.stderr"
    proc = subprocess.Popen([sys.executable, "-m", "router", "serve", "--port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr.open("wb"))  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        await asyncio.to_thread(_wait_up, url, proc)
        async with httpx2.AsyncClient(timeout=10) as client:
            assert (await client.post(f"{url}/api/route", json={"query": "hi"})).status_code == 200
            real = load_settings({**env, "TABLES_CONNECTION_STRING": azurite.connection_string})
            while not await stored_entities(real):  # the warm-up's record is written in the background
                await asyncio.sleep(0.05)
            # ... and its writer has had the answer: stored is not yet acknowledged, and hanging the proxy
            # between the two would log the warm-up's record too (correctly: not known to be stored).
            while (await client.get(f"{url}/api/health")).json()["pending_cost_records"]:
                await asyncio.sleep(0.05)
            proxy.hang()
            for i in range(40):
                r = await client.post(
                    f"{url}/api/route", json={"query": "hi"}, headers={"x-request-id": f"s-{i}"}
                )
                assert r.status_code == 200
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the SIGTERM after its graceful shutdown (lifespan included): -15
        assert await asyncio.to_thread(proc.wait, 15) in (0, -signal.SIGTERM)
        assert time.monotonic() - started < 1 + 1 + 3  # COST_DRAIN_S, the health bound, the rest
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()
    logged = logged_request_ids(stderr, "cost record not stored at shutdown")
    assert sorted(logged) == sorted(f"s-{i}" for i in range(40))
    result = replay(real, stderr)
    assert "40 distinct, 0 invalid; upserted 40, failed 0" in result.stdout, result.stdout + result.stderr
    stored = await stored_entities(real)
    assert sorted(e["request_id"] for e in stored.values() if e["request_id"].startswith("s-")) == sorted(
        f"s-{i}" for i in range(40)
    )


def test_replay_reads_records_wherever_they_sit_and_flags_what_it_cannot_read():
    a, b = make_record(1), make_record(2)
    line_a, line_b = record_line(a), record_line(b)
    newer = json.loads(line_b)
    newer["cost_record"]["from_a_newer_version"] = 1
    lines = [
        f"2026-12-01 10:00:00,123 ERROR router.costs cost record write failed (ReadTimeout): {line_a}",
        f"[worker] {line_a} and again {line_b}",  # two in a line, one of them twice
        "2026-12-01 10:00:01,000 INFO router.api route r1 model=small",  # unrelated
        line_a[:-20],  # cut short
        '"{""cost_record"":{""PartitionKey"":""2026-12-01""}}"',  # CSV-escaped
        json.dumps(newer),
    ]  # fmt: skip
    found = scan((f"log:{n}", line) for n, line in enumerate(lines, 1))
    assert found.records == {
        (a.partition_key, a.row_key): a.to_entity(),
        (b.partition_key, b.row_key): b.to_entity(),
    }
    assert (found.lines, found.found, len(found.invalid)) == (6, 6, 3)
    assert "fields unknown to this version: from_a_newer_version" in found.invalid[-1]
