"""Benchmark the savings report at scale against a real Azurite.

Writes ``--days`` × ``--per-day`` cost records (default 90 × 33,334 ≈ 3 million) in batched transactions
(100 entities per transaction, one partition each), then times the report over the last ``--month`` days:

- ``direct``: every record of the month scanned (no roll-ups): what a report without roll-ups costs;
- ``cold``: the first report with roll-ups: closed days scanned once and stored, today scanned live;
- ``warm``: later reports: closed days from roll-ups, today (an open day) scanned live;
- ``closed_only``: a month that ends yesterday: roll-ups only.

Results go to ``bench/results/report.json``. A full run takes long on Azurite (see "See your savings"
in README.md: its inserts slow down as a partition grows and every query page scans the whole
table); ``--days 90 --per-day 1000`` is a quick run. ``--location DIR`` keeps Azurite's data so
``--skip-seed`` can re-time it.

    .venv/bin/python bench/bench_report.py --days 90 --per-day 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from azure.core.exceptions import ServiceRequestError  # noqa: E402
from azure.data.tables.aio import TableClient, TableServiceClient  # noqa: E402

from router.costs.records import CostRecord  # noqa: E402
from router.dev.azurite import Azurite  # noqa: E402
from router.reports import dashboard  # noqa: E402
from router.reports.aggregate import build_report  # noqa: E402
from router.reports.period import Period  # noqa: E402
from router.reports.store import load_cube  # noqa: E402

MODELS = {  # name: input $/1k, output $/1k, latency ms, traffic weight
    "gpt-4.1-nano": (0.0001, 0.0004, 450, 45),
    "gpt-4o-mini": (0.00015, 0.0006, 600, 22),
    "gpt-4.1-mini": (0.0004, 0.0016, 800, 21),
    "gpt-4.1": (0.002, 0.008, 1500, 12),
}


def day_entities(day: date, n: int, rnd: random.Random) -> list[dict[str, Any]]:
    start = datetime.combine(day, dtime(), UTC)
    names, weights = list(MODELS), [m[3] for m in MODELS.values()]
    out = []
    for i in range(n):
        model = rnd.choices(names, weights)[0]
        p_in, p_out, latency, _ = MODELS[model]
        failed = rnd.random() < 0.02
        pt, ct = (0, 0) if failed else (rnd.randint(300, 5000), rnd.randint(100, 1500))
        judged = rnd.random() < 0.3
        out.append(
            CostRecord(
                request_id=f"b{i}",
                timestamp=start + timedelta(milliseconds=int(86_400_000 * i / n)),
                model=model,
                deployment=model,
                complexity=rnd.random(),
                classifier="llm" if judged else "heuristic",
                prompt_tokens=pt,
                completion_tokens=ct,
                cost_usd=pt / 1000 * p_in + ct / 1000 * p_out,
                classifier_model="gpt-4.1-nano" if judged else None,
                classifier_prompt_tokens=250 if judged else 0,
                classifier_completion_tokens=2 if judged else 0,
                classifier_cost_usd=0.0000258 if judged else 0.0,
                baseline_model="gpt-4.1",
                baseline_cost_usd=pt / 1000 * 0.002 + ct / 1000 * 0.008,
                latency_ms=latency * rnd.lognormvariate(0, 0.35),
                status="error" if failed else "ok",
                error_code="upstream_http_500" if failed else None,
                fallbacks=1 if failed or rnd.random() < 0.03 else 0,
            ).to_entity()
        )
    return out


async def seed(table: TableClient, days: list[date], per_day: int, concurrency: int) -> dict[str, Any]:
    rnd = random.Random(7)
    sem = asyncio.Semaphore(concurrency)
    written = 0
    t0 = time.perf_counter()

    async def put(batch: list[dict[str, Any]]) -> None:
        nonlocal written
        async with sem:
            for attempt in range(5):
                try:
                    await table.submit_transaction([("upsert", e) for e in batch])
                    break
                except ServiceRequestError:
                    await asyncio.sleep(0.5 * (attempt + 1))
            else:
                raise RuntimeError("batch failed 5 times")
            written += len(batch)

    for i, day in enumerate(days):
        entities = day_entities(day, per_day, rnd)
        await asyncio.gather(*(put(entities[j : j + 100]) for j in range(0, len(entities), 100)))
        elapsed = time.perf_counter() - t0
        print(
            f"  seeded {day} ({i + 1}/{len(days)}): {written:,} rows, {written / elapsed:,.0f}/s", flush=True
        )
    elapsed = time.perf_counter() - t0
    return {"rows": written, "seconds": round(elapsed, 1), "rows_per_s": round(written / elapsed)}


async def timed(
    label: str, costs: TableClient, rollups: TableClient | None, period: Period, **kw: Any
) -> Any:
    t0 = time.perf_counter()
    cube, sources = await load_cube(costs, rollups, period, delay=timedelta(0), **kw)
    t1 = time.perf_counter()
    report = build_report(cube, period.start, period.end, "model")
    html = dashboard.render(cube, period, sources.to_dict())
    t2 = time.perf_counter()
    result = {
        "seconds": round(t1 - t0, 3),
        "render_seconds": round(t2 - t1, 3),
        "source": sources.to_dict(),
        "calls": report["totals"]["calls"],
        "total_spend_usd": report["totals"]["total_spend_usd"],
        "savings_pct": report["totals"]["savings_pct"],
        "dashboard_bytes": len(html),
    }
    print(f"{label:>12}: {result['seconds']:8.3f} s  {sources.to_dict()}", flush=True)
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    all_days = [today - timedelta(days=i) for i in range(args.days - 1, -1, -1)]
    month = Period(today - timedelta(days=args.month - 1), today)
    closed = Period(month.start, today - timedelta(days=1))
    out: dict[str, Any] = {
        "days": args.days,
        "per_day": args.per_day,
        "month_days": args.month,
        "azurite": "in-memory" if not args.location else args.location,
    }
    with Azurite(workdir=args.location) as azurite:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        try:
            costs = service.get_table_client("benchcosts")
            rollups = service.get_table_client("benchrollups")
            if not args.skip_seed:
                for name in ("benchcosts", "benchrollups"):
                    await service.delete_table(name)
                    await service.create_table(name)
                print(f"seeding {args.days} days x {args.per_day:,} records", flush=True)
                out["seed"] = await seed(costs, all_days, args.per_day, args.concurrency)
            if not args.skip_direct:
                out["direct"] = await timed(
                    "direct", costs, None, month, use_rollups=False, store_rollups=False
                )
            out["cold"] = await timed("cold", costs, rollups, month)
            out["warm"] = await timed("warm", costs, rollups, month)
            out["closed_only"] = await timed("closed_only", costs, rollups, closed)
        finally:
            await service.close()
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--per-day", type=int, default=33_334)
    parser.add_argument("--month", type=int, default=30, help="days in the timed report (ending today)")
    parser.add_argument("--concurrency", type=int, default=2, help="transactions in flight while seeding")
    parser.add_argument("--location", help="Azurite data folder (kept, so --skip-seed can reuse it)")
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--skip-direct", action="store_true", help="skip the no-roll-up scan of the month")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "report.json"))
    a = parser.parse_args()
    result = asyncio.run(main(a))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {a.out}")
