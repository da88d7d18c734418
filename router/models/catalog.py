"""The in-process model catalogue: loaded once, served from memory, refreshed in the background after a TTL.

A request never waits for a table read once the catalogue is loaded (stale-while-revalidate), and a failed
refresh keeps the last good catalogue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from router.errors import CatalogUnavailable
from router.models.config import ModelConfig, cheapest_first

log = logging.getLogger("router.models.catalog")


class ModelCatalog:
    def __init__(
        self,
        loader: Callable[[], Awaitable[list[ModelConfig]]],
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._ttl = ttl_seconds
        self._clock = clock
        self._models: tuple[ModelConfig, ...] | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._refreshing: asyncio.Task[None] | None = None
        self.last_error: str | None = None

    @property
    def loaded(self) -> bool:
        return self._models is not None

    async def models(self) -> tuple[ModelConfig, ...]:
        """The enabled models. Loads on first call; afterwards returns at once and refreshes in the
        background when the TTL has passed."""
        if self._models is None:
            await self._load_first()
        elif self._clock() - self._loaded_at >= self._ttl and self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
        assert self._models is not None
        enabled = tuple(m for m in self._models if m.enabled)
        if not enabled:
            raise CatalogUnavailable("no enabled model configs in the models table")
        return enabled

    async def all_models(self) -> tuple[ModelConfig, ...]:
        await self.models()
        assert self._models is not None
        return self._models

    async def _load_first(self) -> None:
        async with self._lock:
            if self._models is not None:
                return
            try:
                self._set(await self._loader())
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("model catalogue load failed: %s", self.last_error)
                raise CatalogUnavailable("model configs could not be loaded from Table Storage") from exc

    async def _refresh(self) -> None:
        try:
            self._set(await self._loader())
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            # Retry after a full TTL, not on every request, so an outage is not hammered.
            self._loaded_at = self._clock()
            log.warning("model catalogue refresh failed, keeping the last good one: %s", self.last_error)
        finally:
            self._refreshing = None

    def _set(self, models: list[ModelConfig]) -> None:
        if not models:
            raise CatalogUnavailable("the models table has no valid model configs")
        self._models = tuple(sorted(models, key=cheapest_first))
        self._loaded_at = self._clock()
        self.last_error = None
