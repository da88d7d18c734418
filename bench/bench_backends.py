"""Capacity across backends (issue 18): one model, three deployments, 2,000 requests at concurrency 64.

    .venv/bin/python bench/bench_backends.py [--requests 2000] [--concurrency 64] [--window-s 6]

One catalogue model ``gpt`` has three backends: ``ptu`` (priority 1, provisioned) and ``payg-a`` /
``payg-b`` (priority 2, weight 1 each); a dearer model ``fallback`` is the next in the chain. The Azure
OpenAI simulator gives each deployment a per-window token budget (``router.dev.quota.Quota``: a 429 with
``retry-after-ms`` once the window's tokens are used, ``x-ratelimit-remaining-*`` on every answer). The
"minute" is scaled down to ``--window-s`` seconds (default 6 s, 10x faster) so a run takes about a
minute, with ``RATELIMIT_WINDOW_S`` set to the same. An upstream delay bounds the offered load so the
total demand fits the combined capacity: with a 1 s upstream delay the clients can send at most
``concurrency x window / 1 s`` requests per window, and the budgets are set from that peak (PTU 40%, each
pay-as-you-go deployment 45%: together 130%), so the PTU alone cannot take the load and the three
together can.

The same run is made three ways, each with a fresh router and simulator:

- ``headers``: the shipped behaviour, and the simulator also sends reset times (``x-ratelimit-reset-*``);
- ``headers-no-reset``: shipped, but the simulator sends no reset time (Azure documents none), so a hint
  holds for the assumed window;
- ``no-skipping``: the header-based skipping switched off by a bench-only patch (``has_capacity`` always
  true); the router then learns only from the PTU's 429s (Retry-After cooldowns).

Reported per mode: statuses to the caller, requests answered by another model, upstream 429s, the
tokens each backend admitted, and the PTU's use of its budget per full window. Also: the per-attempt
cost of the backend choice (one backend vs three), measured in-process. Writes bench/results/backends.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from router.api.app import create_app  # noqa: E402
from router.dev.azurite import Azurite  # noqa: E402
from router.dev.credential import SimulatorCredential  # noqa: E402
from router.dev.quota import Quota  # noqa: E402
from router.dev.simulator import Simulator  # noqa: E402
from router.health.state import HealthBoard  # noqa: E402
from router.models.config import ModelConfig  # noqa: E402
from router.models.store import upsert_models  # noqa: E402
from router.runtime import Runtime  # noqa: E402
from router.settings import Settings  # noqa: E402
from tests.support import ThreadServer  # noqa: E402

PROMPT = [{"role": "user", "content": "Summarise the plot of Hamlet in two sentences."}]
MAX_TOKENS = 100
UPSTREAM_DELAY_S = 1.0
PRICES = {"cost_per_1k_tokens": 0.001, "input_cost_per_1k": 0.001, "output_cost_per_1k": 0.002,
          "avg_latency_ms": 500, "max_complexity": 1.0}  # fmt: skip


def catalogue(ptu_tpm: int) -> list[ModelConfig]:
    gpt = ModelConfig.model_validate({"name": "gpt", **PRICES, "backends": [
        {"deployment": "ptu", "priority": 1, "provisioned": True, "tokens_per_minute": ptu_tpm},
        {"deployment": "payg-a", "priority": 2},
        {"deployment": "payg-b", "priority": 2},
    ]})  # fmt: skip
    fallback = ModelConfig.model_validate({"name": "fallback", "deployment": "dep-fallback", **PRICES,
                                           "cost_per_1k_tokens": 0.01})  # fmt: skip
    return [gpt, fallback]


def estimate() -> int:
    """The simulator's (and Azure's) admission estimate of one request: prompt tokens + max_tokens."""
    from router.dev.simulator import _message_text, estimate_tokens

    return sum(estimate_tokens(_message_text(m)) + 4 for m in PROMPT) + 3 + MAX_TOKENS


def peak_demand(args: argparse.Namespace) -> float:
    """The most tokens the clients can send per window: concurrency x (window / upstream delay)
    requests, each of ``estimate()`` tokens (the router's own time only lowers it)."""
    return args.concurrency * args.window_s / UPSTREAM_DELAY_S * estimate()


async def one_run(mode: str, args: argparse.Namespace, store: Azurite, demand: float) -> dict[str, Any]:
    """One run against budgets set from ``demand``, the peak tokens per window."""
    ptu_tokens = int(demand * 0.4)  # the PTU alone takes 40% of the peak
    payg_tokens = int(demand * 0.45)  # each; all three together 130% of it: the demand fits
    sim = Simulator(seed=7, delay_s=UPSTREAM_DELAY_S)
    sim.keep_seen = False
    reset = mode == "headers"
    sim.quotas = {
        "ptu": Quota(tokens=ptu_tokens, window_s=args.window_s, send_reset=reset),
        "payg-a": Quota(tokens=payg_tokens, window_s=args.window_s, send_reset=reset),
        "payg-b": Quota(tokens=payg_tokens, window_s=args.window_s, send_reset=reset),
    }
    upstream = ThreadServer(sim.app).start()
    suffix = mode.replace("-", "")
    settings = Settings(
        AZURE_OPENAI_ENDPOINT=upstream.url, ALLOW_LOOPBACK_ENDPOINTS=True,
        TABLES_CONNECTION_STRING=store.connection_string, CLASSIFIER="seed", JUDGE_ENABLED=False,
        MODELS_TABLE=f"models{suffix}", COSTS_TABLE=f"costs{suffix}", HEALTH_TABLE=f"health{suffix}",
        RATELIMIT_WINDOW_S=args.window_s, CIRCUIT_FAILURES=1000, COOLDOWN_MAX_S=max(300.0, args.window_s),
    )  # fmt: skip
    ptu_tpm = max(1, round(ptu_tokens * 60 / args.window_s))
    await upsert_models(settings, catalogue(ptu_tpm))
    patched = HealthBoard.has_capacity
    if mode == "no-skipping":  # BENCH-ONLY PATCH: the header-based skipping off, to count what it saves
        HealthBoard.has_capacity = lambda self, name, demand_tokens: True  # type: ignore[method-assign]
    app_server = ThreadServer(create_app(Runtime(settings, credential=SimulatorCredential()))).start()
    statuses: Counter[int] = Counter()
    models: Counter[str] = Counter()
    sem = asyncio.Semaphore(args.concurrency)
    started = time.perf_counter()
    try:
        async with httpx2.AsyncClient(
            timeout=60, limits=httpx2.Limits(max_connections=args.concurrency)
        ) as c:

            async def one(i: int) -> None:
                async with sem:
                    r = await c.post(f"{app_server.url}/api/v1/chat/completions", json={
                        "model": "auto", "messages": PROMPT, "max_tokens": MAX_TOKENS})  # fmt: skip
                statuses[r.status_code] += 1
                models[r.headers.get("x-router-model", "?")] += 1

            await asyncio.gather(*(one(i) for i in range(args.requests)))
            elapsed = time.perf_counter() - started
            for _ in range(600):
                if (await c.get(f"{app_server.url}/api/health")).json()["pending_cost_records"] == 0:
                    break
                await asyncio.sleep(0.1)
        from azure.data.tables.aio import TableServiceClient

        async with TableServiceClient.from_connection_string(store.connection_string) as svc:
            table = svc.get_table_client(settings.COSTS_TABLE)
            records = [
                dict(e) async for e in table.list_entities(select=["model", "deployment", "provisioned"])
            ]
    finally:
        HealthBoard.has_capacity = patched  # type: ignore[method-assign]
        app_server.stop()
        upstream.stop()
    ptu = sim.quotas["ptu"]
    full_windows = ptu.history[1:]  # the first window starts with the run (and the app's warm-up)
    use = [w / ptu_tokens for w in full_windows]
    return {
        "mode": mode,
        "elapsed_s": round(elapsed, 1),
        "statuses_to_caller": dict(statuses),
        "answered_by_model": dict(models),
        "answered_by_another_model": sum(n for m, n in models.items() if m != "gpt"),
        "caller_429s": statuses.get(429, 0),
        "upstream_429s": {d: q.refused for d, q in sim.quotas.items()},
        "upstream_429s_total": sum(q.refused for q in sim.quotas.values()),
        "answered_by_deployment": dict(sim.answered),
        "records_by_deployment": dict(Counter(str(r.get("deployment")) for r in records)),
        "cost_records": len(records),
        "ptu_budget_per_window": ptu_tokens,
        "payg_budget_per_window": payg_tokens,
        "demand_per_window": round(args.requests / elapsed * args.window_s * estimate()),
        "peak_demand_per_window": round(demand),
        "ptu_windows": len(full_windows),
        "ptu_use_of_budget_mean": round(statistics.mean(use), 3) if use else None,
        "ptu_use_of_budget_min": round(min(use), 3) if use else None,
    }


def choice_cost_us(connection_string: str, n: int = 20000) -> dict[str, float]:
    """Per-attempt cost of the backend walk (choose, view, acquire) for a one- and a three-backend model."""
    from router.health import SharedHealth
    from router.pipeline.execute import ExecutionPolicy, _Walk

    settings = Settings(
        AZURE_OPENAI_ENDPOINT="https://x.openai.azure.com", TABLES_CONNECTION_STRING=connection_string
    )
    one = ModelConfig.model_validate({"name": "one", "deployment": "d", **PRICES})
    three = catalogue(60_000)[0]
    out: dict[str, float] = {}
    for name, model in (("one_backend", one), ("three_backends", three)):
        policy = ExecutionPolicy(SharedHealth.from_settings(settings), 30.0, settings.AZURE_OPENAI_ENDPOINT)
        t0 = time.perf_counter()
        for _ in range(n):
            _Walk([model], policy, 125).next_target()
        out[name] = round((time.perf_counter() - t0) / n * 1e6, 2)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    store = Azurite().start()
    try:
        choice = choice_cost_us(store.connection_string)
        runs = [await one_run(mode, args, store, peak_demand(args)) for mode in args.modes.split(",")]
    finally:
        store.stop()
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "window_s": args.window_s,
        "upstream_delay_s": UPSTREAM_DELAY_S,
        "request_estimate_tokens": estimate(),
        "runs": runs,
        "choice_cost_us_per_attempt": choice,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--window-s", type=float, default=6.0, help="the scaled-down minute")
    parser.add_argument("--modes", default="headers,headers-no-reset,no-skipping")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    out = ROOT / "bench" / "results" / "backends.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    ok = all(r["answered_by_another_model"] == 0 and r["caller_429s"] == 0 for r in result["runs"])
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
