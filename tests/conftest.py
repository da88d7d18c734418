"""Shared real components: one Azurite, one Azure OpenAI simulator, one managed-identity endpoint per run.

Each test gets its own tables (unique names), so tests stay independent while sharing the processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import settings as hypothesis_settings

from router.api.app import create_app
from router.dev.azurite import Azurite
from router.dev.simulator import Simulator
from router.models.config import ModelConfig
from router.runtime import Runtime
from router.settings import Settings
from tests.support import IdentityEndpoint, ThreadServer

# CI explores the same examples every run (a red build is then reproducible); locally they vary.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

CLIENT_ID = "00000000-0000-0000-0000-00000000c1d0"

MODELS = [
    ModelConfig(
        name="small",
        deployment="dep-small",
        cost_per_1k_tokens=0.0002,
        input_cost_per_1k=0.00015,
        output_cost_per_1k=0.0006,
        avg_latency_ms=400,
        max_complexity=0.3,
        context_window=128000,
    ),
    ModelConfig(
        name="medium",
        deployment="dep-medium",
        cost_per_1k_tokens=0.0007,
        input_cost_per_1k=0.0004,
        output_cost_per_1k=0.0016,
        avg_latency_ms=800,
        max_complexity=0.7,
        context_window=128000,
    ),
    ModelConfig(
        name="large",
        deployment="dep-large",
        cost_per_1k_tokens=0.0035,
        input_cost_per_1k=0.002,
        output_cost_per_1k=0.008,
        avg_latency_ms=1500,
        max_complexity=1.0,
        context_window=1000000,
    ),
]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as server:
        yield server


@pytest.fixture(scope="session")
def simulator_server() -> Iterator[tuple[Simulator, ThreadServer]]:
    sim = Simulator()
    server = ThreadServer(sim.app).start()
    yield sim, server
    server.stop()


@pytest.fixture
def simulator(simulator_server: tuple[Simulator, ThreadServer]) -> Simulator:
    sim, _ = simulator_server
    sim.reset()
    return sim


@pytest.fixture(scope="session")
def identity() -> Iterator[tuple[IdentityEndpoint, ThreadServer]]:
    endpoint = IdentityEndpoint()
    server = ThreadServer(endpoint.app()).start()
    yield endpoint, server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def managed_identity_env(identity: tuple[IdentityEndpoint, ThreadServer]) -> Iterator[None]:
    """Point ManagedIdentityCredential at the loopback endpoint: no test can reach 169.254.169.254."""
    endpoint, server = identity
    saved = {k: os.environ.get(k) for k in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT")}
    os.environ["IDENTITY_ENDPOINT"] = f"{server.url}/msi/token"
    os.environ["IDENTITY_HEADER"] = endpoint.header_secret
    os.environ.pop("MSI_ENDPOINT", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


# A module whose tests should run once per upstream client overrides ``upstream_client`` with these.
UPSTREAM_CLIENTS = ["openai", "aiohttp"]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@dataclass
class Harness:
    """The app wired to the shared real components, with its own tables."""

    settings: Settings
    runtime: Runtime
    app: Any
    client: httpx2.AsyncClient
    simulator: Simulator
    azurite: Azurite

    async def costs(self) -> list[dict[str, Any]]:
        """Stored cost records, after every background write has finished."""
        if self.runtime.built_service is not None:
            await self.runtime.built_service.recorder.idle()
        table = await self.runtime.table(self.settings.COSTS_TABLE)
        return [dict(e) async for e in table.list_entities()]

    async def set_models(self, models: list[ModelConfig]) -> None:
        from router.models.store import upsert_table

        await upsert_table(await self.runtime.table(self.settings.MODELS_TABLE), models)


@pytest.fixture
def upstream_client() -> str:
    """``UPSTREAM_CLIENT`` for the app under test; modules that cover both override it with params."""
    return "openai"


@pytest.fixture
def settings_factory(
    azurite: Azurite, simulator_server: tuple[Simulator, ThreadServer], upstream_client: str
) -> Any:
    _, sim_server = simulator_server

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "AZURE_OPENAI_ENDPOINT": sim_server.url,
            "ALLOW_LOOPBACK_ENDPOINTS": True,  # the simulator is on loopback
            "AZURE_CLIENT_ID": CLIENT_ID,
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "MODELS_TABLE": unique("models"),
            "COSTS_TABLE": unique("costs"),
            "HEALTH_TABLE": unique("health"),
            "COSTS_ROLLUP_TABLE": unique("rollups"),
            "CLASSIFIER": "seed",
            # The tests' queries sit in the seed rule's scale; the shipped band is learned-v2's.
            "JUDGE_LOW": 0.3,
            "JUDGE_HIGH": 0.7,
            "JUDGE_SCALE": (0.0, 1.0),  # the judge's answer as it is (test_judge_scale.py: calibrated)
            "UPSTREAM_CLIENT": upstream_client,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def harness_factory(
    settings_factory: Any, simulator: Simulator, azurite: Azurite
) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(models: list[ModelConfig] | None = MODELS, **overrides: Any) -> Harness:
        settings = settings_factory(**overrides)
        runtime = Runtime(settings)
        app = create_app(runtime)
        client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://router.test")
        h = Harness(settings, runtime, app, client, simulator, azurite)
        if models:
            await h.set_models(models)
        made.append(h)
        return h

    yield make
    for h in made:
        await h.client.aclose()
        await h.runtime.close()


@pytest.fixture
async def harness(harness_factory: Any) -> Harness:
    return await harness_factory()


@pytest.fixture
async def routed(harness: Harness) -> AsyncIterator[tuple[Harness, Any]]:
    """The app on a loopback port (the harness's tables), the openai SDK talking HTTP to its /api/v1."""
    server = ThreadServer(create_app(Runtime(harness.settings))).start()
    harness.server_url = server.url  # type: ignore[attr-defined]
    client = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key="unused", max_retries=0)
    yield harness, client
    await client.close()
    server.stop()
