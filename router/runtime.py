"""Process-wide resources, built lazily on first use and closed on shutdown (nothing at import time)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient, TableServiceClient

    from router.service import RouterService
    from router.settings import Settings

log = logging.getLogger("router")


class Runtime:
    """Owns the credential, the Table clients, the OpenAI clients and the service built on them.

    ``table_transport`` and ``openai_http_client_factory`` exist for tests and benchmarks that point the
    real SDKs at loopback servers (a custom CA, for instance)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        credential: AsyncTokenCredential | None = None,
        table_transport: dict[str, Any] | None = None,
        openai_http_client_factory: Any = None,
    ) -> None:
        self._settings = settings
        self._credential = credential
        self._owns_credential = credential is None
        self._table_transport = table_transport or {}
        self._openai_http_client_factory = openai_http_client_factory
        self._tables: TableServiceClient | None = None
        self._service: RouterService | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from router.settings import load_settings

            self._settings = load_settings()
        return self._settings

    def credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            from router.credentials import create_credential

            self._credential = create_credential(self.settings.AZURE_CLIENT_ID)
        return self._credential

    def tables(self) -> TableServiceClient:
        if self._tables is None:
            from router.tables import create_service_client

            s = self.settings
            cred = None if s.TABLES_CONNECTION_STRING else self.credential()
            # The app owns retries (cost-record writes, catalogue refresh): keep the SDK's short, so an
            # outage is noticed in milliseconds rather than after ~10 s of exponential backoff.
            transport = {"retry_total": 1, "retry_backoff_factor": 0.1, **self._table_transport}
            self._tables = create_service_client(s, cred, **transport)
        return self._tables

    async def table(self, name: str) -> TableClient:
        from router.tables import ensure_table

        return await ensure_table(self.tables(), name)

    async def service(self) -> RouterService:
        if self._service is None:
            async with self._lock:
                if self._service is None:
                    self._service = await self._build()
        return self._service

    @property
    def built_service(self) -> RouterService | None:
        return self._service

    async def _build(self) -> RouterService:
        from azure.data.tables import UpdateMode

        from router.catalog import ModelCatalog
        from router.classifiers import get_scorer
        from router.cost_records import CostRecorder
        from router.health import HEALTH_PARTITION, HealthBoard
        from router.llm import OpenAIClients
        from router.llm_aiohttp import AiohttpOpenAIClients
        from router.model_store import read_table
        from router.service import RouterService
        from router.table_batch import submit_upserts

        s = self.settings
        tables: dict[str, TableClient] = {}

        async def table(name: str) -> TableClient:
            # Created on first successful use, so a Table outage at start is retried, not cached.
            if name not in tables:
                tables[name] = await self.table(name)
            return tables[name]

        async def load_models() -> list[Any]:
            return await read_table(await table(s.MODELS_TABLE))

        async def write_cost(entity: dict[str, Any]) -> object:
            return await (await table(s.COSTS_TABLE)).upsert_entity(entity, mode=UpdateMode.REPLACE)

        async def write_costs(entities: list[dict[str, Any]]) -> None:
            await submit_upserts(await table(s.COSTS_TABLE), entities)

        async def read_health() -> list[dict[str, Any]]:
            health = await table(s.HEALTH_TABLE)
            rows = health.query_entities("PartitionKey eq @pk", parameters={"pk": HEALTH_PARTITION})
            return [dict(e) async for e in rows]

        async def write_health(entity: dict[str, Any]) -> object:
            return await (await table(s.HEALTH_TABLE)).upsert_entity(entity, mode=UpdateMode.REPLACE)

        return RouterService(
            settings=s,
            catalog=ModelCatalog(load_models, s.MODELS_TTL_SECONDS),
            scorer=get_scorer(s.CLASSIFIER),
            clients=(AiohttpOpenAIClients if s.UPSTREAM_CLIENT == "aiohttp" else OpenAIClients)(
                self.credential,
                s.AZURE_OPENAI_API_VERSION,
                s.REQUEST_TIMEOUT_S,
                self._openai_http_client_factory,
            ),
            recorder=CostRecorder(
                write_cost,
                max_pending=s.COST_BUFFER_MAX,
                background=s.COST_WRITE_MODE == "background",
                batch_writer=write_costs if s.COST_WRITE_MODE == "background" else None,
                linger_s=s.COST_BATCH_LINGER_MS / 1000,
            ),
            health=HealthBoard.from_settings(s, reader=read_health, writer=write_health),
        )

    async def close(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.recorder.drain()
            await service.health.wait_idle()
            await service.clients.close()
        if self._tables is not None:
            await self._tables.close()
            self._tables = None
        if self._credential is not None and self._owns_credential:
            await self._credential.close()
            self._credential = None
