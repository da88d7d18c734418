"""Loopback servers for the benchmarks, each started in its own process by the bench scripts.

python -m bench.servers sim --port P
    The Azure OpenAI simulator (zero delay, ``keep_seen = False``) plus an App Service style
    managed-identity token endpoint at ``/msi/token`` (for the cold-start run, which uses the real
    ``function_app`` with ``ManagedIdentityCredential``).

python -m bench.servers router --port P
    ``create_app(Runtime(load_settings(), credential=SimulatorCredential()))`` under uvicorn with
    its defaults (uvloop and httptools when installed, as ``python -m router serve``); settings from
    the environment, so variants (``UPSTREAM_CLIENT=aiohttp``, ``COST_WRITE_MODE=inline``) are
    just environment variables. Shipped code only, except ``--discard-cost-records``: a bench-only
    patch that drops cost records, used by ``bench_write_share.py`` to measure what writing them costs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import uvicorn

from bench.common import MSI_HEADER


def sim_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from router.dev.simulator import Simulator

    sim = Simulator()
    sim.keep_seen = False

    async def msi_token(request: Request) -> JSONResponse:
        if request.headers.get("x-identity-header") != MSI_HEADER:
            return JSONResponse({"error": "bad identity header"}, status_code=401)
        resource = request.query_params.get("resource") or ""
        return JSONResponse(
            {
                "access_token": "bench-msi-token-" + "x" * 32,
                "expires_on": str(int(time.time()) + 3600),
                "resource": resource,
                "token_type": "Bearer",
            }
        )

    return Starlette(routes=[Route("/msi/token", msi_token, methods=["GET"]), Mount("/", app=sim.app)])


def router_app(**overrides: str) -> Any:
    """The shipped app with settings from the environment plus ``overrides`` (e.g. UPSTREAM_CLIENT)."""
    import os

    from router.api.app import create_app
    from router.dev.credential import SimulatorCredential
    from router.runtime import Runtime
    from router.settings import load_settings

    settings = load_settings({"ALLOW_LOOPBACK_ENDPOINTS": "true", **os.environ, **overrides})
    return create_app(Runtime(settings, credential=SimulatorCredential()))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["sim", "router"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--discard-cost-records",
        action="store_true",
        help="BENCH-ONLY PATCH (bench_write_share.py): drop every cost record instead of writing it, to "
        "measure what the writes cost; never a shipped behaviour",
    )
    args = parser.parse_args()
    if args.discard_cost_records:
        from router.costs.recorder import CostRecorder

        CostRecorder.submit = lambda self, rec: None  # type: ignore[method-assign]
    app = sim_app() if args.kind == "sim" else router_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
