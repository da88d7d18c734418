"""The roll-up job the timer function runs (router.reports.rollup), against Azurite; and the settings
that bound it and the request budget. Under the real worker: tests/test_functions_worker.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from router.costs.records import CostRecord
from router.errors import SettingsError
from router.reports.period import Period
from router.reports.rollup import last_closed_day, roll_up_closed_days, run_rollup_job
from router.reports.store import MARKER, load_cube
from router.runtime import Runtime
from router.settings import HTTP_RESPONSE_LIMIT_S, load_settings

HOUR = timedelta(hours=1)
D = date(2025, 3, 10)


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def record(rid: str, ts: datetime, model: str = "small", cost: float = 0.01) -> CostRecord:
    return CostRecord(
        request_id=rid, timestamp=ts, model=model, deployment=f"dep-{model}", complexity=0.2,
        classifier="seed", cost_usd=cost, baseline_model="large", baseline_cost_usd=0.05, latency_ms=100,
    )  # fmt: skip


@pytest.fixture
async def runtime(settings_factory: Any) -> AsyncIterator[Runtime]:
    rt = Runtime(settings_factory())
    yield rt
    await rt.close()


async def seed(rt: Runtime, records: list[CostRecord]) -> None:
    table = await rt.table(rt.settings.COSTS_TABLE)
    for r in records:
        await table.upsert_entity(r.to_entity())


async def markers(rt: Runtime) -> dict[str, int]:
    table = await rt.table(rt.settings.COSTS_ROLLUP_TABLE)
    return {
        e["PartitionKey"]: e["calls"]
        async for e in table.query_entities("RowKey eq @m", parameters={"m": MARKER})
    }


async def tables(rt: Runtime) -> tuple[Any, Any]:
    return await rt.table(rt.settings.COSTS_TABLE), await rt.table(rt.settings.COSTS_ROLLUP_TABLE)


def test_last_closed_day_waits_for_the_delay() -> None:
    assert last_closed_day(at(D, 0, 59), HOUR) == D - timedelta(days=2)  # yesterday ended 59 min ago
    assert last_closed_day(at(D, 1, 0), HOUR) == D - timedelta(days=1)
    assert last_closed_day(at(D, 0, 1), timedelta(0)) == D - timedelta(days=1)
    assert last_closed_day(at(D, 12), timedelta(days=2)) == D - timedelta(days=3)


async def test_rolls_up_each_closed_day_once_and_never_an_open_one(runtime: Runtime) -> None:
    d1, d2 = D - timedelta(days=2), D - timedelta(days=1)
    await seed(
        runtime,
        [
            record("a", at(d1, 3)),
            record("b", at(d1, 23, 59), "large", 0.05),
            record("c", at(d2, 10)),
            record("today", at(D, 0, 30)),
        ],
    )
    costs, rollups = await tables(runtime)
    now = at(D, 1, 5)  # d2 ended 65 min ago: closed with the 60 min delay
    run = await roll_up_closed_days(costs, rollups, now=now, delay=HOUR, lookback_days=3)
    assert run.checked == [D - timedelta(days=3), d1, d2]
    assert run.rolled_up == [D - timedelta(days=3), d1, d2] and run.rows_scanned == 3
    assert await markers(runtime) == {str(D - timedelta(days=3)): 0, str(d1): 2, str(d2): 1}
    again = await roll_up_closed_days(costs, rollups, now=now + HOUR, delay=HOUR, lookback_days=3)
    assert again.rolled_up == [] and again.rows_scanned == 0  # idempotent: complete days are skipped
    # A report now reads the closed days from the roll-ups and scans only today.
    cube, sources = await load_cube(costs, rollups, Period(d1, D), now=now, delay=HOUR)
    assert sources.rollup_days == 2 and sources.scanned_days == 1 and sources.stored_days == 0
    assert sum(s.calls for s in cube.values()) == 4


async def test_concurrent_runs_on_several_instances_agree(runtime: Runtime) -> None:
    day = D - timedelta(days=1)
    await seed(
        runtime, [record(f"r{i}", at(day, i % 24), ("small", "medium", "large")[i % 3]) for i in range(30)]
    )
    costs, rollups = await tables(runtime)
    runs = await asyncio.gather(
        *(roll_up_closed_days(costs, rollups, now=at(D, 2), delay=HOUR, lookback_days=1) for _ in range(3))
    )
    assert all(r.rolled_up == [day] for r in runs)  # all raced; each wrote the same roll-up
    assert await markers(runtime) == {str(day): 30}
    rows = [e async for e in rollups.query_entities("PartitionKey eq @d", parameters={"d": str(day)})]
    assert len(rows) == 4  # three model groups and the marker, no duplicates
    cube, sources = await load_cube(costs, rollups, Period(day, day), now=at(D, 2), delay=HOUR)
    assert sources.rollup_days == 1 and sum(s.calls for s in cube.values()) == 30


async def test_an_incomplete_roll_up_is_recomputed(runtime: Runtime) -> None:
    day = D - timedelta(days=1)
    await seed(runtime, [record("x", at(day, 8)), record("y", at(day, 9))])
    costs, rollups = await tables(runtime)
    await roll_up_closed_days(costs, rollups, now=at(D, 2), delay=HOUR, lookback_days=1)
    await rollups.delete_entity(str(day), MARKER)  # as if a writer died before the marker
    await seed(runtime, [record("z", at(day, 10))])
    run = await roll_up_closed_days(costs, rollups, now=at(D, 2), delay=HOUR, lookback_days=1)
    assert run.rolled_up == [day] and await markers(runtime) == {str(day): 3}


async def test_the_job_entry_point_reads_its_settings(settings_factory: Any) -> None:
    rt = Runtime(settings_factory(REPORT_ROLLUP_DELAY_MINUTES=0, ROLLUP_LOOKBACK_DAYS=2))
    try:
        await seed(rt, [record("p", at(D - timedelta(days=1), 12))])
        run = await run_rollup_job(rt, now=at(D, 0, 0))
        assert run.checked == [D - timedelta(days=2), D - timedelta(days=1)]
        assert await markers(rt) == {str(D - timedelta(days=2)): 0, str(D - timedelta(days=1)): 1}
    finally:
        await rt.close()


def test_request_budget_stays_below_the_platform_response_limit() -> None:
    base = {"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true"}
    assert (
        load_settings({**base, "REQUEST_TIMEOUT_S": "220"}).REQUEST_TIMEOUT_S == 220 < HTTP_RESPONSE_LIMIT_S
    )
    with pytest.raises(SettingsError, match="REQUEST_TIMEOUT_S"):
        load_settings({**base, "REQUEST_TIMEOUT_S": "230"})


@pytest.mark.parametrize("schedule", ["*/15 * * * *", "", "0 */15 * * * * *"])
def test_roll_up_schedule_is_ncrontab(schedule: str) -> None:
    with pytest.raises(SettingsError, match="ROLLUP_SCHEDULE"):
        load_settings({"TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true", "ROLLUP_SCHEDULE": schedule})
