"""What Azure's wire format costs on top of ``/api/v1``: the same chat call through the three paths of one
router process, interleaved in rounds, reported as p50 ratios against ``/api/v1`` in the same run.

    .venv/bin/python -m bench.bench_azure_wire          # writes bench/results/azure_wire.json

Same stack as bench_latency: the simulator (zero delay), Azurite and the router, each its own process on
127.0.0.1; one aiohttp client with keep-alive. The Azure paths add an api-version check, a deployment
name lookup in the cached catalogue and an ``apim-request-id`` header; nothing else differs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    API_VERSION,
    Proc,
    latency_stats,
    machine,
    seed_models,
    start_router,
    start_simulator,
    utc_now,
    write_result,
)

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def targets(url: str) -> dict[str, tuple[str, bytes]]:
    routed = json.dumps({"model": "auto", "messages": MESSAGES}).encode()
    return {
        "/api/v1/chat/completions": (f"{url}/api/v1/chat/completions", routed),
        "/openai/deployments/auto/chat/completions": (
            f"{url}/openai/deployments/auto/chat/completions?api-version={API_VERSION}",
            json.dumps({"messages": MESSAGES}).encode(),
        ),
        "/openai/v1/chat/completions": (f"{url}/openai/v1/chat/completions", routed),
    }


async def measure(url: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    paths = targets(url)
    samples: dict[str, list[float]] = {name: [] for name in paths}
    headers = {"content-type": "application/json", "api-key": "bench-caller-key"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one(name: str) -> float:
            target, body = paths[name]
            start = time.perf_counter()
            async with session.post(target, data=body) as resp:
                data = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{name}: HTTP {resp.status}: {data[:300]!r}")
            return time.perf_counter() - start

        for name in paths:  # warm-up: connections, catalogue cache, first-call imports
            for _ in range(20):
                await one(name)
        names = list(paths)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                samples[name] += [await one(name) for _ in range(per_round)]
    return samples


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from router.dev.azurite import Azurite

    procs: list[Proc] = []
    azurite = Azurite().start()
    try:
        sim, sim_url = start_simulator(tmp)
        procs.append(sim)
        await seed_models(sim_url, azurite.connection_string)
        router, router_url = start_router(tmp, sim_url, azurite.connection_string)
        procs.append(router)
        samples = await measure(router_url, args.rounds, args.per_round)
    finally:
        for proc in procs:
            proc.stop()
        azurite.stop()
    stats = {name: latency_stats(s) for name, s in samples.items()}
    base = stats["/api/v1/chat/completions"]["p50_ms"]
    ratios = {name: round(s["p50_ms"] / base, 4) for name, s in stats.items()}
    return {"when": utc_now(), "machine": machine(), "latency": stats, "p50_ratio_vs_api_v1": ratios}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    path = write_result("azure_wire", result)
    print(json.dumps(result["latency"], indent=1))
    print("p50 ratio vs /api/v1:", result["p50_ratio_vs_api_v1"], "->", path)


if __name__ == "__main__":
    main()
