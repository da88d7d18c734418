"""Model configs: cached in-process, refreshed after the TTL without a restart, last good kept on failure."""

from __future__ import annotations

import asyncio

import httpx2

from router.api.app import create_app
from router.dev.azurite import Azurite
from router.models.catalog import CatalogUnavailable, ModelCatalog
from router.runtime import Runtime
from tests.conftest import MODELS, Harness


async def _wait_for(predicate, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_table_edit_takes_effect_within_ttl(harness_factory):
    h: Harness = await harness_factory(MODELS_TTL_SECONDS=0.3)
    assert (await h.client.post("/api/decide", json={"query": "hi"})).json()["model"] == "small"
    await h.set_models([MODELS[0].model_copy(update={"enabled": False})])

    async def routed_to_medium() -> bool:
        r = await h.client.post("/api/decide", json={"query": "hi"})
        return r.json()["model"] == "medium"

    await _wait_for(routed_to_medium)


async def test_no_table_read_per_request_in_steady_state():
    loads = 0

    async def loader():
        nonlocal loads
        loads += 1
        return list(MODELS)

    catalog = ModelCatalog(loader, ttl_seconds=3600)
    for _ in range(100):
        await catalog.models()
    assert loads == 1


async def test_stale_catalog_is_served_while_refreshing_in_background():
    now = 0.0
    gate = asyncio.Event()
    calls = 0

    async def loader():
        nonlocal calls
        calls += 1
        if calls > 1:
            await gate.wait()
            return [MODELS[2]]
        return list(MODELS)

    catalog = ModelCatalog(loader, ttl_seconds=10, clock=lambda: now)
    assert len(await catalog.models()) == 3
    now = 11.0
    # Past the TTL the caller still gets the cached models at once; the refresh runs behind it.
    assert len(await asyncio.wait_for(catalog.models(), 1)) == 3
    assert len(await asyncio.wait_for(catalog.models(), 1)) == 3
    assert calls == 2  # one refresh in flight, not one per request
    gate.set()
    await asyncio.sleep(0.01)
    assert [m.name for m in await catalog.models()] == ["large"]


async def test_failed_refresh_keeps_last_good_and_failed_first_load_raises():
    now = 0.0
    fail = False

    async def loader():
        if fail:
            raise ConnectionError("table down")
        return list(MODELS)

    catalog = ModelCatalog(loader, ttl_seconds=1, clock=lambda: now)
    await catalog.models()
    fail, now = True, 5.0
    await catalog.models()
    await asyncio.sleep(0.01)
    assert len(await catalog.models()) == 3
    assert "table down" in (catalog.last_error or "")

    empty = ModelCatalog(loader, ttl_seconds=1)
    try:
        await empty.models()
    except CatalogUnavailable:
        pass
    else:
        raise AssertionError("expected CatalogUnavailable")


async def test_table_outage_after_load_keeps_serving_the_catalogue(settings_factory, tmp_path):
    """A dedicated Azurite is stopped under a running app: decisions keep working from the cached
    catalogue, and once it is back, edits are picked up again."""
    store = Azurite(workdir=str(tmp_path / "azurite")).start()
    settings = settings_factory(TABLES_CONNECTION_STRING=store.connection_string, MODELS_TTL_SECONDS=0.2)
    runtime = Runtime(settings)
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")
    try:
        from router.models.store import upsert_table

        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        assert (await client.post("/api/decide", json={"query": "hi"})).json()["model"] == "small"
        store.stop()
        for _ in range(5):
            await asyncio.sleep(0.25)
            r = await client.post("/api/decide", json={"query": "hi"})
            assert r.status_code == 200 and r.json()["model"] == "small"
        service = runtime.built_service
        assert service is not None

        async def error_seen() -> bool:
            await client.get("/api/models")
            return service.catalog.last_error is not None

        await _wait_for(error_seen, 30)
        store.start()
        # Azurite may not have flushed its store before the stop, so write the whole catalogue again.
        edited = [MODELS[0].model_copy(update={"enabled": False}), *MODELS[1:]]
        await upsert_table(await runtime.table(settings.MODELS_TABLE), edited)

        async def recovered() -> bool:
            r = await client.post("/api/decide", json={"query": "hi"})
            return r.json()["model"] == "medium"

        await _wait_for(recovered, 30)
    finally:
        await client.aclose()
        await runtime.close()
        store.stop()
