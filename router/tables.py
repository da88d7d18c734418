"""Table Storage connections: managed identity to an endpoint in Azure, a connection string for Azurite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from router.credentials import create_credential

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from azure.data.tables.aio import TableClient, TableServiceClient

    from router.settings import Settings


def create_service_client(
    settings: Settings, credential: AsyncTokenCredential | None, **transport: Any
) -> TableServiceClient:
    from azure.data.tables.aio import TableServiceClient

    # No proxy/netrc lookups from the environment on every request (aiohttp does them in a thread), and
    # short timeouts: with the SDK's 300 s defaults a hung Table endpoint holds every write for minutes.
    transport = {
        "use_env_settings": False,
        "connection_timeout": settings.TABLES_CONNECT_TIMEOUT_S,
        "read_timeout": settings.TABLES_READ_TIMEOUT_S,
        **transport,
    }
    if settings.TABLES_CONNECTION_STRING:
        return TableServiceClient.from_connection_string(settings.TABLES_CONNECTION_STRING, **transport)
    if credential is None or settings.TABLES_ENDPOINT is None:
        raise ValueError("TABLES_ENDPOINT needs a credential")
    return TableServiceClient(endpoint=settings.TABLES_ENDPOINT, credential=credential, **transport)


async def ensure_table(service: TableServiceClient, name: str) -> TableClient:
    """The table client, creating the table on first use (idempotent across instances). In Azure the
    deployment creates every table and the app's roles are scoped to single tables, which need not
    allow creating one: a refused create (403) leaves the table as the deployment made it."""
    from azure.core.exceptions import HttpResponseError, ResourceExistsError  # loads with the first call

    try:
        await service.create_table(name)
    except ResourceExistsError:
        pass
    except HttpResponseError as exc:
        if exc.status_code != 403:
            raise
    return service.get_table_client(name)


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[TableServiceClient]:
    """A short-lived service client with its own credential, for the CLI (the app keeps long-lived ones
    in ``router.runtime``): your ``az login`` identity against ``TABLES_ENDPOINT``, or Azurite."""
    credential = None if settings.TABLES_CONNECTION_STRING else create_credential(settings.AZURE_CLIENT_ID)
    service = create_service_client(settings, credential)
    try:
        yield service
    finally:
        await service.close()
        if credential is not None:
            await credential.close()
