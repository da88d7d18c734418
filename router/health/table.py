"""The health table's I/O: the rows every instance merges, written so that no write shortens a cooldown.

A plain upsert would let an instance that has not yet merged another's longer cooldown overwrite it with
its own shorter one. A write here reads the row, keeps the later expiry (``combine_rows``) and replaces it
only if nobody changed it meanwhile (ETag), retrying on a race; it runs in the background, off the
request path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from router.health.shared import HEALTH_PARTITION, combine_rows

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

ATTEMPTS = 4


async def read_rows(table: TableClient) -> list[dict[str, Any]]:
    rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": HEALTH_PARTITION})
    return [dict(e) async for e in rows]


async def write_row(table: TableClient, entity: dict[str, Any]) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
    from azure.data.tables import UpdateMode

    for _ in range(ATTEMPTS):
        try:
            stored = await table.get_entity(entity["PartitionKey"], entity["RowKey"])
        except ResourceNotFoundError:
            try:
                await table.create_entity(entity)
                return
            except ResourceExistsError:
                continue  # another instance created it first: merge with theirs
        try:
            await table.update_entity(
                combine_rows(dict(stored), entity), mode=UpdateMode.REPLACE,
                etag=stored.metadata["etag"], match_condition=MatchConditions.IfNotModified,
            )  # fmt: skip
            return
        except (ResourceModifiedError, ResourceNotFoundError):
            continue
    raise RuntimeError(f"health row {entity['RowKey']!r} kept changing; not written")
