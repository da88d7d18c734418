"""Bounded load run with injected upstream failures (the reliability issue's proof).

    .venv/bin/python bench/bench_load.py [--requests 2000] [--concurrency 64] [--fault-rate 0.05]

Starts Azurite and the Azure OpenAI simulator (which fails ``--fault-rate`` of its calls with a 500),
serves the router on a loopback port, sends the requests, and checks that every request was answered
(200, or a deliberate error in the JSON error shape), that the costs table holds exactly one record per
request, and that memory stays flat. Writes bench/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from router.api.app import create_app  # noqa: E402
from router.dev.azurite import Azurite  # noqa: E402
from router.dev.credential import SimulatorCredential  # noqa: E402
from router.dev.simulator import Simulator  # noqa: E402
from router.models.config import load_file  # noqa: E402
from router.models.store import upsert_models  # noqa: E402
from router.runtime import Runtime  # noqa: E402
from router.settings import Settings  # noqa: E402
from tests.support import ThreadServer  # noqa: E402

QUERIES = [
    "hi",
    "What is the capital of France?",
    "Explain how a hash map works and then compare it with a balanced tree.",
    "Why does my recursive function overflow the stack and how can I fix it? ```def f(n): return f(n-1)```",
]


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(args: argparse.Namespace) -> dict:
    sim = Simulator(seed=42)
    sim.keep_seen = False
    sim.fault_rate = args.fault_rate
    upstream = ThreadServer(sim.app).start()
    store = Azurite().start()
    settings = Settings(
        AZURE_OPENAI_ENDPOINT=upstream.url,
        ALLOW_LOOPBACK_ENDPOINTS=True,
        TABLES_CONNECTION_STRING=store.connection_string,
        CLASSIFIER_TIMEOUT_S=3,
        CIRCUIT_FAILURES=1000,  # measure fallbacks, not circuit-breaking, under random faults
    )
    await upsert_models(settings, load_file(ROOT / "models.sample.json"))
    app_server = ThreadServer(create_app(Runtime(settings, credential=SimulatorCredential()))).start()
    url = app_server.url
    statuses: Counter[int] = Counter()
    bad_shape = 0
    latencies: list[float] = []
    memory: list[tuple[int, float]] = []
    sem = asyncio.Semaphore(args.concurrency)
    done = 0
    started = time.perf_counter()
    try:
        async with httpx2.AsyncClient(
            timeout=60, limits=httpx2.Limits(max_connections=args.concurrency)
        ) as client:

            async def one(i: int) -> None:
                nonlocal done, bad_shape
                async with sem:
                    t0 = time.perf_counter()
                    r = await client.post(
                        f"{url}/api/route",
                        json={"query": QUERIES[i % len(QUERIES)]},
                        headers={"x-request-id": f"load-{i}"},
                    )
                    latencies.append((time.perf_counter() - t0) * 1000)
                statuses[r.status_code] += 1
                if r.status_code != 200:
                    err = r.json().get("error", {})
                    if not (err.get("code") and err.get("request_id") == f"load-{i}"):
                        bad_shape += 1
                done += 1
                if done % 500 == 0:
                    memory.append((done, round(rss_mib(), 1)))

            await asyncio.gather(*(one(i) for i in range(args.requests)))
            elapsed = time.perf_counter() - started
            for _ in range(600):  # every background cost-record write finished
                if (await client.get(f"{url}/api/health")).json()["pending_cost_records"] == 0:
                    break
                await asyncio.sleep(0.1)
        from azure.data.tables.aio import TableServiceClient

        async with TableServiceClient.from_connection_string(store.connection_string) as svc:
            table = svc.get_table_client(settings.COSTS_TABLE)
            ids = [e["request_id"] async for e in table.list_entities(select=["request_id"])]
    finally:
        app_server.stop()
        upstream.stop()
        store.stop()
    latencies.sort()
    counts = Counter(ids)
    result = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "fault_rate": args.fault_rate,
        "faults_injected": sim.faults_injected,
        "statuses": dict(statuses),
        "error_bodies_not_in_shape": bad_shape,
        "cost_records": len(ids),
        "duplicate_records": sum(1 for c in counts.values() if c > 1),
        "missing_records": args.requests - len(counts),
        "elapsed_s": round(elapsed, 2),
        "throughput_rps": round(args.requests / elapsed, 1),
        "latency_ms_p50": round(latencies[len(latencies) // 2], 2),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "rss_mib_by_requests": memory,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    out = ROOT / "bench" / "results" / "load.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = (
        result["missing_records"] == 0
        and result["duplicate_records"] == 0
        and result["error_bodies_not_in_shape"] == 0
        and set(result["statuses"]) <= {200, 502, 504}
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
