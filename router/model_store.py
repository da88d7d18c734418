"""Model configs in Table Storage: read the catalogue, upsert configs (CLI, calibration, deploy hook)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from router.model_config import MODELS_PARTITION, ModelConfig, parse_entities

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from router.settings import Settings

log = logging.getLogger("router.models")


async def read_table(table: TableClient) -> list[ModelConfig]:
    """Valid configs in the models partition (the partition key is a constant, never user text)."""
    entities = [
        e async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": MODELS_PARTITION})
    ]
    return parse_entities(entities, log.warning)


async def upsert_table(table: TableClient, models: Sequence[ModelConfig]) -> None:
    from azure.data.tables import UpdateMode

    for model in models:
        await table.upsert_entity(model.to_entity(), mode=UpdateMode.REPLACE)


async def read_models(settings: Settings) -> list[ModelConfig]:
    async with _table(settings) as table:
        return await read_table(table)


async def upsert_models(settings: Settings, models: Sequence[ModelConfig]) -> None:
    async with _table(settings) as table:
        await upsert_table(table, models)


class _table:
    """A short-lived table client with its own credential, for CLI use (the app keeps long-lived ones)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> TableClient:
        from router.credentials import create_credential
        from router.tables import create_service_client, ensure_table

        self.credential = (
            None
            if self.settings.TABLES_CONNECTION_STRING
            else create_credential(self.settings.AZURE_CLIENT_ID)
        )
        self.service = create_service_client(self.settings, self.credential)
        return await ensure_table(self.service, self.settings.MODELS_TABLE)

    async def __aexit__(self, *exc: object) -> None:
        await self.service.close()
        if self.credential is not None:
            await self.credential.close()
