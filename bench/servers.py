"""Loopback servers for the benchmarks, each started in its own process by the bench scripts.

python -m bench.servers sim --port P
    The Azure OpenAI simulator (zero delay, ``keep_seen = False``) plus an App Service style
    managed-identity token endpoint at ``/msi/token`` (for the cold-start run, which uses the real
    ``function_app`` with ``ManagedIdentityCredential``).

python -m bench.servers router --port P [--variant default|lean-upstream]
    ``create_app(Runtime(load_settings(), credential=SimulatorCredential()))`` under uvicorn with
    its defaults; settings from the environment.

    ``lean-upstream`` is a bench-only EXPERIMENT, not shipped code: the service's upstream call
    (``OpenAIClients.chat``, the openai SDK over httpx2) is swapped for ``LeanChat`` below (one
    aiohttp session, cached bearer token, json.dumps/json.loads), everything else unchanged. It
    measures what recommendation 1 in bench/README.md would gain.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import uvicorn

from bench.common import MSI_HEADER


def sim_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from router.simulator import Simulator

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


class LeanChat:
    """EXPERIMENT: a non-streaming chat completion over one aiohttp session.

    Success path only (a non-200 raises); enough to measure the cost of the SDK layer."""

    def __init__(self, credential_factory: Any, api_version: str) -> None:
        self._credential_factory = credential_factory
        self._api_version = api_version
        self._session: Any = None
        self._token: Any = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _bearer(self) -> str:
        from router.credentials import OPENAI_SCOPE

        if self._token is None or self._token.expires_on - time.time() < 300:
            self._token = await self._credential_factory().get_token(OPENAI_SCOPE)
        return str(self._token.token)

    async def chat(
        self, endpoint: str, deployment: str, messages: list[dict[str, Any]], timeout_s: float, **params: Any
    ) -> Any:
        import aiohttp

        from router.llm import Completion

        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={self._api_version}"
        headers = {"authorization": f"Bearer {await self._bearer()}", "content-type": "application/json"}
        body = json.dumps({"messages": messages, **params})
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.post(url, data=body, headers=headers, timeout=timeout) as resp:
            data = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"upstream HTTP {resp.status}")
        obj = json.loads(data)
        usage = obj.get("usage") or {}
        choices = obj.get("choices") or []
        text = (choices[0].get("message") or {}).get("content") if choices else None
        return Completion(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            raw=obj,
        )


EXPERIMENTS = ("lean-upstream",)


def router_app(variant: str) -> Any:
    from router.api import create_app
    from router.local.credential import SimulatorCredential
    from router.runtime import Runtime

    experiments = set() if variant == "default" else set(variant.split(","))
    unknown = experiments - set(EXPERIMENTS)
    if unknown:
        raise SystemExit(f"unknown experiment(s): {', '.join(sorted(unknown))}")

    class BenchRuntime(Runtime):
        lean: LeanChat | None = None

        async def _build(self) -> Any:
            service = await super()._build()
            if "lean-upstream" in experiments:
                if not callable(getattr(getattr(service, "clients", None), "chat", None)):
                    raise SystemExit("lean-upstream: service.clients.chat not found; drop this experiment")
                self.lean = LeanChat(self.credential, self.settings.AZURE_OPENAI_API_VERSION)
                service.clients.chat = self.lean.chat
            return service

        async def close(self) -> None:
            await super().close()
            if self.lean is not None:
                await self.lean.close()

    return create_app(BenchRuntime(credential=SimulatorCredential()))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.servers")
    parser.add_argument("kind", choices=["sim", "router"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--variant", default="default", help="default, or experiments joined by commas")
    args = parser.parse_args()
    app = sim_app() if args.kind == "sim" else router_app(args.variant)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
