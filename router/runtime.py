"""The composition root: process-wide resources, built lazily on first use and closed on shutdown.

Nothing is built at import time, and the heavy SDKs (azure-identity, azure-data-tables, openai) are
imported only when the first request builds the service, so ``import function_app`` stays cheap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router.callers.budget_store import BudgetStore
from router.callers.ledger import BudgetLedger, utcnow
from router.callers.rate_limit import TokenRateLimiter
from router.callers.store import read_key_row
from router.classifiers import get_scorer
from router.costs.recorder import CostRecorder
from router.costs.transactions import submit_upserts
from router.credentials import create_credential
from router.health import SharedHealth
from router.health import table as health_table
from router.models.catalog import ModelCatalog
from router.models.config import ModelConfig
from router.models.store import read_table
from router.pipeline.admission import Admission
from router.pipeline.service import RouterService
from router.quality.sampler import QualitySampler
from router.quality.store import day_total_usd
from router.settings import Settings, load_settings
from router.tables import create_service_client, ensure_table
from router.upstream import create_upstream

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient, TableServiceClient

log = logging.getLogger("router")


def instance_id() -> str:
    """This instance's name in shared health rows: App Service's instance id, else a random one."""
    return os.environ.get("WEBSITE_INSTANCE_ID", "")[:16] or uuid.uuid4().hex[:12]


class Runtime:
    """Owns the credential, the Table clients, the upstream client and the service built on them.

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
        self._table_clients: dict[str, TableClient] = {}
        self._service: RouterService | None = None
        self._sampler: QualitySampler | None = None
        self._lock = asyncio.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def credential(self) -> AsyncTokenCredential:
        if self._credential is None:
            self._credential = create_credential(self.settings.AZURE_CLIENT_ID)
        return self._credential

    def tables(self) -> TableServiceClient:
        if self._tables is None:
            s = self.settings
            cred = None if s.TABLES_CONNECTION_STRING else self.credential()
            # The app owns retries (cost-record writes, catalogue refresh): keep the SDK's short, so an
            # outage is noticed in milliseconds rather than after ~10 s of exponential backoff.
            transport = {"retry_total": 1, "retry_backoff_factor": 0.1, **self._table_transport}
            self._tables = create_service_client(s, cred, **transport)
        return self._tables

    async def table(self, name: str) -> TableClient:
        return await ensure_table(self.tables(), name)

    async def _cached_table(self, name: str) -> TableClient:
        # Created on first successful use, so a Table outage at start is retried, not cached.
        if name not in self._table_clients:
            self._table_clients[name] = await self.table(name)
        return self._table_clients[name]

    async def service(self) -> RouterService:
        if self._service is None:
            async with self._lock:
                if self._service is None:
                    self._service = self._build()
        return self._service

    @property
    def built_service(self) -> RouterService | None:
        return self._service

    @property
    def sampler(self) -> QualitySampler:
        """The quality sampler, built with the service (``await service()`` first)."""
        if self._sampler is None:
            raise RuntimeError("the service is not built yet")
        return self._sampler

    # -- what the service reads and writes -------------------------------------------------------
    async def _load_models(self) -> list[ModelConfig]:
        return await read_table(
            await self._cached_table(self.settings.MODELS_TABLE), self.settings.endpoint_policy
        )

    async def _write_cost(self, entity: dict[str, Any]) -> object:
        from azure.data.tables import UpdateMode

        table = await self._cached_table(self.settings.COSTS_TABLE)
        return await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def _write_costs(self, entities: list[dict[str, Any]]) -> None:
        await submit_upserts(await self._cached_table(self.settings.COSTS_TABLE), entities)

    async def _read_health(self) -> list[dict[str, Any]]:
        return await health_table.read_rows(await self._cached_table(self.settings.HEALTH_TABLE))

    async def _write_health(self, entity: dict[str, Any]) -> object:
        # Conditional: a write never shortens a cooldown another instance stored (router.health.table).
        await health_table.write_row(await self._cached_table(self.settings.HEALTH_TABLE), entity)
        return None

    async def _write_quality(self, entity: dict[str, Any]) -> object:
        from azure.data.tables import UpdateMode

        table = await self._cached_table(self.settings.QUALITY_TABLE)
        return await table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def read_key_row(self, key_id: str) -> Mapping[str, Any] | None:
        """One router key's row (a point read by key id), for the key cache (router.callers.keys)."""
        return await read_key_row(await self._cached_table(self.settings.CALLERS_TABLE), key_id)

    async def _quality_day_total(self, day: str) -> float:
        return await day_total_usd(await self._cached_table(self.settings.QUALITY_TABLE), day)

    def _build(self) -> RouterService:
        service = self._build_service()
        scorer = service.scorer.name or service.scorer.kind
        self._sampler = QualitySampler(
            self.settings, service.clients, service.health, scorer,
            writer=self._write_quality, day_total=self._quality_day_total,
        )  # fmt: skip
        return service

    def _build_service(self) -> RouterService:
        s = self.settings
        background = s.COST_WRITE_MODE == "background"
        return RouterService(
            settings=s,
            catalog=ModelCatalog(self._load_models, s.MODELS_TTL_SECONDS),
            scorer=get_scorer(s.CLASSIFIER),
            clients=create_upstream(
                s.UPSTREAM_CLIENT,
                self.credential,
                s.AZURE_OPENAI_API_VERSION,
                s.REQUEST_TIMEOUT_S,
                self._openai_http_client_factory,
                s.MAX_UPSTREAM_BYTES,
            ),
            recorder=CostRecorder(
                self._write_cost,
                max_pending=s.COST_BUFFER_MAX,
                background=background,
                batch_writer=self._write_costs if background else None,
                linger_s=s.COST_BATCH_LINGER_MS / 1000,
            ),
            health=SharedHealth.from_settings(
                s, instance_id=instance_id(), reader=self._read_health, writer=self._write_health
            ),
            admission=self._admission(),
        )

    def _admission(self) -> Admission:
        s = self.settings
        store = BudgetStore(lambda: self._cached_table(s.BUDGETS_TABLE))
        ledger = BudgetLedger(store, s.BUDGET_LIMITS_TTL_S, utcnow)
        return Admission(ledger, TokenRateLimiter(store, s.TPM_SYNC_S, utcnow), s)

    async def close(self) -> None:
        service, self._service = self._service, None
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            await sampler.drain()
        if service is not None:
            # Bounded: whatever the drain could not store is in the log, for `costs replay`.
            await service.recorder.drain(self.settings.COST_DRAIN_S)
            await service.health.wait_idle(timeout_s=1.0)
            if service.admission is not None:
                await service.admission.close()
            await service.clients.close()
        self._table_clients.clear()
        if self._tables is not None:
            await self._tables.close()
            self._tables = None
        if self._credential is not None and self._owns_credential:
            await self._credential.close()
            self._credential = None
