"""The one credential the process uses: managed identity in Azure, developer identity locally. No keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"


def create_credential(client_id: str | None) -> AsyncTokenCredential:
    """``ManagedIdentityCredential`` pinned to the app's user-assigned identity when its client id is
    known (no probing of other credential types in Azure), else ``DefaultAzureCredential`` (``az login``)."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    if client_id:
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(exclude_interactive_browser_credential=True)
