"""Table Storage connections: managed identity to an endpoint in Azure, a connection string for Azurite."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient, TableServiceClient

    from router.settings import Settings


def create_service_client(
    settings: Settings, credential: AsyncTokenCredential | None, **transport: Any
) -> TableServiceClient:
    from azure.data.tables.aio import TableServiceClient

    # No proxy/netrc lookups from the environment on every request (aiohttp does them in a thread).
    transport = {"use_env_settings": False, **transport}
    if settings.TABLES_CONNECTION_STRING:
        return TableServiceClient.from_connection_string(settings.TABLES_CONNECTION_STRING, **transport)
    if credential is None or settings.TABLES_ENDPOINT is None:
        raise ValueError("TABLES_ENDPOINT needs a credential")
    return TableServiceClient(endpoint=settings.TABLES_ENDPOINT, credential=credential, **transport)


async def ensure_table(service: TableServiceClient, name: str) -> TableClient:
    """The table client, creating the table on first use (idempotent across instances)."""
    with suppress(ResourceExistsError):
        await service.create_table(name)
    return service.get_table_client(name)
