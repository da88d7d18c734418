"""``python -m router costs report|rollup`` as a user runs it (a subprocess reading Azurite directly), checked
against the hand-computed data set of test_reports_api."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from router.runtime import Runtime
from tests.conftest import unique
from tests.test_reports_api import BY_DAY, BY_MODEL, CENT, LATENCY, SEED, TOTALS, at, rec, seed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def seeded(settings_factory: Any) -> Any:
    settings = settings_factory(COSTS_ROLLUP_TABLE=unique("rollups"))
    runtime = Runtime(settings)
    await seed(runtime, settings.COSTS_TABLE, SEED)
    yield settings, runtime
    await runtime.close()


def cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLES_", "COSTS_", "REPORT_"))}
    env.update(
        TABLES_CONNECTION_STRING=settings.TABLES_CONNECTION_STRING,
        COSTS_TABLE=settings.COSTS_TABLE,
        COSTS_ROLLUP_TABLE=settings.COSTS_ROLLUP_TABLE,
    )
    return subprocess.run(
        [sys.executable, "-m", "router", "costs", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


EXPECTED_HEAD = """\
Cost and savings 2025-03-01 .. 2025-03-03 (3 days, UTC)
source: 0 day(s) from roll-ups, 3 scanned (10 records)

calls           10 (ok 8, errors 2; 7 fallbacks on 4 calls)
tokens          21,600 prompt (0 cached) / 7,100 completion (0 reasoning)
judge calls     4 (900 prompt / 9 completion tokens)
spend           $46.000000  answering models
judge overhead  $0.600000
total spend     $46.600000
baseline        $100.000000  same tokens on the most capable model
savings         $53.400000  (53.40% of baseline)
prompt cache    $0.000000  saved: cached tokens at the cached input price
"""


async def test_cli_report_table_has_every_number(seeded: Any):
    settings, _ = seeded
    p = cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert out.startswith(EXPECTED_HEAD), out
    lat = re.search(r"^latency +p50 ([\d,.]+) ms +p95 ([\d,.]+) ms", out, re.M)
    assert lat, out
    assert float(lat[1].replace(",", "")) == pytest.approx(LATENCY[0], rel=0.0101)
    assert float(lat[2].replace(",", "")) == pytest.approx(LATENCY[1], rel=0.0101)

    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert lines[header].split() == [
        "model", "calls", "share", "errors", "fallbacks", "cached", "tok", "spend", "judge", "total",
        "baseline", "savings", "sav%", "p50", "ms", "p95", "ms",
    ]  # fmt: skip
    rows = [line.split() for line in lines[header + 1 :]]
    assert [r[0] for r in rows] == ["small", "medium", "large"]
    for r in rows:
        calls, errors, fb, spend, judge, total, base, sav, pct, share, p50, p95 = BY_MODEL[r[0]]
        assert r[1:12] == [
            str(calls),
            f"{share * 100:.1f}%",
            str(errors),
            str(fb),
            "0",  # no cached tokens in the data set
            f"${spend:,.6f}",
            f"${judge:,.6f}",
            f"${total:,.6f}",
            f"${base:,.6f}",
            f"-${-sav:,.6f}" if sav < 0 else f"${sav:,.6f}",
            f"{pct:.2f}",
        ], r
        assert float(r[12].replace(",", "")) == pytest.approx(p50, rel=0.0101)
        assert float(r[13].replace(",", "")) == pytest.approx(p95, rel=0.0101)


async def test_cli_json_by_day_matches_and_uses_rollups_after_first_run(seeded: Any):
    settings, _ = seeded
    first = cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--by", "day", "--json")
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    for key, expected in TOTALS.items():
        assert body["totals"][key] == pytest.approx(expected, abs=CENT), key
    for g in body["groups"]:
        calls, errors, fb, spend, judge, total, base, sav, pct = BY_DAY[g["day"]]
        got = (
            g["calls"],
            g["errors"],
            g["fallbacks"],
            g["spend_usd"],
            g["overhead_usd"],
            g["total_spend_usd"],
        )
        assert got == pytest.approx((calls, errors, fb, spend, judge, total), abs=CENT)
        assert (g["baseline_usd"], g["savings_usd"]) == pytest.approx((base, sav), abs=CENT)
        assert g["savings_pct"] == pytest.approx(pct, abs=1e-4)
    assert body["source"]["stored_days"] == 3  # the CLI stores roll-ups for closed days too

    second = json.loads(
        cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--json").stdout
    )
    assert second["source"]["rollup_days"] == 3
    assert second["totals"] == body["totals"]


async def test_cli_rollup_rebuild_picks_up_a_late_record(seeded: Any):
    settings, runtime = seeded
    assert cli(settings, "rollup", "--from", "2025-03-01", "--to", "2025-03-03").returncode == 0
    await seed(runtime, settings.COSTS_TABLE, [rec(at(1, 18), "late", "small", "heuristic", 3.00, 4.00, 100)])
    stale = json.loads(cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--json").stdout)
    assert stale["totals"]["calls"] == 10
    direct = json.loads(
        cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--json", "--no-rollups").stdout
    )
    assert direct["totals"]["calls"] == 11 and direct["source"]["rollup_days"] == 0
    rebuilt = cli(settings, "rollup", "--from", "2025-03-01", "--to", "2025-03-03", "--rebuild")
    assert rebuilt.returncode == 0 and "stored 3 day roll-up(s)" in rebuilt.stdout, rebuilt.stdout
    fresh = json.loads(cli(settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--json").stdout)
    assert fresh["totals"]["calls"] == 11
    assert fresh["totals"]["total_spend_usd"] == pytest.approx(49.60, abs=CENT)


async def test_cli_rejects_a_bad_range_naming_the_parameter(seeded: Any):
    settings, _ = seeded
    p = cli(settings, "report", "--from", "2025-03-04", "--to", "2025-03-01")
    assert p.returncode == 2 and p.stderr.strip() == "error: from: must be on or before to"
    p = cli(settings, "report", "--from", "2025-03-01' or true or '")
    assert p.returncode == 2 and p.stderr.strip() == "error: from: must be a date as YYYY-MM-DD"
