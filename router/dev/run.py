"""`python -m router dev`: everything a newcomer needs on one port, with no Azure account.

Starts Azurite (unless Table settings are given), seeds the sample catalogue into an empty models table,
starts the Azure OpenAI simulator (unless AZURE_OPENAI_ENDPOINT is set) and serves the API.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
from pathlib import Path
from typing import Any

import uvicorn

from router.api.app import create_app
from router.dev.azurite import REPO_ROOT, Azurite
from router.dev.credential import SimulatorCredential
from router.dev.simulator import Simulator
from router.logs import configure_logging
from router.models.config import load_file
from router.models.store import read_models, upsert_models
from router.runtime import Runtime
from router.settings import load_settings

SAMPLE_MODELS = REPO_ROOT / "models.sample.json"


def run(host: str, port: int) -> int:
    configure_logging()
    # uvicorn re-raises SIGTERM after shutting down; make that unwind through ``finally`` so the Azurite
    # child is stopped too instead of being orphaned.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    azurite: Azurite | None = None
    env = os.environ
    # Local only: the simulator (or a loopback proxy) may receive the token; Azure never sets this.
    env.setdefault("ALLOW_LOOPBACK_ENDPOINTS", "true")
    if not env.get("TABLES_CONNECTION_STRING") and not env.get("TABLES_ENDPOINT"):
        workdir = str(REPO_ROOT / ".azurite")
        azurite = Azurite(port=int(env.get("AZURITE_TABLE_PORT", "10002")), workdir=workdir).start()
        env["TABLES_CONNECTION_STRING"] = azurite.connection_string
        print(f"Azurite Table service on {azurite.endpoint} (data in {workdir})")
    try:
        return asyncio.run(_serve(host, port))
    except KeyboardInterrupt:
        return 0
    finally:
        if azurite is not None:
            azurite.stop()


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _serve(host: str, port: int) -> int:
    servers: list[uvicorn.Server] = []
    runtime_kwargs: dict[str, Any] = {}
    simulated = not os.environ.get("AZURE_OPENAI_ENDPOINT")
    if simulated:
        sim_port = int(os.environ.get("SIMULATOR_PORT", str(port + 1)))
        sim = Simulator(reasoning_deployments={m.deployment for m in load_file(SAMPLE_MODELS) if m.reasoning})
        sim.keep_seen = False
        os.environ["AZURE_OPENAI_ENDPOINT"] = f"http://127.0.0.1:{sim_port}"
        # The simulator cannot judge difficulty: with the judge on, its made-up numbers would override
        # the scorer in the judge band, and what a newcomer sees would not be what the scorer decides.
        os.environ.setdefault("JUDGE_ENABLED", "false")
        servers.append(_server(sim.app, host, sim_port))
        runtime_kwargs["credential"] = SimulatorCredential()

    settings = load_settings()
    models = await read_models(settings)
    if not models:
        models = load_file(SAMPLE_MODELS)
        await upsert_models(settings, models)
        print(f"Seeded the models table from {Path(SAMPLE_MODELS).name}")
    if simulated:
        # Each deployment answers in about its model's avg_latency_ms (±20%), as in Azure.
        sim.latency_ms.update({m.deployment: m.avg_latency_ms for m in models})
    app = create_app(Runtime(settings, **runtime_kwargs))
    servers.append(_server(app, host, port))

    if simulated:
        print("\n" + "!" * 78)
        print("!! No AZURE_OPENAI_ENDPOINT set: answers come from the LOCAL SIMULATOR, not a real model.")
        print(f"!! Simulated Azure OpenAI on {os.environ['AZURE_OPENAI_ENDPOINT']}")
        print("!! Simulated latency: each model's avg_latency_ms, jittered ±20%.")
        if not settings.JUDGE_ENABLED:
            print("!! LLM judge OFF (the simulator cannot judge): routing uses the scorer alone.")
            print("!! Set JUDGE_ENABLED=true to call the simulated judge anyway.")
        print("!" * 78)
    body = '{"query": "Explain how binary search works and then write it in Python"}'
    print(f"\nRouter on http://{host}:{port}  (OpenAPI docs: http://{host}:{port}/api/docs)")
    print(f"Scorer: {settings.CLASSIFIER}; judge {'on' if settings.JUDGE_ENABLED else 'off'}")
    print(f"Try:\n  curl -s http://{host}:{port}/api/route -d {shlex.quote(body)}\n")
    await asyncio.gather(*(s.serve() for s in servers))
    return 0


def _server(app: Any, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
