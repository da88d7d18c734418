"""A fixed token for the local simulator only, so a dev run needs no Azure sign-in.

It is used solely when `python -m router dev` starts the simulator; against a real endpoint the app
always uses managed identity or DefaultAzureCredential.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken


class SimulatorCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("local-simulator-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> SimulatorCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None
