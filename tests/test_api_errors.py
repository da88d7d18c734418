"""Every error is JSON {"error": {"code", "message", "request_id"}} with the right status."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from router.api.app import create_app
from router.dev.azurite import Azurite
from router.dev.simulator import Reply
from router.runtime import Runtime
from tests.conftest import MODELS, Harness


def assert_error(r: httpx2.Response, status: int, code: str, *, mentions: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == code
    assert err["request_id"] == r.headers["x-request-id"]
    if mentions:
        assert mentions in err["message"], err["message"]
    assert "Traceback" not in r.text
    return err


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (b"{not json", "invalid_json", None),
        (b"", "invalid_json", None),
        (b"[]", "validation_error", "body"),
        (b'{"constraints": {}}', "validation_error", "query"),
        (b'{"query": 42}', "validation_error", "query"),
        (b'{"query": ""}', "validation_error", "query"),
        (b'{"query": "x", "temperature": 1}', "validation_error", "temperature"),
        (b'{"query": "x", "constraints": {"max_tokens": 5}}', "validation_error", "constraints.max_tokens"),
        (
            b'{"query": "x", "constraints": {"max_latency_ms": "fast"}}',
            "validation_error",
            "constraints.max_latency_ms",
        ),
        (
            b'{"query": "x", "constraints": {"max_latency_ms": -1}}',
            "validation_error",
            "constraints.max_latency_ms",
        ),
        (
            b'{"query": "x", "constraints": {"max_cost_per_1k": NaN}}',
            "validation_error",
            "constraints.max_cost_per_1k",
        ),
        (
            b'{"query": "x", "constraints": {"max_cost_per_1k": 1e999}}',
            "validation_error",
            "constraints.max_cost_per_1k",
        ),
        (
            b'{"query": "x", "constraints": {"max_latency_ms": true}}',
            "validation_error",
            "constraints.max_latency_ms",
        ),
        (b'{"query": "x", "constraints": []}', "validation_error", "constraints"),
        (b'\xff\xfe{"query": "x"}', "invalid_json", None),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    harness: Harness, body: bytes, code: str, field: str | None
):
    for path in ("/api/route", "/api/decide"):
        r = await harness.client.post(path, content=body, headers={"content-type": "application/json"})
        assert_error(r, 400, code, mentions=field)
    assert harness.simulator.seen == []
    assert await harness.costs() == []


async def test_body_without_json_content_type_is_still_parsed(harness: Harness):
    r = await harness.client.post(
        "/api/decide", content=b'{"query": "hi"}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 200


async def test_oversized_body_is_413(harness_factory):
    h = await harness_factory(MAX_BODY_BYTES=1000)
    r = await h.client.post("/api/route", json={"query": "x" * 2000})
    assert_error(r, 413, "body_too_large", mentions="MAX_BODY_BYTES")

    async def chunks():  # no content-length: counted while streaming in
        for _ in range(5):
            yield b"x" * 400

    r = await h.client.post("/api/route", content=chunks())
    assert_error(r, 413, "body_too_large")
    assert h.simulator.seen == []


async def test_unknown_path_is_404_and_wrong_method_is_405(harness: Harness):
    assert_error(await harness.client.get("/api/nope"), 404, "not_found")
    assert_error(await harness.client.get("/api/route"), 405, "method_not_allowed")
    assert_error(await harness.client.delete("/api/models"), 405, "method_not_allowed")


async def test_upstream_failure_everywhere_is_502_and_still_recorded(harness: Harness):
    for dep in ("dep-small", "dep-medium", "dep-large"):
        harness.simulator.script(dep, Reply(status=500, error_message="boom"))
    r = await harness.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "fail-1"})
    err = assert_error(r, 502, "upstream_http_500", mentions="small (http_500), medium (http_500), large")
    assert err["request_id"] == "fail-1"
    [rec] = await harness.costs()
    assert rec["request_id"] == "fail-1"
    assert rec["status"] == "error" and rec["error_code"] == "http_500"
    assert rec["cost_usd"] == 0 and rec["prompt_tokens"] == 0
    assert rec["model"] == "large" and rec["fallbacks"] == 3


async def test_throttled_everywhere_is_502_with_its_code(harness: Harness):
    for dep in ("dep-small", "dep-medium", "dep-large"):
        harness.simulator.script(dep, Reply(status=429, headers={"retry-after": "3"}))
    r = await harness.client.post("/api/route", json={"query": "hi"})
    assert_error(r, 502, "upstream_http_429")
    assert (await harness.costs())[0]["error_code"] == "http_429"


async def test_upstream_timeout_is_504_and_recorded(harness_factory):
    h = await harness_factory(REQUEST_TIMEOUT_S=0.5)
    h.simulator.script("dep-small", Reply(content="late", delay_s=3))
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert_error(r, 504, "upstream_timeout")
    [rec] = await h.costs()
    assert rec["status"] == "error" and rec["error_code"] == "timeout"


async def test_no_model_configs_is_503(harness_factory):
    h = await harness_factory(models=None)
    for path in ("/api/route", "/api/decide"):
        assert_error(await h.client.post(path, json={"query": "hi"}), 503, "no_models")
    assert_error(await h.client.get("/api/health"), 503, "no_models")


async def test_all_models_disabled_is_503(harness_factory):
    h = await harness_factory(models=[m.model_copy(update={"enabled": False}) for m in MODELS])
    assert_error(
        await h.client.post("/api/route", json={"query": "hi"}), 503, "no_models", mentions="enabled"
    )


async def test_invalid_entities_are_skipped_not_fatal(harness: Harness, caplog):
    table = await harness.runtime.table(harness.settings.MODELS_TABLE)
    await table.upsert_entity(
        {
            "PartitionKey": "models",
            "RowKey": "broken",
            "deployment": "d",
            "cost_per_1k_tokens": "cheap",
            "avg_latency_ms": 1,
            "max_complexity": 2,
        }
    )
    r = await harness.client.get("/api/models")
    assert r.status_code == 200
    assert [m["name"] for m in r.json()["models"]] == ["small", "medium", "large"]
    assert "broken" in caplog.text


async def test_table_store_unreachable_at_start_is_503_not_a_crash(settings_factory):
    dead = Azurite()  # never started: nothing listens on its port
    from router.dev.azurite import free_port

    dead.port = free_port()
    runtime = Runtime(settings_factory(TABLES_CONNECTION_STRING=dead.connection_string))
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")
    try:
        r = await asyncio.wait_for(client.post("/api/route", json={"query": "hi"}), timeout=60)
        assert_error(r, 503, "no_models", mentions="Table Storage")
    finally:
        await client.aclose()
        await runtime.close()


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("bad id", False), ("<script>", False)],
)
async def test_request_id_is_taken_when_sane(harness: Harness, sent: str, echoed: bool):
    r = await harness.client.get("/api/nope", headers={"x-request-id": sent})
    rid = r.headers["x-request-id"]
    assert (rid == sent) is echoed
    assert r.json()["error"]["request_id"] == rid
    ok = await harness.client.get("/api/health", headers={"x-request-id": sent})
    assert ok.status_code == 200 and (ok.headers["x-request-id"] == sent) is echoed
