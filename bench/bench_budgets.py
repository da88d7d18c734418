"""What a budget costs a request: sequential chat calls from a caller without limits (the baseline), one
with a tokens-per-minute limit (local only) and one with a daily budget (reserve before the call, settle
after it), interleaved in rounds in one process against the same Azurite and simulator.

    .venv/bin/python -m bench.bench_budgets            # writes bench/results/budgets.json

Reported as p50 ratios against the baseline of the same run (the machine's noise cancels out). The
order rotates each round: background work (a settlement, a cost-record batch) lands on whichever request
comes next, so each kind takes its turn after it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx2

from bench.common import latency_stats, machine, utc_now, write_result
from router.api.app import create_app
from router.callers.budgets import Limits
from router.callers.identity import Caller
from router.dev.azurite import Azurite
from router.dev.credential import SimulatorCredential
from router.dev.simulator import Simulator
from router.models.store import upsert_table
from router.runtime import Runtime
from router.settings import Settings
from tests.conftest import MODELS
from tests.support import ThreadServer

ROUNDS = 300
CALLERS = {"baseline": Caller("free", "free"), "tpm": Caller("limited", "limited"),
           "budget": Caller("payer", "payer")}  # fmt: skip
BODY = {"model": "small", "max_tokens": 64, "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def with_caller(app: Any) -> Any:
    """Stands in for the auth step: the caller named by ``x-bench-caller``."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"x-bench-caller":
                caller = CALLERS[value.decode()]
                scope["state"] = {**(scope.get("state") or {}), "caller": caller}
        await app(scope, receive, send)

    return wrapped


async def run(azurite: Azurite, sim_url: str) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(AZURE_OPENAI_ENDPOINT=sim_url, ALLOW_LOOPBACK_ENDPOINTS=True,
                        TABLES_CONNECTION_STRING=azurite.connection_string, MODELS_TABLE=f"m{suffix}",
                        COSTS_TABLE=f"c{suffix}", HEALTH_TABLE=f"h{suffix}", BUDGETS_TABLE=f"b{suffix}",
                        CLASSIFIER="seed", JUDGE_ENABLED=False)  # fmt: skip
    runtime = Runtime(settings, credential=SimulatorCredential())
    await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
    service = await runtime.service()
    store = service.admission.ledger._store  # type: ignore[union-attr]
    await store.write_limits("caller", "limited", Limits(tpm=10**9))
    await store.write_limits("caller", "payer", Limits(daily_usd=10**6))
    samples: dict[str, list[float]] = {k: [] for k in CALLERS}
    transport = httpx2.ASGITransport(app=with_caller(create_app(runtime)))
    async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as http:
        for i in range(ROUNDS + 20):
            kinds = list(CALLERS)
            for kind in kinds[i % 3 :] + kinds[: i % 3]:  # rotated: no one always follows the budget's settle
                started = time.perf_counter()
                r = await http.post("/api/v1/chat/completions", json=BODY, headers={"x-bench-caller": kind})
                elapsed = time.perf_counter() - started
                assert r.status_code == 200, r.text
                if i >= 20:  # warm-up: first-request limit reads, connection pools
                    samples[kind].append(elapsed)
    await runtime.close()
    stats = {k: latency_stats(v) for k, v in samples.items()}
    base = stats["baseline"]["p50_ms"]
    return {"stats": stats, "p50_ratio": {k: round(s["p50_ms"] / base, 3) for k, s in stats.items()}}


def main() -> int:
    sim = Simulator()
    server = ThreadServer(sim.app).start()
    try:
        with Azurite() as azurite:
            result = asyncio.run(run(azurite, server.url))
    finally:
        server.stop()
    path = write_result("budgets", {"at": utc_now(), "rounds": ROUNDS, "machine": machine(), **result})
    print(result["p50_ratio"], {k: v["p50_ms"] for k, v in result["stats"].items()}, "->", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
