"""Overhead of one quality sample (shadow call + two judge calls) with the sample catalogue.

    .venv/bin/python bench/bench_quality.py            # writes bench/results/quality.json

The real app (``/api/route``, ``QUALITY_SAMPLE_RATE=1``) against a real Azurite and the local Azure OpenAI
simulator over HTTP, with ``models.sample.json`` (baseline and judge: gpt-4.1). Token counts are what the
simulator reports (about 4 characters a token, as Azure's tokenizer gives for English), for two answer
lengths: the simulator's own short answers, and scripted answers of about 250 and 400 words for the
routed and the baseline model (a typical chat answer). Queries: the benchmark's built-in list
(``bench_decision.BUILTIN``). USD is priced from the catalogue exactly as the quality table stores it.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import uvicorn  # noqa: E402

from bench.bench_decision import BUILTIN  # noqa: E402
from router.api.app import create_app  # noqa: E402
from router.dev.azurite import Azurite, free_port  # noqa: E402
from router.dev.credential import SimulatorCredential  # noqa: E402
from router.dev.simulator import Reply, Simulator  # noqa: E402
from router.models.config import load_file  # noqa: E402
from router.models.store import upsert_table  # noqa: E402
from router.runtime import Runtime  # noqa: E402
from router.settings import Settings  # noqa: E402

FIELDS = (
    "shadow_prompt_tokens",
    "shadow_completion_tokens",
    "judge_prompt_tokens",
    "judge_completion_tokens",
    "shadow_usd",
    "judge_usd",
    "total_usd",
    "routed_cost_usd",
)
WORDS = ("the", "router", "compares", "answers", "so", "a", "team", "sees", "the", "quality", "it", "keeps")


def words(n: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n))


async def run(sim: Simulator, sim_url: str, azurite: Azurite, long_answers: bool) -> dict[str, Any]:
    settings = Settings(
        AZURE_OPENAI_ENDPOINT=sim_url,
        TABLES_CONNECTION_STRING=azurite.connection_string,
        QUALITY_SAMPLE_RATE=1.0,
        QUALITY_MAX_USD_PER_DAY=None,
        JUDGE_ENABLED=False,
        ALLOW_LOOPBACK_ENDPOINTS=True,
        MODELS_TABLE=f"qbmodels{int(long_answers)}{int(time.time())}",
        COSTS_TABLE=f"qbcosts{int(time.time())}",
        QUALITY_TABLE=f"qbquality{int(long_answers)}{int(time.time())}",
    )
    runtime = Runtime(settings, credential=SimulatorCredential())
    app = create_app(runtime)
    catalogue = load_file(ROOT / "models.sample.json")
    await upsert_table(await runtime.table(settings.MODELS_TABLE), catalogue)
    rows: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://bench") as client:
        for query in BUILTIN:
            if long_answers:  # every non-baseline deployment answers long; gpt-4.1 shadow long, then A/B
                for m in catalogue[:-1]:
                    sim.script(m.deployment, Reply(content=words(250)))
                sim.script("gpt-4.1", Reply(content=words(400)), Reply(content="A"), Reply(content="B"))
            r = await client.post("/api/route", json={"query": query})
            r.raise_for_status()
            await runtime.sampler.drain()
            sim.reset()
    table = await runtime.table(settings.QUALITY_TABLE)
    rows = [dict(e) async for e in table.list_entities()]
    await runtime.close()
    per = {f: statistics.mean(float(e[f]) for e in rows) for f in FIELDS} if rows else {}
    return {
        "answers": "scripted ~250/400 words" if long_answers else "simulator default (short)",
        "calls": len(BUILTIN),
        "samples": len(rows),
        "verdicts": sorted({e["verdict"] for e in rows}),
        "mean_per_sample": {k: round(v, 8 if k.endswith("usd") else 1) for k, v in per.items()},
        "mean_tokens_per_sample": round(sum(per.get(f, 0.0) for f in FIELDS[:4]), 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    sim = Simulator()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(sim.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with Azurite() as azurite:
            results = [
                asyncio.run(run(sim, f"http://127.0.0.1:{port}", azurite, long)) for long in (False, True)
            ]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    out = ROOT / "bench" / "results" / "quality.json"
    out.write_text(json.dumps({"catalogue": "models.sample.json", "runs": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
