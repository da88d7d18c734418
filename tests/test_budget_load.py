"""The budget guarantee under load: 200 concurrent requests from one caller, through TWO router
processes' worth of state (two app instances, each with its own Runtime, event loop and budget ledger,
on their own ports) sharing one Azurite budgets table, leave total spend (the sum of the stored cost
records) at most the budget plus one request's reservation.

Every request really costs its worst case here (the simulator reports exactly the reserved tokens), the
hardest case for the bound: the budget holds 50.5 reservations, so exactly 50 may be admitted.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx2

from router.api.app import create_app
from router.callers.budgets import Limits, to_pico, usd
from router.dev.simulator import Reply
from router.pipeline import pricing
from router.pipeline.admission import prompt_upper_bound
from router.runtime import Runtime
from tests.conftest import MODELS, unique
from tests.support import ThreadServer
from tests.test_budgets import store_of

REQUESTS = 200
MESSAGES = [{"role": "user", "content": "hello there"}]
MAX_TOKENS = 50


async def test_200_concurrent_requests_over_two_instances_stay_within_the_budget(harness_factory):
    h = await harness_factory(BUDGETS_TABLE=unique("budgets"), JUDGE_ENABLED=False)
    prompt = prompt_upper_bound(MESSAGES)
    reservation = pricing.call_cost(MODELS[0], prompt, MAX_TOKENS)
    budget = 50.5 * reservation
    store = await store_of(h.runtime)
    await store.write_limits("caller", "anonymous", Limits(daily_usd=budget))
    h.simulator.script("dep-small", *[Reply(prompt_tokens=prompt, completion_tokens=MAX_TOKENS, delay_s=0.02)
                                      for _ in range(REQUESTS)])  # fmt: skip
    runtimes = [Runtime(h.settings), Runtime(h.settings)]
    servers = [ThreadServer(create_app(r)).start() for r in runtimes]
    body = {"model": "small", "max_tokens": MAX_TOKENS, "messages": MESSAGES}
    limits = httpx2.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
    try:
        async with httpx2.AsyncClient(limits=limits, timeout=60) as http:
            calls = [
                http.post(f"{servers[i % 2].url}/api/v1/chat/completions", json=body) for i in range(REQUESTS)
            ]
            responses = await asyncio.gather(*calls)
            conflicts = sum(r.built_service.admission.ledger.conflicts for r in runtimes)  # type: ignore[union-attr]
    finally:
        for server in servers:
            server.stop()  # the lifespan drains settlements and cost records
    statuses = [r.status_code for r in responses]
    admitted, rejected = statuses.count(200), statuses.count(429)
    assert admitted + rejected == REQUESTS, sorted(set(statuses))
    assert all(r.json()["error"]["code"] == "budget_exceeded" and r.headers["Retry-After"]
               for r in responses if r.status_code == 429)  # fmt: skip
    per_instance = [
        sum(1 for i, r in enumerate(responses) if i % 2 == k and r.status_code == 200) for k in (0, 1)
    ]
    # A fresh client for the reads: the harness's pooled connections sat idle past Azurite's keep-alive.
    reader = Runtime(h.settings)
    try:
        table = await reader.table(h.settings.COSTS_TABLE)
        records = [dict(e) async for e in table.list_entities()]
        store = await store_of(reader)
        counter, _ = await store.read_counter("caller", "anonymous")
    finally:
        await reader.close()
    spend = usd(sum(to_pico(r["cost_usd"]) + to_pico(r["classifier_cost_usd"]) for r in records))
    counter = counter.current(datetime.now(UTC))
    print(
        f"\nbudget ${budget:.9f} (50.5 reservations of ${reservation:.9f}); admitted {admitted} "
        f"({per_instance[0]} + {per_instance[1]} per instance), rejected {rejected}; spend ${spend:.9f}; "
        f"overshoot ${max(0.0, spend - budget):.9f}; 412 conflicts {conflicts}"
    )
    assert len(records) == admitted  # one record per paid call
    assert spend <= budget + reservation
    assert admitted == 50  # every admitted request cost its whole reservation: 50 fit, the 51st not
    assert min(per_instance) > 0  # both instances admitted (they shared one budget)
    assert counter.day_reserved == 0  # everything settled
    assert counter.day_spent == sum(to_pico(r["cost_usd"]) for r in records)
