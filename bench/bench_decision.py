"""Decision cost: classify a query and pick the model (``router.pipeline.route.choose``), per classifier.

    .venv/bin/python bench/bench_decision.py            # writes bench/results/decision.json

The query set is fixed: a built-in list of typical chat, code, maths and multiple-choice requests,
plus (when ``../shared/routing-data`` sits beside the repo) the first 100 questions of each file
there. Each round times every query once per classifier, interleaved so a noisy neighbour hits every
classifier alike; per-decision times are wall clock (perf_counter_ns), reported as p50/p99 in µs.
The judge (an LLM call for the ambiguous band) is not part of the decision cost measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from router.classifiers import get_scorer  # noqa: E402
from router.models.config import load_file  # noqa: E402
from router.pipeline.route import Constraints, choose  # noqa: E402

CLASSIFIERS = ("seed", "improved", "learned", "learned-v2")
SHARED = ROOT.parent / "shared" / "routing-data"
BUILTIN = [
    "hi",
    "Thanks, that worked!",
    "What is the capital of Australia?",
    "Translate 'good morning' into French.",
    "Summarise this paragraph in one sentence: The meeting covered budget, hiring and the Q3 roadmap.",
    "Write a haiku about autumn rain.",
    "Why does ice float on water? Explain it to a ten-year-old.",
    "Compare TCP and UDP, and then explain when you would choose each for a multiplayer game.",
    "Write a python function to check whether a string is a palindrome, ignoring punctuation.",
    "def merge(a, b):\n    return sorted(a + b)\n\n"
    "What is the time complexity of this, and how would you improve it?",
    "Solve for x: 3x^2 - 12x + 9 = 0, showing each step.",
    "A train leaves at 3:15 pm travelling 80 km/h; another leaves at 4:00 pm at 100 km/h. "
    "When does the second catch up, if both start from the same station?",
    "Which of these is NOT a mammal?\nA) whale\nB) bat\nC) shark\nD) dog",
    "Prove that the square root of 2 is irrational.",
    "Refactor this SQL so it does not scan the whole table: SELECT * FROM orders WHERE YEAR(created) = 2024;",
    "Draft a polite email declining a meeting invitation next Tuesday because of a conflict.",
    "Explain the difference between a process and a thread, "
    "with an example where threads are the wrong choice.",
    "List three uses of a hash map.",
    "Analyze the trade-offs of event sourcing versus CRUD for an order-management system with audit needs, "
    "considering consistency, storage growth, schema evolution and the team's experience.",
    "Is 2027 a prime number?",
]


def queries() -> list[str]:
    out = list(BUILTIN)
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for _, line in zip(range(100), fh, strict=False):
                    out.append(json.loads(line)["question"])
    return out


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "decision.json"))
    args = ap.parse_args()

    models = load_file(ROOT / "models.sample.json")
    texts = queries()
    scorers = {name: get_scorer(name) for name in CLASSIFIERS}
    constraints = Constraints()
    decide: dict[str, list[float]] = {n: [] for n in CLASSIFIERS}
    classify: dict[str, list[float]] = {n: [] for n in CLASSIFIERS}
    clock = time.perf_counter_ns
    for scorer in scorers.values():  # warm-up: imports, caches, branch predictors
        for t in texts:
            choose(models, scorer.score(t), constraints)
    load_before = os.getloadavg()
    for _ in range(args.rounds):
        for t in texts:
            for name, scorer in scorers.items():
                t0 = clock()
                score = scorer.score(t)
                t1 = clock()
                choose(models, score, constraints)
                t2 = clock()
                classify[name].append((t1 - t0) / 1000)
                decide[name].append((t2 - t0) / 1000)
    load_after = os.getloadavg()

    results = {
        name: {
            "decision_p50_us": round(statistics.median(decide[name]), 2),
            "decision_p99_us": round(pct(decide[name], 0.99), 2),
            "classify_p50_us": round(statistics.median(classify[name]), 2),
            "classify_p99_us": round(pct(classify[name], 0.99), 2),
            "decisions": len(decide[name]),
        }
        for name in CLASSIFIERS
    }
    # The machine's own speed swings by more than most changes (seed alone 8-14 us within an hour):
    # the ratio to seed, measured in the same interleaved rounds, is the scorer's cost.
    base = results["seed"]["decision_p50_us"]
    for r in results.values():
        r["decision_p50_x_seed"] = round(r["decision_p50_us"] / base, 2)
    doc = {
        "what": "classify + router.pipeline.route.choose over models.sample.json, per query, wall clock",
        "queries": len(texts),
        "query_chars_median": statistics.median(len(t) for t in texts),
        "shared_data_included": SHARED.is_dir(),
        "rounds": args.rounds,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "loadavg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "classifiers": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"{len(texts)} queries x {args.rounds} rounds; load avg {doc['loadavg_1m_before_after']}")
    print(f"{'classifier':<10} {'decision p50':>13} {'p99':>9} {'classify p50':>13} {'p50 x seed':>11}")
    for name, r in results.items():
        print(
            f"{name:<10} {r['decision_p50_us']:>10.1f} µs {r['decision_p99_us']:>6.1f} µs "
            f"{r['classify_p50_us']:>10.1f} µs {r['decision_p50_x_seed']:>10.2f}x"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
