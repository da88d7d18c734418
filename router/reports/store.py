"""Reading cost records for a report, and the daily roll-ups that keep a month's report fast.

Design (see "See your savings" in README.md): a **closed day** (one that ended at least
``REPORT_ROLLUP_DELAY_MINUTES`` ago, so late or retried cost-record writes have landed) is summarised
once into the roll-up table and read from there afterwards; a day that is still open (today) is always
scanned live. The request path that writes cost records is untouched, and roll-ups are recomputed
from the raw rows (idempotent, so two instances computing the same day agree).

Every Table filter is a constant string with parameters built from ``datetime.date`` objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from router.reports.aggregate import ANONYMOUS, COLUMNS, Cube, GroupKey, Summary, days, summarize
from router.reports.period import Period

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

log = logging.getLogger("router.reports")

PAGE_SIZE = 1000  # the service maximum per page
SLICES = 8  # a day's partition is read as this many RowKey (time) ranges in parallel
CONCURRENCY = 16  # queries in flight at once
# Roll-up format version (2: groups keyed by scorer too; 3: cached and reasoning tokens, cache savings in
# the summary; 4: groups keyed by caller and team too; 5: and by the backend); a day stored with another
# version is recomputed.
SCHEMA = 5
MARKER = "day"  # RowKey of the row that says "this day's roll-up is complete"
_DAY_MS = 86_400_000
_ROLLUP_COLUMNS = (
    "PartitionKey", "RowKey", "schema", "groups", "model", "classifier", "scorer", "caller", "team",
    "deployment", "endpoint", "provisioned", "summary",
)  # fmt: skip


@dataclass
class Sources:
    """Where the numbers came from (shown in the report so a reader can tell roll-ups from live scans)."""

    rollup_days: int = 0
    scanned_days: int = 0
    stored_days: int = 0
    rows_scanned: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "rollup_days": self.rollup_days,
            "scanned_days": self.scanned_days,
            "stored_days": self.stored_days,
            "rows_scanned": self.rows_scanned,
        }


async def _pages(
    table: TableClient, query: str, parameters: dict[str, Any], select: Sequence[str]
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every page of a query (continuation tokens followed by the SDK); a missing table is empty."""
    pager = table.query_entities(
        query, parameters=parameters, select=list(select), results_per_page=PAGE_SIZE
    ).by_page()
    try:
        async for page in pager:
            yield [dict(e) async for e in page]
    except ResourceNotFoundError:
        return


def day_slices(day: date, slices: int = SLICES) -> list[tuple[str | None, str | None]]:
    """RowKey ranges that cover a day partition exactly once: RowKeys start with 13-digit epoch ms, and
    the first and last ranges are open so a row with an unexpected key is still counted."""
    start_ms = int(datetime.combine(day, time(), UTC).timestamp() * 1000)
    bounds: list[str | None] = [f"{start_ms + i * _DAY_MS // slices:013d}" for i in range(1, slices)]
    return list(zip([None, *bounds], [*bounds, None], strict=True))


async def scan_day(
    table: TableClient, day: date, limit: asyncio.Semaphore, slices: int = SLICES
) -> tuple[Cube, int]:
    """Summarise one day partition from the raw records (selected columns only), as ``slices`` RowKey
    ranges read in parallel."""
    pk = day.isoformat()

    async def one(lo: str | None, hi: str | None) -> tuple[Cube, int]:
        query, params = "PartitionKey eq @pk", {"pk": pk}
        if lo is not None:
            query, params["lo"] = query + " and RowKey ge @lo", lo
        if hi is not None:
            query, params["hi"] = query + " and RowKey lt @hi", hi
        cube: Cube = {}
        rows = 0
        async with limit:
            async for page in _pages(table, query, params, COLUMNS):
                summarize(pk, page, cube)
                rows += len(page)
        return cube, rows

    parts = await asyncio.gather(*(one(lo, hi) for lo, hi in day_slices(day, slices)))
    merged: Cube = {}
    for cube, _ in parts:
        for key, s in cube.items():
            merged.setdefault(key, Summary()).merge(s)
    return merged, sum(n for _, n in parts)


def group_row_key(key: GroupKey) -> str:
    # Model names are free text; a hash keeps the RowKey within the characters Table Storage allows.
    parts = (key.model, key.classifier, key.scorer, key.caller, key.team, key.deployment, key.endpoint,
             str(key.provisioned))  # fmt: skip
    return "g-" + hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


async def read_rollups(table: TableClient, period: Period) -> dict[date, Cube]:
    """Complete, current-schema roll-ups in the range (a PartitionKey range query on validated dates)."""
    rows: dict[str, list[dict[str, Any]]] = {}
    params = {"lo": period.start.isoformat(), "hi": period.end.isoformat()}
    async for page in _pages(table, "PartitionKey ge @lo and PartitionKey le @hi", params, _ROLLUP_COLUMNS):
        for e in page:
            rows.setdefault(str(e["PartitionKey"]), []).append(e)
    out: dict[date, Cube] = {}
    for pk, entities in rows.items():
        marker = next((e for e in entities if e["RowKey"] == MARKER), None)
        groups = [e for e in entities if e["RowKey"] != MARKER and e.get("schema") == SCHEMA]
        if marker is None or marker.get("schema") != SCHEMA or marker.get("groups") != len(groups):
            continue  # incomplete or from another version: recomputed by the caller
        out[date.fromisoformat(pk)] = {
            _group_key(pk, g): Summary.from_dict(json.loads(g["summary"])) for g in groups
        }
    return out


def _group_key(pk: str, row: dict[str, Any]) -> GroupKey:
    return GroupKey(
        pk, str(row["model"]), str(row["classifier"]), str(row.get("scorer") or "?"),
        str(row.get("caller") or ANONYMOUS), str(row.get("team") or ANONYMOUS),
        str(row.get("deployment") or "?"), str(row.get("endpoint") or "?"), row.get("provisioned") is True,
    )  # fmt: skip


async def write_rollup(table: TableClient, day: date, cube: Cube) -> None:
    """Store one closed day: group rows first, the marker last (in the same transaction when the day has
    fewer than 100 groups, so a reader sees all of it or none); stale group rows are deleted."""
    pk = day.isoformat()
    existing: set[str] = set()
    async for page in _pages(table, "PartitionKey eq @pk", {"pk": pk}, ("RowKey",)):
        existing.update(str(e["RowKey"]) for e in page)
    ops: list[tuple[str, dict[str, Any]]] = []
    keep: set[str] = set()
    for key, s in sorted(cube.items(), key=lambda kv: kv[0]):
        rk = group_row_key(key)
        keep.add(rk)
        entity = {
            "PartitionKey": pk,
            "RowKey": rk,
            "schema": SCHEMA,
            "model": key.model,
            "classifier": key.classifier,
            "scorer": key.scorer,
            "caller": key.caller,
            "team": key.team,
            "deployment": key.deployment,
            "endpoint": key.endpoint,
            "provisioned": key.provisioned,
            "summary": json.dumps(s.to_dict(), separators=(",", ":")),
        }
        ops.append(("upsert", entity))
    ops += [("delete", {"PartitionKey": pk, "RowKey": rk}) for rk in sorted(existing - keep - {MARKER})]
    marker = {
        "PartitionKey": pk,
        "RowKey": MARKER,
        "schema": SCHEMA,
        "groups": len(keep),
        "calls": sum(s.calls for s in cube.values()),
        "computed_at": datetime.now(UTC),
    }
    ops.append(("upsert", marker))
    replace = {"mode": UpdateMode.REPLACE}
    for batch in _batches(ops, 100):
        await table.submit_transaction([(op, e, replace) if op == "upsert" else (op, e) for op, e in batch])


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def is_closed(day: date, now: datetime, delay: timedelta) -> bool:
    """A day is closed once it ended ``delay`` ago: late cost-record writes have had time to land."""
    return datetime.combine(day + timedelta(days=1), time(), UTC) + delay <= now


async def load_cube(
    costs: TableClient,
    rollups: TableClient | None,
    period: Period,
    *,
    now: datetime | None = None,
    delay: timedelta = timedelta(minutes=60),
    use_rollups: bool = True,
    store_rollups: bool = True,
) -> tuple[Cube, Sources]:
    """The cube for a period: stored roll-ups where complete, live scans elsewhere; closed days that had
    to be scanned are stored (best effort: a failed store is logged and the report is still exact)."""
    now = now or datetime.now(UTC)
    stored = await read_rollups(rollups, period) if rollups is not None and use_rollups else {}
    sources = Sources(rollup_days=len(stored))
    limit = asyncio.Semaphore(CONCURRENCY)
    # Records are stamped by the server's clock: partitions after tomorrow are empty, never read.
    last = now.date() + timedelta(days=1)
    todo = [d for d in days(period.start, period.end) if d not in stored and d <= last]
    store = [True] if store_rollups else []  # emptied on the first failed write

    async def one(day: date) -> Cube:
        closed = is_closed(day, now, delay)
        # A closed day is read once (then rolled up): days run in parallel with each other. An open day
        # is read on every report, so its partition is split into time slices read in parallel.
        cube, rows = await scan_day(costs, day, limit, 1 if closed else SLICES)
        sources.scanned_days += 1
        sources.rows_scanned += rows
        if rollups is not None and store and closed:
            try:
                await write_rollup(rollups, day, cube)
                sources.stored_days += 1
            except (HttpResponseError, ValueError) as exc:
                if store:  # said once: a reader without write rights would otherwise hear it per day
                    log.warning("roll-ups not stored (%s); the report is still exact", exc)
                store.clear()
        return cube

    out: Cube = {}
    for cube in [*stored.values(), *await asyncio.gather(*(one(d) for d in todo))]:
        out.update(cube)  # keys carry the day, so day cubes never collide
    return out, sources
