"""The callers table (``CALLERS_TABLE``): router keys and the callers they belong to.

Two partitions, every access a point read or a constant filter (never caller text in OData):

- ``key``/<key id>: ``caller``, ``team``, ``salt``, ``hash`` (the salted hash; the key itself is never
  stored), ``created``. The app reads only these rows, by key id, on a cache miss.
- ``caller``/<name>: ``team``, ``key_id`` (the active key, empty once revoked), ``created``,
  ``revoked_at``. What ``callers list`` shows; other per-caller settings (budgets) go in this row too.

Revoking deletes the key row, so a revoked key is unknown everywhere once caches expire.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from router.callers.keys import KEY_PARTITION, check_name, new_key
from router.errors import CallerExists, UnknownCaller

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

CALLER_PARTITION = "caller"


@dataclass(frozen=True, slots=True)
class CallerRow:
    name: str
    team: str
    active: bool
    created: str
    revoked_at: str


async def read_key_row(table: TableClient, key_id: str) -> Mapping[str, Any] | None:
    """The row of one key id (a point read), or None."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return dict(await table.get_entity(KEY_PARTITION, key_id))
    except ResourceNotFoundError:
        return None


async def _caller(table: TableClient, name: str) -> dict[str, Any] | None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return dict(await table.get_entity(CALLER_PARTITION, name))
    except ResourceNotFoundError:
        return None


async def create_caller(table: TableClient, name: str, team: str | None) -> str:
    """A new key for ``name`` (team: ``team``, else the name): its text, to show once."""
    from azure.data.tables import UpdateMode

    check_name("caller name", name)
    team = check_name("team", team) if team else name
    existing = await _caller(table, name)
    if existing is not None and existing.get("key_id"):
        raise CallerExists(f"caller {name!r} already has a key (revoke it first)")
    key = new_key()
    now = datetime.now(UTC).isoformat(timespec="seconds")
    secret_row = {"PartitionKey": KEY_PARTITION, "RowKey": key.key_id, "caller": name, "team": team,
                  "salt": key.salt, "hash": key.digest, "created": now}  # fmt: skip
    await table.create_entity(secret_row)
    row = {"PartitionKey": CALLER_PARTITION, "RowKey": name, "team": team, "key_id": key.key_id,
           "created": now, "revoked_at": ""}  # fmt: skip
    await table.upsert_entity(row, mode=UpdateMode.MERGE)  # MERGE: other per-caller settings stay
    return key.text


async def revoke_caller(table: TableClient, name: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import UpdateMode

    check_name("caller name", name)
    existing = await _caller(table, name)
    key_id = existing.get("key_id") if existing else None
    if not key_id:
        raise UnknownCaller(f"no caller {name!r} with an active key")
    with contextlib.suppress(ResourceNotFoundError):
        await table.delete_entity(KEY_PARTITION, str(key_id))
    now = datetime.now(UTC).isoformat(timespec="seconds")
    row = {"PartitionKey": CALLER_PARTITION, "RowKey": name, "key_id": "", "revoked_at": now}
    await table.upsert_entity(row, mode=UpdateMode.MERGE)


async def list_callers(table: TableClient) -> list[CallerRow]:
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": CALLER_PARTITION})
    out = [
        CallerRow(
            name=str(e["RowKey"]),
            team=str(e.get("team") or e["RowKey"]),
            active=bool(e.get("key_id")),
            created=str(e.get("created") or ""),
            revoked_at=str(e.get("revoked_at") or ""),
        )
        async for e in rows
    ]
    return sorted(out, key=lambda r: r.name)
