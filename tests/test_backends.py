"""Backends per model (issue 18) against the local test server: the app over HTTP (ASGI), the real
``openai`` SDK and aiohttp clients to the Azure OpenAI simulator, Azurite for every table.

Each selection rule (priority, same-model failover before the model chain, header-based skipping),
spillover, per-backend shared health across two instances on one table, backward compatibility of old
catalogue rows and the per-backend cost report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from router.dev.quota import Quota
from router.dev.simulator import Reply
from router.health import SharedHealth
from router.health import table as health_table
from router.models.config import ModelConfig
from router.models.store import read_table
from router.pipeline.backends import backend_key
from tests.conftest import UPSTREAM_CLIENTS, Harness, unique

PRICES = {"cost_per_1k_tokens": 0.001, "input_cost_per_1k": 0.001, "output_cost_per_1k": 0.002,
          "avg_latency_ms": 500, "max_complexity": 1.0}  # fmt: skip


@pytest.fixture(params=UPSTREAM_CLIENTS)
def upstream_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs against both upstream clients (the headers come from either)."""
    return str(request.param)


def catalogue(sim_url: str, **ptu: Any) -> list[ModelConfig]:
    gpt = ModelConfig.model_validate({"name": "gpt", **PRICES, "backends": [
        {"deployment": "ptu", "priority": 1, "provisioned": True, "tokens_per_minute": 60_000, **ptu},
        {"deployment": "payg-a", "priority": 2, "weight": 1, "endpoint": sim_url},
        {"deployment": "payg-b", "priority": 2, "weight": 1},
    ]})  # fmt: skip
    other = ModelConfig.model_validate({"name": "other", "deployment": "dep-other", **PRICES,
                                        "cost_per_1k_tokens": 0.01})  # fmt: skip
    return [gpt, other]


async def make(harness_factory: Any, **ptu: Any) -> Harness:
    h: Harness = await harness_factory(models=None)
    await h.set_models(catalogue(h.settings.AZURE_OPENAI_ENDPOINT or "", **ptu))
    return h


async def chat(h: Harness, max_tokens: int = 200, stream: bool = False) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi there"}], "max_tokens": max_tokens,
            "stream": stream}  # fmt: skip
    r = await h.client.post("/api/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r


async def test_priority_first_then_the_same_models_backends_then_the_model_chain(harness_factory, simulator):
    h = await make(harness_factory)
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert r.json()["model_used"] == "gpt" and len(simulator.calls_to("ptu")) == 1
    [rec] = await h.costs()
    assert (rec["deployment"], rec["provisioned"]) == ("ptu", True)
    assert rec["endpoint"] == h.settings.AZURE_OPENAI_ENDPOINT.rstrip("/")  # type: ignore[union-attr]

    simulator.script("ptu", Reply(status=429, headers={"retry-after-ms": "60000"}))
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "failover"})
    assert r.status_code == 200 and r.json()["model_used"] == "gpt"  # another backend, same model
    rec = next(e for e in await h.costs() if e["request_id"] == "failover")
    assert rec["deployment"] in ("payg-a", "payg-b") and rec["provisioned"] is False
    assert json.loads(rec["attempts"]) == [{"model": "gpt", "error_code": "http_429", "deployment": "ptu"}]
    expected = (rec["prompt_tokens"] * 0.001 + rec["completion_tokens"] * 0.002) / 1000
    assert abs(rec["cost_usd"] - expected) < 1e-9  # priced as the same model

    calls = len(simulator.calls_to("ptu"))
    await h.client.post("/api/route", json={"query": "hi"})
    assert len(simulator.calls_to("ptu")) == calls  # the throttled backend cools down, alone

    simulator.script("payg-a", Reply(status=500))
    simulator.script("payg-b", Reply(status=503))
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "chain"})
    assert r.json()["model_used"] == "other"  # only when no backend of gpt is left
    rec = next(e for e in await h.costs() if e["request_id"] == "chain")
    codes = sorted(a["error_code"] for a in json.loads(rec["attempts"]))
    assert codes == ["http_500", "http_503"] and rec["fallbacks"] == 2


async def test_a_backend_whose_deployment_does_not_exist_moves_to_the_next_backend(
    harness_factory, simulator
):
    """404 DeploymentNotFound is the catalogue's mistake about one backend, not the caller's: the same
    model's next backend answers, the missing one cools down, and the record names it."""
    h = await make(harness_factory)
    message = "The API deployment for this resource does not exist."
    simulator.script("ptu", Reply(status=404, error_code="DeploymentNotFound", error_message=message))
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "missing"})
    assert r.status_code == 200 and r.json()["model_used"] == "gpt"
    rec = next(e for e in await h.costs() if e["request_id"] == "missing")
    assert rec["deployment"] in ("payg-a", "payg-b")
    assert json.loads(rec["attempts"]) == [
        {"model": "gpt", "error_code": "deployment_not_found", "deployment": "ptu"}
    ]
    calls = len(simulator.calls_to("ptu"))
    await h.client.post("/api/route", json={"query": "hi"})
    assert len(simulator.calls_to("ptu")) == calls  # cooling down: not asked again at once


@pytest.mark.parametrize("stream", [False, True])
async def test_remaining_tokens_below_the_estimate_skip_the_backend_without_a_429(
    harness_factory, simulator, stream
):
    h = await make(harness_factory)
    # Room for two requests of ~215 tokens (prompt + max_tokens 200), not three.
    simulator.quotas["ptu"] = quota = Quota(tokens=600, window_s=3600)
    for _ in range(2):
        await chat(h, stream=stream)
    assert len(simulator.calls_to("ptu")) == 2
    for _ in range(3):
        await chat(h, stream=stream)
    assert len(simulator.calls_to("ptu")) == 2  # its last answer said ~170 tokens were left: skipped
    assert quota.refused == 0  # no upstream 429 at all
    recs = await h.costs()
    assert sorted(r["deployment"] for r in recs).count("ptu") == 2 and all(r["model"] == "gpt" for r in recs)


async def test_zero_remaining_requests_skip_the_backend(harness_factory, simulator):
    h = await make(harness_factory)
    simulator.quotas["ptu"] = quota = Quota(tokens=10**9, requests=1, window_s=3600)
    for _ in range(3):
        await chat(h)
    assert len(simulator.calls_to("ptu")) == 1 and quota.refused == 0
    health = (await h.client.get("/api/health")).json()
    assert health["capacity"]["gpt|ptu@default"]["remaining_requests"] == 0


async def test_spillover_is_azures_not_a_client_side_retry(harness_factory, simulator):
    h = await make(harness_factory, spillover_deployment="ptu-spill")
    simulator.script("ptu", Reply(status=429, headers={"retry-after-ms": "60000"}))
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "spill"})
    assert r.status_code == 200 and r.json()["fallbacks"] == []
    assert simulator.answered["ptu-spill"] == 1  # Azure (here: the simulator) answered from the spillover
    assert not simulator.calls_to("payg-a") and not simulator.calls_to("payg-b")
    [rec] = await h.costs()
    assert (rec["deployment"], rec["provisioned"], rec["fallbacks"]) == ("ptu-spill", False, 0)
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert len(simulator.calls_to("ptu")) == 2  # no 429 reached the router: the PTU is not cooled down


async def test_old_catalogue_rows_still_route(harness_factory, simulator):
    h: Harness = await harness_factory(models=None)
    table = await h.runtime.table(h.settings.MODELS_TABLE)
    old = {"PartitionKey": "models", "RowKey": "small", "deployment": "dep-small", **PRICES}  # no backends
    bad = {"PartitionKey": "models", "RowKey": "broken", "deployment": "x", **PRICES, "backends": "[{"}
    for entity in (old, bad):
        await table.upsert_entity(entity)
    [model] = await read_table(table, h.settings.endpoint_policy)  # the bad row is skipped (logged)
    assert model.name == "small" and [b.deployment for b in model.backends] == ["dep-small"]
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert r.json()["model_used"] == "small"
    [rec] = await h.costs()
    assert (rec["deployment"], rec["provisioned"]) == ("dep-small", False)


async def test_costs_group_by_deployment_shows_each_backend(harness_factory, simulator):
    h = await make(harness_factory)
    simulator.script("ptu", Reply(), Reply(), Reply(status=429, headers={"retry-after-ms": "60000"}))
    for _ in range(4):
        await h.client.post("/api/route", json={"query": "hi"})
    recs = await h.costs()
    r = await h.client.get("/api/costs", params={"group_by": "deployment"})
    assert r.status_code == 200, r.text
    groups = {g["deployment"]: g for g in r.json()["groups"]}
    ptu = groups["ptu"]
    assert ptu["calls"] == 2 and ptu["provisioned"] is True
    assert abs(ptu["spend_usd"] - sum(x["cost_usd"] for x in recs if x["deployment"] == "ptu")) < 1e-9
    used = ptu["prompt_tokens"] + ptu["completion_tokens"]
    assert ptu["budget_tokens"] > 0 and abs(ptu["budget_share"] - used / ptu["budget_tokens"]) < 1e-4
    assert sum(g["calls"] for g in groups.values()) == 4
    assert all("budget_share" not in g for d, g in groups.items() if d != "ptu")  # pay-as-you-go
    bad = await h.client.get("/api/costs", params={"group_by": "region"})
    assert bad.status_code == 400 and "group_by" in bad.text


async def test_per_backend_health_is_shared_by_two_instances_on_one_table(settings_factory, azurite):
    settings = settings_factory(HEALTH_TABLE=unique("health"))
    from router.runtime import Runtime

    runtime = Runtime(settings)
    try:
        table = await runtime.table(settings.HEALTH_TABLE)

        async def reader() -> list[dict[str, Any]]:
            return await health_table.read_rows(table)

        async def writer(entity: dict[str, Any]) -> None:
            await health_table.write_row(table, entity)

        a, b = (
            SharedHealth.from_settings(settings, instance_id=i, reader=reader, writer=writer) for i in "ab"
        )
        gpt = catalogue("https://x.openai.azure.com")[0]
        ptu, payg = (backend_key(gpt, x) for x in gpt.backends[:2])
        a.on_failure(ptu, "http_429", 60)
        a.observe(payg, remaining_tokens=10, remaining_requests=5, reset_s=30)
        await a.wait_idle()
        await b.refresh()
        assert not b.available(ptu) and b.available(payg)  # per backend: only the throttled one
        assert not b.has_capacity(payg, 100) and b.has_capacity(payg, 5)
        # B, not yet knowing A's 60 s, sees a 5 s Retry-After: its write keeps A's longer expiry.
        until = a.board.get(ptu).cooldown_until  # type: ignore[union-attr]
        fresh = SharedHealth.from_settings(settings, instance_id="c", reader=reader, writer=writer)
        fresh.on_failure(ptu, "http_429", 5)
        await fresh.wait_idle()
        rows = {r["RowKey"]: r for r in await reader()}
        assert rows[ptu]["cooldown_until"] == until  # absolute time, never shortened
        assert datetime.fromtimestamp(until, UTC) > datetime.now(UTC)
    finally:
        await runtime.close()


def test_models_load_names_the_bad_backends_field(azurite, tmp_path, monkeypatch, capsys):
    from router import cli

    monkeypatch.setenv("TABLES_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("MODELS_TABLE", unique("models"))
    path = tmp_path / "models.json"
    for backends, field in (([{"priority": 1}], "backends.0.deployment"), ("[{", "backends: not valid JSON")):
        path.write_text(json.dumps({"models": [{"name": "gpt", **PRICES, "backends": backends}]}))
        assert cli.main(["models", "load", str(path)]) == 2
        assert field in capsys.readouterr().err
    ptu, payg = {"deployment": "ptu", "provisioned": True}, {"deployment": "payg", "priority": 2, "weight": 2}
    backends = [ptu, payg]
    good = [{"name": "gpt", **PRICES, "backends": backends}]
    path.write_text(json.dumps({"models": good}))
    assert cli.main(["models", "load", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "backend ptu priority=1 weight=1 provisioned" in out
    assert "backend payg priority=2 weight=2 pay-as-you-go" in out


async def test_azure_429_when_every_backend_is_throttled_waits_for_the_soonest_backend(
    harness_factory, simulator
):
    """On Azure's wire format, all backends (and the next model) throttled is Azure's 429; its Retry-After
    is the soonest backend cooldown (health is kept per backend, not per model)."""
    h = await make(harness_factory)
    for deployment, wait in (("ptu", "40"), ("payg-a", "7"), ("payg-b", "30"), ("dep-other", "50")):
        simulator.script(deployment, Reply(status=429, error_code="429", headers={"retry-after": wait}))
    r = await h.client.post(
        "/openai/deployments/auto/chat/completions",
        params={"api-version": "2024-10-21"},
        json={"messages": [{"role": "user", "content": "hi there"}]},
    )
    assert r.status_code == 429 and r.json()["error"]["code"] == "429"
    assert r.headers["retry-after"] == "7" and 6000 < int(r.headers["retry-after-ms"]) <= 7000
