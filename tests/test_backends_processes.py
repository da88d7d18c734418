"""Per-backend health shared by two router *processes* (issue 18): two ``python -m router serve`` share
the models and health tables on Azurite and call the same simulator. A 429 on the PTU backend seen by
process A cools that backend down in process B too (within HEALTH_REFRESH_S), while B keeps using the
model's other backends: no request goes to another model, and B never calls the throttled backend."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest

from router.dev.simulator import Reply
from router.models.store import upsert_table
from tests.conftest import CLIENT_ID, unique
from tests.support import router_env, start_router, stop_router, wait_ready
from tests.test_backends import catalogue


@pytest.fixture
def two_processes(settings_factory: Any) -> Iterator[tuple[Any, list[tuple[str, subprocess.Popen[str]]]]]:
    s = settings_factory(MODELS_TABLE=unique("models"), COSTS_TABLE=unique("costs"),
                         HEALTH_TABLE=unique("health"), COST_WRITE_MODE="inline")  # fmt: skip
    env = router_env(s, CLIENT_ID, HEALTH_REFRESH_S="0.2", JUDGE_ENABLED="false")
    made = [start_router(env) for _ in range(2)]
    yield s, [(url, proc) for proc, url in made]
    for proc, _ in made:
        stop_router(proc)


async def test_a_backend_throttled_in_one_process_is_skipped_by_the_other(two_processes, simulator, azurite):
    from azure.data.tables.aio import TableServiceClient

    settings, [(url_a, proc_a), (url_b, proc_b)] = two_processes
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        models = catalogue(settings.AZURE_OPENAI_ENDPOINT)
        await upsert_table(await service.create_table_if_not_exists(settings.MODELS_TABLE), models)
        await asyncio.gather(wait_ready(url_a, proc_a), wait_ready(url_b, proc_b))
        a = openai.AsyncOpenAI(base_url=f"{url_a}/api/v1", api_key="unused", max_retries=0)
        b = openai.AsyncOpenAI(base_url=f"{url_b}/api/v1", api_key="unused", max_retries=0)
        messages: Any = [{"role": "user", "content": "hi there"}]
        first = await b.chat.completions.create(model="auto", messages=messages)  # B is warm, PTU healthy
        assert first.model == "gpt" and len(simulator.calls_to("ptu")) == 1

        simulator.script("ptu", Reply(status=429, headers={"retry-after-ms": "60000"}))
        failed_over = await a.chat.completions.create(model="auto", messages=messages)
        assert failed_over.model == "gpt"  # the same model's pay-as-you-go backend answered
        assert len(simulator.calls_to("ptu")) == 2  # B's call, then A's refused one

        async with httpx2.AsyncClient(base_url=url_b) as http:  # B learns A's cooldown at a refresh
            for _ in range(100):
                unhealthy = (await http.get("/api/health")).json()["unhealthy"]
                if any("ptu" in key for key in unhealthy):
                    break
                await asyncio.sleep(0.1)
        assert any("ptu" in key for key in unhealthy) and not any("payg" in key for key in unhealthy)
        answers = [await b.chat.completions.create(model="auto", messages=messages) for _ in range(5)]
        await a.close()
        await b.close()
        assert {x.model for x in answers} == {"gpt"}
        assert len(simulator.calls_to("ptu")) == 2  # B never sent the throttled backend a request
        assert {c.deployment for c in simulator.seen[-5:]} <= {"payg-a", "payg-b"}
        costs = service.get_table_client(settings.COSTS_TABLE)
        rows = [e async for e in costs.list_entities()]
    assert len(rows) == 7 and {r["model"] for r in rows} == {"gpt"}
    assert sorted(r["deployment"] for r in rows).count("ptu") == 1  # only B's first call
