"""Loopback servers the tests talk to through the real SDKs.

- ``ThreadServer`` runs any ASGI app (the Azure OpenAI simulator, the app itself) with uvicorn.
- ``IdentityEndpoint`` is the App Service managed-identity protocol (IDENTITY_ENDPOINT + IDENTITY_HEADER),
  which the real ``ManagedIdentityCredential`` calls. This is the one thing that cannot exist here for
  real (Azure's token service); it issues unsigned JWTs that Azurite's ``--oauth basic`` accepts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from router.dev.azurite import free_port

ROOT = Path(__file__).resolve().parents[1]


class ThreadServer:
    def __init__(self, app: Any, port: int = 0, **config: Any) -> None:
        self.port = port or free_port()
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="error", access_log=False, **config
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def fake_jwt(audience: str, lifetime_s: int = 3600) -> str:
    now = int(time.time())
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "aud": audience,
        "iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
        "nbf": now - 60,
        "iat": now - 60,
        "exp": now + lifetime_s,
        "oid": str(uuid.uuid4()),
        "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
        "appid": "router-tests",
    }
    return f"{_b64(header)}.{_b64(claims)}.c2lnbmF0dXJl"


@dataclass
class TokenRequest:
    resource: str | None
    client_id: str | None
    api_version: str | None


@dataclass
class IdentityEndpoint:
    header_secret: str = field(default_factory=lambda: uuid.uuid4().hex)
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def token(request: Request) -> JSONResponse:
            if request.headers.get("x-identity-header") != self.header_secret:
                return JSONResponse({"error": "bad identity header"}, status_code=401)
            q = request.query_params
            resource = q.get("resource")
            self.requests.append(TokenRequest(resource, q.get("client_id"), q.get("api-version")))
            if not resource:
                return JSONResponse({"error": "resource required"}, status_code=400)
            tok = fake_jwt(resource)
            self.issued.append(tok)
            return JSONResponse(
                {
                    "access_token": tok,
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": q.get("client_id") or "system",
                }
            )

        return Starlette(routes=[Route("/msi/token", token, methods=["GET"])])

    def resources(self) -> set[str | None]:
        return {r.resource for r in self.requests}


class ResettingServer:
    """Accepts TCP connections and closes them at once: a connection reset, as a dying upstream does."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        import socket
        import struct

        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            # SO_LINGER 0: close sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def start(self) -> ResettingServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()


class HangingProxy:
    """A TCP proxy in front of a real server (Azurite) that can be made to hang: after ``hang()`` it
    still accepts connections and reads every byte, but answers nothing, on new and open connections
    alike. A Table endpoint that accepts and never answers is the outage the cost recorder must survive.
    With ``target_port=None`` it hangs from the start (nothing behind it)."""

    def __init__(self, target_port: int | None = None) -> None:
        import socket

        self.target_port = target_port
        self.hung = target_port is None
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._conns: list[Any] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def connection_string(self, real: str) -> str:
        """``real`` (Azurite's connection string) with its TableEndpoint pointed here."""
        return re.sub(
            r"TableEndpoint=http://127\.0\.0\.1:\d+/", f"TableEndpoint=http://127.0.0.1:{self.port}/", real
        )

    def hang(self) -> None:
        self.hung = True

    def _run(self) -> None:
        import socket

        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._conns.append(conn)
            upstream = None
            if not self.hung and self.target_port is not None:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
                self._conns.append(upstream)
                threading.Thread(target=self._pump, args=(upstream, conn), daemon=True).start()
            threading.Thread(target=self._pump, args=(conn, upstream), daemon=True).start()

    def _pump(self, src: Any, dst: Any) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                break
            if not data:
                break
            if dst is not None and not self.hung:
                try:
                    dst.sendall(data)
                except OSError:
                    break
        for s in (src, dst):
            if s is not None and not self.hung:
                with contextlib.suppress(OSError):
                    s.shutdown(2)

    def start(self) -> HangingProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close everything: requests still waiting fail at once (connection closed)."""
        self._stop = True
        self.thread.join(timeout=5)
        self.sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


# -- router processes --------------------------------------------------------------------------------
def start_router(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``python -m router serve`` in its own process, on a free port, with ``env``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}"


async def wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    """Until the process answers /api/health (or fails the test with its output if it exits)."""
    async with httpx2.AsyncClient() as http:
        for _ in range(300):
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if (await http.get(f"{url}/api/health", timeout=2)).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("router did not become ready")


# The settings a `router serve` child process takes from its test's settings (the rest: its defaults).
ROUTER_SETTINGS = ("AZURE_OPENAI_ENDPOINT", "TABLES_CONNECTION_STRING", "MODELS_TABLE", "COSTS_TABLE",
                   "HEALTH_TABLE", "COSTS_ROLLUP_TABLE", "CLASSIFIER", "JUDGE_LOW", "JUDGE_HIGH",
                   "COST_WRITE_MODE")  # fmt: skip


def router_env(settings: Any, client_id: str, **extra: str) -> dict[str, str]:
    """The environment of a `router serve` process on ``settings``' tables, upstream and scorer."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLES_", "AZURE_", "JUDGE_"))}
    env.update({k: str(getattr(settings, k)) for k in ROUTER_SETTINGS})
    env.update({"ALLOW_LOOPBACK_ENDPOINTS": "true", "AZURE_CLIENT_ID": client_id, "PYTHONUNBUFFERED": "1"})
    return {**env, **extra}


def stop_router(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
