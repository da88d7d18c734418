"""``python -m router costs replay LOGFILE...``: store the cost records that the log holds in full.

The recorder logs a record as one JSON object ``{"cost_record": {...}}`` whenever it cannot vouch that
the record is stored (a failed write, an eviction, the shutdown drain, an invocation's await budget).
The object may sit anywhere in a line (after a timestamp and level, say); other lines are ignored.
Each record is validated as a ``CostRecord`` and upserted with its own PartitionKey and RowKey, so a
replay is idempotent: a record already stored, or logged twice, or replayed twice, is stored once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from router.costs.records import CostRecord
from router.costs.transactions import MAX_BATCH, submit_upserts
from router.settings import load_settings
from router.tables import ensure_table, open_service

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

MARKER = '{"cost_record":'


@dataclass
class Scan:
    """What the log files held: records by (PartitionKey, RowKey), and the lines that could not be read."""

    lines: int = 0
    found: int = 0
    records: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)


def entity_from_log(logged: Any) -> dict[str, Any]:
    """The entity to store for one logged record, rebuilt through ``CostRecord`` (types, timestamp), with
    exactly the keys it was logged with. Raises ``ValueError`` for anything that is not such a record."""
    if not isinstance(logged, dict):
        raise ValueError("not an object")
    pk, rk = logged.get("PartitionKey"), logged.get("RowKey")
    if not isinstance(pk, str) or not isinstance(rk, str) or "-" not in rk:
        raise ValueError("no PartitionKey/RowKey")
    fields = {k: v for k, v in logged.items() if k not in ("PartitionKey", "RowKey")}
    try:
        entity = CostRecord.model_validate({**fields, "record_id": rk.split("-", 1)[1]}).to_entity()
    except ValidationError as exc:
        raise ValueError(f"not a cost record ({exc.error_count()} problem(s))") from None
    if (entity["PartitionKey"], entity["RowKey"]) != (pk, rk):
        raise ValueError("keys do not match the record's timestamp")
    unknown = sorted(set(fields) - set(entity))
    if unknown:  # logged by a newer version: storing it without them would lose data
        raise ValueError(f"fields unknown to this version: {', '.join(unknown)}")
    return entity


def scan(named_lines: Iterable[tuple[str, str]], into: Scan | None = None) -> Scan:
    """Every logged record in ``(where, line)`` pairs, deduplicated by key."""
    out = into or Scan()
    decoder = json.JSONDecoder()
    for where, line in named_lines:
        out.lines += 1
        start = line.find(MARKER)
        if start == -1 and "cost_record" in line:  # escaped by an export (CSV, JSON): not silently skipped
            out.found += 1
            out.invalid.append(f"{where}: a cost_record that is not raw JSON (export the raw message)")
        while start != -1:
            out.found += 1
            try:
                obj, end = decoder.raw_decode(line, start)
                entity = entity_from_log(obj["cost_record"])
            except ValueError as exc:
                out.invalid.append(f"{where}: {exc}")
                break
            out.records[(entity["PartitionKey"], entity["RowKey"])] = entity
            start = line.find(MARKER, end)
    return out


def _lines(paths: list[str]) -> Iterator[tuple[str, str]]:
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            for n, line in enumerate(f, 1):
                yield f"{path}:{n}", line
        finally:
            if f is not sys.stdin:
                f.close()


async def upsert(table: TableClient, entities: list[dict[str, Any]]) -> tuple[int, int]:
    """(stored, failed): one transaction per day and 100 records, one by one if a transaction fails."""
    from azure.data.tables import UpdateMode

    by_day: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        by_day.setdefault(entity["PartitionKey"], []).append(entity)
    stored = failed = 0
    for day in by_day.values():
        for i in range(0, len(day), MAX_BATCH):
            chunk = day[i : i + MAX_BATCH]
            try:
                await submit_upserts(table, chunk)
                stored += len(chunk)
                continue
            except Exception as exc:
                print(f"transaction failed ({type(exc).__name__}); one by one", file=sys.stderr)
            for entity in chunk:
                try:
                    await table.upsert_entity(entity, mode=UpdateMode.REPLACE)
                    stored += 1
                except Exception as exc:  # reported; the log still holds the record
                    failed += 1
                    print(f"error: {entity['RowKey']}: {type(exc).__name__}", file=sys.stderr)
    return stored, failed


async def _replay(entities: list[dict[str, Any]]) -> tuple[int, int]:
    settings = load_settings()
    async with open_service(settings) as service:
        return await upsert(await ensure_table(service, settings.COSTS_TABLE), entities)


def run_replay(args: argparse.Namespace) -> int:
    found = scan(_lines(args.logfiles))
    for problem in found.invalid:
        print(f"skipped {problem}", file=sys.stderr)
    stored, failed = asyncio.run(_replay(list(found.records.values()))) if found.records else (0, 0)
    print(
        f"read {found.lines:,} line(s): {found.found:,} cost record(s), {len(found.records):,} distinct, "
        f"{len(found.invalid):,} invalid; upserted {stored:,}, failed {failed:,}"
    )
    return 1 if failed or found.invalid else 0


def add_command(costs: Any) -> None:
    replay = costs.add_parser(
        "replay", help="upsert the cost records logged in full (idempotent: each is stored once)"
    )
    replay.add_argument("logfiles", nargs="+", metavar="LOGFILE", help="log files ('-' for stdin)")
    replay.set_defaults(handler=run_replay)
