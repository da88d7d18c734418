"""A bounded load run in the suite (the full 2,000-request run is bench/bench_load.py): every request is
answered, and every executed call has exactly one cost record, with 5% injected upstream failures."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.conftest import Harness


async def test_burst_with_injected_failures_answers_everything_and_records_every_call(harness_factory):
    h: Harness = await harness_factory(CIRCUIT_FAILURES=1000)  # keep every model in play
    h.simulator.fault_rate = 0.05
    total, concurrency = 300, 32
    sem = asyncio.Semaphore(concurrency)
    queries = ["hi", "What is the capital of France?", "How do tides work and why do they matter?"]

    async def one(i: int):
        async with sem:
            return await h.client.post(
                "/api/route", json={"query": queries[i % 3]}, headers={"x-request-id": f"load-{i}"}
            )

    responses = await asyncio.gather(*(one(i) for i in range(total)))
    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {200, 502}, statuses
    assert statuses[200] >= total - 3  # a failure only surfaces if every model in the chain failed
    for r in responses:
        if r.status_code != 200:
            assert r.json()["error"]["request_id"].startswith("load-")
    assert h.simulator.faults_injected > 0
    records = await h.costs()
    assert len(records) == total
    assert sorted(r["request_id"] for r in records) == sorted(f"load-{i}" for i in range(total))
    # Each injected fault on an answering call is one recorded fallback (judge faults are not fallbacks).
    fallbacks = sum(r["fallbacks"] for r in records)
    assert 0 < fallbacks <= h.simulator.faults_injected
