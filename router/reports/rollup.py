"""The roll-up job: what the timer-triggered function runs (``rollup_closed_days`` in function_app.py).

Each run looks at the last ``ROLLUP_LOOKBACK_DAYS`` closed UTC days (a day is closed once it ended
``REPORT_ROLLUP_DELAY_MINUTES`` ago) and rolls up those without a complete, current-schema roll-up, so
a day is summarised shortly after it closes instead of by the first report that needs it. The reports
still build a missing day lazily (router.reports.store.load_cube), so a missed run costs nothing but
speed.

Safe with several instances: the Functions host runs a timer function as a singleton (a blob lease in
AzureWebJobsStorage), and even two runs at once agree, because a roll-up is recomputed from the raw
rows and written with REPLACE semantics, marker last (router.reports.store.write_rollup). A day that
is already rolled up is skipped, so re-running is a no-op: idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from router.reports.aggregate import days
from router.reports.period import Period
from router.reports.store import CONCURRENCY, is_closed, read_rollups, scan_day, write_rollup

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from router.runtime import Runtime

log = logging.getLogger("router.reports")


@dataclass
class RollupRun:
    """What one run did (logged by the timer function, asserted by the tests)."""

    checked: list[date] = field(default_factory=list)
    rolled_up: list[date] = field(default_factory=list)
    rows_scanned: int = 0


def last_closed_day(now: datetime, delay: timedelta) -> date:
    """The most recent UTC day that is closed at ``now``."""
    day = now.date() - timedelta(days=1)
    while not is_closed(day, now, delay):
        day -= timedelta(days=1)
    return day


async def roll_up_closed_days(
    costs: TableClient,
    rollups: TableClient,
    *,
    now: datetime,
    delay: timedelta,
    lookback_days: int,
) -> RollupRun:
    """Roll up every closed day in the lookback window that has no complete roll-up yet."""
    last = last_closed_day(now, delay)
    period = Period(last - timedelta(days=lookback_days - 1), last)
    stored = await read_rollups(rollups, period)
    run = RollupRun(checked=days(period.start, period.end))
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(day: date) -> None:
        cube, rows = await scan_day(costs, day, limit, 1)
        await write_rollup(rollups, day, cube)
        run.rolled_up.append(day)
        run.rows_scanned += rows

    await asyncio.gather(*(one(d) for d in run.checked if d not in stored))
    run.rolled_up.sort()
    return run


async def run_rollup_job(runtime: Runtime, now: datetime | None = None) -> RollupRun:
    """The timer function's body: the tables and timings come from the runtime's settings."""
    s = runtime.settings
    run = await roll_up_closed_days(
        await runtime.table(s.COSTS_TABLE),
        await runtime.table(s.COSTS_ROLLUP_TABLE),
        now=now or datetime.now(UTC),
        delay=timedelta(minutes=s.REPORT_ROLLUP_DELAY_MINUTES),
        lookback_days=s.ROLLUP_LOOKBACK_DAYS,
    )
    log.info(
        "roll-up: %d closed day(s) checked, %d rolled up (%s), %d rows scanned",
        len(run.checked),
        len(run.rolled_up),
        ", ".join(d.isoformat() for d in run.rolled_up) or "none",
        run.rows_scanned,
    )
    return run
