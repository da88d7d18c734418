"""Conversation affinity, measured: one scripted 10-turn conversation, with and without affinity.

    .venv/bin/python bench/bench_affinity.py          # writes bench/results/affinity.json

The real app (``/api/v1/chat/completions``, ``model: "auto"``, the default ``learned-v2`` scorer, judge
off as under ``./scripts/dev``) against a real Azurite and the local Azure OpenAI simulator over HTTP,
which reports ``cached_tokens`` the way Azure does (a repeated prefix of 1,024 tokens or more, in
128-token steps, per deployment). Catalogue and prices: the shipped ``models.sample.json``. The
conversation: the user pastes two months of notes (about 1,900 tokens) and asks for a summary, then nine
follow-ups from "thanks" to an analysis and a Python function; every answer is the same scripted ~70-word
text whatever model gives it, so both runs send exactly the same messages and differ only in where
they go. The run is repeated with ``CONVERSATION_AFFINITY=true`` and ``false``, each with
a fresh simulator cache; cost, tokens and route reasons are read back from the stored cost records.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402

from router.api.app import create_app  # noqa: E402
from router.chat.affinity import conversation_turns  # noqa: E402
from router.chat.conversation import routing_text  # noqa: E402
from router.classifiers import get_scorer  # noqa: E402
from router.dev.azurite import Azurite  # noqa: E402
from router.dev.credential import SimulatorCredential  # noqa: E402
from router.dev.simulator import Reply, Simulator  # noqa: E402
from router.models.config import load_file  # noqa: E402
from router.models.store import upsert_table  # noqa: E402
from router.pipeline.affinity import conversation_model, keep  # noqa: E402
from router.pipeline.classify import Classifier  # noqa: E402
from router.pipeline.route import Constraints, choose  # noqa: E402
from router.runtime import Runtime  # noqa: E402
from router.settings import Settings  # noqa: E402
from tests.support import ThreadServer  # noqa: E402

CATALOGUE = load_file(ROOT / "models.sample.json")
NOTES = " ".join(
    f"On day {i} the team shipped the mobile release, fixed two crashes reported by customers and met "
    "with the vendor about invoices."
    for i in range(1, 60)
)
SYSTEM = "You are a helpful assistant."
TURNS = [
    f"Here are my notes from the last two months:\n\n{NOTES}\n\nSummarise them in five bullet points.",
    "thanks",
    "Make it shorter.",
    "ok",
    "Translate the summary into French.",
    "Now analyze which weeks were the most productive and explain why, comparing the crash fixes with "
    "the vendor meetings.",
    "great",
    "What is the capital of France?",
    "Write a Python function that parses these notes into (day, events) tuples and explain how you "
    "would test it.",
    "Thanks, bye!",
]
ANSWER = "Here you go. " + "The team shipped releases and fixed crashes. " * 8


async def conversation(sim: Simulator, sim_url: str, azurite: Azurite, affinity: bool) -> dict[str, Any]:
    stamp = f"{int(affinity)}{int(time.time() * 1000)}"
    settings = Settings(
        AZURE_OPENAI_ENDPOINT=sim_url, TABLES_CONNECTION_STRING=azurite.connection_string,
        ALLOW_LOOPBACK_ENDPOINTS=True, JUDGE_ENABLED=False, CONVERSATION_AFFINITY=affinity,
        MODELS_TABLE=f"abmodels{stamp}", COSTS_TABLE=f"abcosts{stamp}", HEALTH_TABLE=f"abhealth{stamp}",
        COST_WRITE_MODE="inline",
    )  # fmt: skip
    sim.reset()  # a fresh prompt cache for each run
    runtime = Runtime(settings, credential=SimulatorCredential())
    await upsert_table(await runtime.table(settings.MODELS_TABLE), CATALOGUE)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    turns = []
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://bench"
    ) as client:
        for i, text in enumerate(TURNS, 1):
            messages.append({"role": "user", "content": text})
            for m in CATALOGUE:  # the same answer from whichever model: both runs send the same messages
                sim.script(m.deployment, Reply(content=ANSWER))
            rid = f"turn-{i:02d}"
            r = await client.post("/api/v1/chat/completions", headers={"x-request-id": rid},
                                  json={"model": "auto", "messages": messages})  # fmt: skip
            r.raise_for_status()
            sim.scripts.clear()
            messages.append({"role": "assistant", "content": r.json()["choices"][0]["message"]["content"]})
            turns.append(rid)
    table = await runtime.table(settings.COSTS_TABLE)
    records = {e["request_id"]: dict(e) async for e in table.list_entities()}
    await runtime.close()
    per_turn = [
        {
            "turn": i,
            "model": records[rid]["model"],
            "route_reason": records[rid]["route_reason"],
            "complexity": records[rid]["complexity"],
            "prompt_tokens": records[rid]["prompt_tokens"],
            "cached_tokens": records[rid]["cached_tokens"],
            "completion_tokens": records[rid]["completion_tokens"],
            "cost_usd": records[rid]["cost_usd"],
        }
        for i, rid in enumerate(turns, 1)
    ]
    return {
        "affinity": affinity,
        "total_cost_usd": round(sum(t["cost_usd"] for t in per_turn), 9),
        "prompt_tokens": sum(t["prompt_tokens"] for t in per_turn),
        "cached_tokens": sum(t["cached_tokens"] for t in per_turn),
        "completion_tokens": sum(t["completion_tokens"] for t in per_turn),
        "baseline_cost_usd": round(sum(records[rid]["baseline_cost_usd"] for rid in turns), 9),
        "cache_savings_usd": round(sum(records[rid]["cache_savings_usd"] for rid in turns), 9),
        "models": [t["model"] for t in per_turn],
        "turns": per_turn,
    }


def decision_overhead(rounds: int) -> dict[str, float]:
    """CPU time of the routing decision for turn 10 (score its routing text, choose), alone and with
    affinity: on a cold instance (the nine earlier turns re-scored) and on the conversation's own instance
    (their scores remembered from the turns before). The real ``Classifier``, interleaved; medians in µs."""
    settings = Settings(TABLES_CONNECTION_STRING="UseDevelopmentStorage=true", JUDGE_ENABLED=False)
    models = tuple(m for m in CATALOGUE if m.enabled)
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    for text in TURNS:
        messages += [{"role": "user", "content": text}, {"role": "assistant", "content": ANSWER}]
    messages.pop()
    none = Constraints()

    scorer = get_scorer(settings.CLASSIFIER)

    def classifier() -> Classifier:
        return Classifier(settings, scorer, None, None)  # type: ignore[arg-type]

    warm = classifier()
    for i, message in enumerate(messages):  # the earlier turns, as this instance classified them
        if message["role"] == "user" and i < len(messages) - 1:
            prefix = messages[: i + 1]
            key = conversation_turns(prefix).key
            assert key is not None
            warm.remember(key, asyncio.run(warm.classify(routing_text(prefix), models)))

    def decide(c: Classifier, affinity: bool) -> Any:
        complexity = c.scorer.score(routing_text(messages))
        decision = choose(models, complexity, none)
        if not affinity:
            return decision
        earlier = [c.earlier_score(turn) for turn in conversation_turns(messages).earlier]
        return keep(decision, complexity, conversation_model(models, earlier, none))

    cases = {"alone": lambda: decide(warm, False), "affinity_cold": lambda: decide(classifier(), True),
             "affinity_warm": lambda: decide(warm, True)}  # fmt: skip
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter_ns()
            fn()
            times[name].append((time.perf_counter_ns() - start) / 1000)
    med = {k: sorted(v)[rounds // 2] for k, v in times.items()}
    return {"decision_us": round(med["alone"], 1), "affinity_cold_us": round(med["affinity_cold"], 1),
            "affinity_warm_us": round(med["affinity_warm"], 1),
            "warm_added_us": round(med["affinity_warm"] - med["alone"], 1)}  # fmt: skip


def _print(run: dict[str, Any]) -> None:
    label = "with affinity" if run["affinity"] else "without affinity"
    total, cached, prompt = run["total_cost_usd"], run["cached_tokens"], run["prompt_tokens"]
    print(f"\n{label}: total ${total:.6f}, cached {cached:,} of {prompt:,} prompt tokens, "
          f"baseline (all on gpt-4.1) ${run['baseline_cost_usd']:.6f}")  # fmt: skip
    head = ("turn", "model", "reason", "cx", "prompt", "cached", "out", "cost $")
    row = "{:>4}  {:<14}{:<12}{:>7}{:>8}{:>8}{:>6}{:>12}"
    print(row.format(*head))
    for t in run["turns"]:
        cells = (t["turn"], t["model"], t["route_reason"], f"{t['complexity']:.3f}", t["prompt_tokens"],
                 t["cached_tokens"], t["completion_tokens"], f"{t['cost_usd']:.8f}")  # fmt: skip
        print(row.format(*cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "affinity.json"))
    ap.add_argument("--rounds", type=int, default=300, help="rounds of the decision-time measurement")
    args = ap.parse_args()
    sim = Simulator()
    server = ThreadServer(sim.app).start()
    try:
        with Azurite() as azurite:
            runs = [asyncio.run(conversation(sim, server.url, azurite, on)) for on in (True, False)]
    finally:
        server.stop()
    for run in runs:
        _print(run)
    with_, without = runs
    delta = without["total_cost_usd"] - with_["total_cost_usd"]
    print(f"\nwithout affinity - with affinity: ${delta:.6f} "
          f"({delta / without['total_cost_usd']:+.1%} of the cost without it)")  # fmt: skip
    overhead = decision_overhead(args.rounds)
    o = overhead
    print(f"decision for turn 10 (medians of {args.rounds}): {o['decision_us']} µs alone; with affinity "
          f"{o['affinity_warm_us']} µs on the conversation's instance (+{o['warm_added_us']} µs), "
          f"{o['affinity_cold_us']} µs on a cold one (nine earlier turns re-scored)")  # fmt: skip
    result = {"catalogue": "models.sample.json", "scorer": "learned-v2", "judge": False, "runs": runs,
              "decision_overhead": overhead,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
