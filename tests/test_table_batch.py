"""The cost records' transaction writer against Azurite: what it stores is exactly what
azure-data-tables' own ``submit_transaction`` stores (values and types, read back through the library),
a transaction is all-or-nothing, and bad input is refused before anything is sent."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient

from router.costs.records import CostRecord
from router.costs.transactions import TransactionFailed, check_reply, entity_json, submit_upserts
from router.dev.azurite import Azurite
from tests.conftest import unique


@pytest.fixture
async def tables(azurite: Azurite) -> Any:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    made: list[TableClient] = []

    async def make() -> TableClient:
        made.append(await service.create_table(unique("batch")))
        return made[-1]

    yield make
    for t in made:
        await t.close()
    await service.close()


def record(i: int, when: datetime) -> dict[str, Any]:
    rec = CostRecord(
        record_id=f"rid-{i}",
        request_id=f"req '{i}' é%",
        timestamp=when + timedelta(milliseconds=i),
        model="gpt-4.1-nano",
        deployment="nano",
        complexity=0.25 if i % 2 else 1.0,  # a whole-number float must stay Edm.Double
        classifier="learned",
        prompt_tokens=12 + i,
        completion_tokens=7,
        cost_usd=0.0000123 * (i + 1),
        baseline_model="gpt-4.1",
        baseline_cost_usd=0.00042,
        latency_ms=3.5,
        fallbacks=i % 3,
        attempts='[{"model":"x","error_code":"http_429"}]' if i % 3 else None,
    )
    return rec.to_entity()


async def rows(table: TableClient) -> list[tuple[dict[str, Any], list[type]]]:
    found = sorted([e async for e in table.list_entities()], key=lambda e: e["RowKey"])
    return [(dict(e), [type(v) for v in e.values()]) for e in found]


async def test_stores_what_the_library_stores(tables: Any) -> None:
    ours, theirs = await tables(), await tables()
    when = datetime(2026, 11, 26, 22, 0, 1, 123456, tzinfo=UTC)
    entities = [record(i, when) for i in range(7)]
    entities[0]["RowKey"] += "'quoted' key é%"
    entities[1]["flag"] = True
    entities[2]["nothing"] = None
    await submit_upserts(ours, entities)
    await theirs.submit_transaction([("upsert", e, {"mode": UpdateMode.REPLACE}) for e in entities])
    stored = await rows(ours)
    assert stored == await rows(theirs)
    assert len(stored) == 7
    first, _ = stored[0]
    assert first["RowKey"].endswith("'quoted' key é%")
    assert first["complexity"] == 1.0 and isinstance(first["complexity"], float)
    assert first["timestamp"] == when
    assert "nothing" not in stored[2][0]


async def test_upsert_replaces_and_a_full_transaction_of_100_is_stored(tables: Any) -> None:
    table = await tables()
    when = datetime.now(UTC)
    entities = [record(i, when) for i in range(100)]
    await submit_upserts(table, entities)
    entities[5]["model"] = "replaced"
    await submit_upserts(table, entities)  # the same keys again: idempotent replace, no conflict
    stored = [e for e, _ in await rows(table)]
    assert len(stored) == 100
    assert [e["model"] for e in stored].count("replaced") == 1


async def test_a_refused_transaction_raises_and_stores_nothing(tables: Any) -> None:
    table = await tables()
    entities = [record(i, datetime.now(UTC)) for i in range(5)]
    entities[3]["RowKey"] = "a/b"  # '/' is not allowed in a key: the service refuses operation 3
    with pytest.raises(TransactionFailed) as caught:
        await submit_upserts(table, entities)
    assert caught.value.status == 400
    assert await rows(table) == []


async def test_what_azure_refuses_is_refused_before_sending(tables: Any) -> None:
    table = await tables()
    entities = [record(i, datetime.now(UTC)) for i in range(101)]
    with pytest.raises(ValueError, match="at most 100"):
        await submit_upserts(table, entities)
    entities = entities[:3]
    entities[1]["PartitionKey"] = "2000-01-01"  # Azurite would take it; Azure refuses mixed partitions
    with pytest.raises(ValueError, match="same PartitionKey"):
        await submit_upserts(table, entities)
    assert await rows(table) == []


def test_entity_json_refuses_what_the_library_refuses() -> None:
    with pytest.raises(TypeError, match="Int32"):
        entity_json({"PartitionKey": "p", "RowKey": "r", "n": 2**31})
    with pytest.raises(TypeError, match="unsupported"):
        entity_json({"PartitionKey": "p", "RowKey": "r", "b": b"bytes"})
    assert entity_json({"x": math.inf, "y": None, "z": False}) == (
        '{"x":"Infinity","x@odata.type":"Edm.Double","z":false}'
    )


def test_check_reply() -> None:
    ok = b"--r\r\nHTTP/1.1 204 No Content\r\n\r\n--r\r\nHTTP/1.1 204 No Content\r\n\r\n--r--"
    check_reply(202, ok, 2)
    with pytest.raises(TransactionFailed, match="2 operation replies for 3"):
        check_reply(202, ok, 3)
    with pytest.raises(TransactionFailed) as caught:
        check_reply(202, b"--r\r\nHTTP/1.1 409 Conflict\r\n\r\n--r--", 2)
    assert caught.value.status == 409 and "Conflict" in str(caught.value)
    with pytest.raises(TransactionFailed) as caught:
        check_reply(413, b"too large", 100)
    assert caught.value.status == 413
