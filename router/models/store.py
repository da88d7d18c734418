"""Model configs in Table Storage: read the catalogue, upsert configs (CLI, calibration, deploy hook)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from router.models.config import MODELS_PARTITION, ModelConfig, parse_entities
from router.tables import ensure_table, open_service

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from router.endpoint_policy import EndpointPolicy
    from router.settings import Settings

log = logging.getLogger("router.models")


async def read_table(table: TableClient, policy: EndpointPolicy) -> list[ModelConfig]:
    """Valid configs in the models partition (the partition key is a constant, never user text); an
    entity whose endpoint ``policy`` refuses is skipped with a warning naming it."""
    entities = [
        e async for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": MODELS_PARTITION})
    ]
    return parse_entities(entities, log.warning, policy)


async def upsert_table(table: TableClient, models: Sequence[ModelConfig]) -> None:
    from azure.data.tables import UpdateMode

    for model in models:
        await table.upsert_entity(model.to_entity(), mode=UpdateMode.REPLACE)


async def read_models(settings: Settings) -> list[ModelConfig]:
    async with open_service(settings) as service:
        return await read_table(await ensure_table(service, settings.MODELS_TABLE), settings.endpoint_policy)


async def upsert_models(settings: Settings, models: Sequence[ModelConfig]) -> None:
    async with open_service(settings) as service:
        await upsert_table(await ensure_table(service, settings.MODELS_TABLE), models)
