"""The budgets table: limits and spend counters of callers and teams, and the shared per-minute token
counts of the rate limit. Point reads and writes by PartitionKey/RowKey only; counters change only by
conditional (ETag) updates, so concurrent instances never overwrite each other's reservations.

::

    PartitionKey    RowKey        fields
    limits-caller   <caller id>   name, daily_usd, monthly_usd, tpm, on_budget
    limits-team     <team>        name, daily_usd, monthly_usd, on_budget
    spend-caller    <caller id>   name, day, day_reserved, day_spent, month, month_* (pico-USD, Int64)
    spend-team      <team>        the same
    tpm             <caller id>   name, minute (UTC, "YYYY-MM-DDTHH:MM"), tokens (Int64)

Names become row keys percent-encoded, so any caller id is a valid key (``/ \\ # ?`` are not).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from router.callers.budgets import Counter, Limits, OnBudget, Scope
from router.errors import StaleEntity

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

TableGetter = Callable[[], Awaitable["TableClient"]]
_COUNTER_FIELDS = ("day_reserved", "day_spent", "month_reserved", "month_spent")


def row_key(name: str) -> str:
    return quote(name, safe="")


def _int(value: Any) -> int:
    value = getattr(value, "value", value)  # an Int64 may come back as an EntityProperty
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _int64(value: int) -> Any:
    from azure.data.tables import EdmType, EntityProperty

    return EntityProperty(value, EdmType.INT64)


def limits_from(entity: dict[str, Any]) -> Limits:
    tpm = entity.get("tpm")
    on_budget: OnBudget = "downgrade" if entity.get("on_budget") == "downgrade" else "reject"
    return Limits(_float(entity.get("daily_usd")), _float(entity.get("monthly_usd")),
                  _int(tpm) if tpm is not None else None, on_budget)  # fmt: skip


def counter_from(entity: dict[str, Any]) -> Counter:
    values = {f: _int(entity.get(f)) for f in _COUNTER_FIELDS}
    return Counter(day=str(entity.get("day", "")), month=str(entity.get("month", "")), **values)


class BudgetStore:
    """The budgets table through one long-lived client (``table`` creates it on first use)."""

    def __init__(self, table: TableGetter) -> None:
        self._table = table

    async def _get(self, partition: str, name: str) -> tuple[dict[str, Any], str] | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            entity = await (await self._table()).get_entity(partition, row_key(name))
        except ResourceNotFoundError:
            return None
        return dict(entity), str(entity.metadata["etag"])

    async def _put(self, entity: dict[str, Any], etag: str | None) -> str:
        """Create (``etag`` None) or replace if unchanged since read; ``StaleEntity`` when another
        writer got there first."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.data.tables import UpdateMode

        table = await self._table()
        try:
            if etag is None:
                meta = await table.create_entity(entity)
            else:
                meta = await table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                                 match_condition=MatchConditions.IfNotModified)  # fmt: skip
        except (ResourceExistsError, ResourceModifiedError):
            raise StaleEntity(entity["PartitionKey"], entity["RowKey"]) from None
        return str(meta["etag"])

    # -- limits --------------------------------------------------------------------------------
    async def read_limits(self, scope: Scope, name: str) -> Limits | None:
        found = await self._get(f"limits-{scope}", name)
        return None if found is None else limits_from(found[0])

    async def write_limits(self, scope: Scope, name: str, limits: Limits) -> None:
        from azure.data.tables import UpdateMode

        entity: dict[str, Any] = {"PartitionKey": f"limits-{scope}", "RowKey": row_key(name), "name": name,
                                  "on_budget": limits.on_budget}  # fmt: skip
        for field in ("daily_usd", "monthly_usd", "tpm"):
            value = getattr(limits, field)
            if value is not None:
                entity[field] = value
        await (await self._table()).upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def delete_limits(self, scope: Scope, name: str) -> None:
        await (await self._table()).delete_entity(f"limits-{scope}", row_key(name))

    # -- spend counters ------------------------------------------------------------------------
    async def read_counter(self, scope: Scope, name: str) -> tuple[Counter, str | None]:
        found = await self._get(f"spend-{scope}", name)
        return (Counter(), None) if found is None else (counter_from(found[0]), found[1])

    async def write_counter(self, scope: Scope, name: str, counter: Counter, etag: str | None) -> str:
        entity: dict[str, Any] = {"PartitionKey": f"spend-{scope}", "RowKey": row_key(name), "name": name,
                                  "day": counter.day, "month": counter.month}  # fmt: skip
        for field in _COUNTER_FIELDS:
            entity[field] = _int64(getattr(counter, field))
        return await self._put(entity, etag)

    # -- shared per-minute token counts (rate limit) -------------------------------------------
    async def read_minute(self, name: str) -> tuple[str, int, str | None]:
        found = await self._get("tpm", name)
        if found is None:
            return "", 0, None
        entity, etag = found
        return str(entity.get("minute", "")), _int(entity.get("tokens")), etag

    async def write_minute(self, name: str, minute: str, tokens: int, etag: str | None) -> str:
        entity = {"PartitionKey": "tpm", "RowKey": row_key(name), "name": name, "minute": minute,
                  "tokens": _int64(tokens)}  # fmt: skip
        return await self._put(entity, etag)
