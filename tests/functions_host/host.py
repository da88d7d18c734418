"""A small fake Functions host: the gRPC server side of FunctionRpc.EventStream, a worker process it
starts, and an HTTP front that does what the host does for an HTTP-streams worker.

What it does like the host (Azure/azure-functions-host): starts the worker with the host's arguments and
the app settings as environment, expects StartStream, sends WorkerInitRequest (function app directory),
FunctionsMetadataRequest, one FunctionLoadRequest per indexed function, and InvocationRequests. For HTTP
it checks the function key (AuthLevel.FUNCTION: ``x-functions-key`` header or ``code`` query, else 401
before any invocation), sends the InvocationRequest with the trigger's RpcHttp (method, URL, headers,
query, route parameters; the body travels on the proxied request) and forwards the HTTP request itself,
with ``x-ms-invocation-id``, to the ``HttpUri`` the worker announced in its init response, relaying the
worker's response back chunk by chunk.

A worker without HTTP streams (no ``HttpUri``) gets the classic round trip instead: the body in the
RpcHttp, the whole response in the InvocationResponse (used to show what the former AsgiFunctionApp did).

What it does not do (the gaps, also in README "Under the real Python worker"): no extension bundle (the
timer is invoked directly, not scheduled; no singleton lease), no function-key store (one fixed key), no
placeholder specialisation (FunctionEnvironmentReloadRequest), no worker restarts, no shared memory.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx2
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.functions_host.rpc import ROOT, WORKER_LIB, protos
from tests.support import ThreadServer

_STOP = object()
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}


class HostError(AssertionError):
    pass


class FakeHost:
    def __init__(self, app_settings: dict[str, str], function_key: str, app_dir: Path = ROOT) -> None:
        self.app_dir = app_dir
        self.app_settings = app_settings
        self.function_key = function_key
        self.request_id = uuid.uuid4().hex
        self.worker_id = uuid.uuid4().hex
        self.outbox: queue.Queue[Any] = queue.Queue()
        self.waiters: dict[str, queue.Queue[Any]] = {}
        self.lock = threading.Lock()
        self.logs: list[Any] = []
        self.invocations: dict[str, Any] = {}
        self.answered_at: dict[str, float] = {}  # invocation id -> time.monotonic() of its response
        self.requested: list[str] = []  # every invocation id sent, in order
        self.functions: dict[str, Any] = {}  # name -> RpcFunctionMetadata
        self.http_uri: str | None = None
        self.server: grpc.Server | None = None
        self.front: ThreadServer | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_log = Path(os.environ.get("TMPDIR", "/tmp")) / f"functions-worker-{self.worker_id}.log"
        self._client: httpx2.AsyncClient | None = None
        self.started_s = 0.0  # process start to StartStream

    # --- gRPC: the host's side of FunctionRpc.EventStream -------------------------------------------
    def EventStream(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        threading.Thread(target=self._read, args=(request_iterator,), daemon=True).start()
        while (message := self.outbox.get()) is not _STOP:
            yield message

    def _read(self, request_iterator: Iterator[Any]) -> None:
        try:
            for message in request_iterator:
                kind = message.WhichOneof("content")
                if kind == "rpc_log":
                    self.logs.append(message.rpc_log)
                elif kind == "invocation_response":
                    self.invocations[message.invocation_response.invocation_id] = message.invocation_response
                    self.answered_at[message.invocation_response.invocation_id] = time.monotonic()
                    self._waiter(message.invocation_response.invocation_id).put(message)
                elif kind == "function_load_response":
                    self._waiter(f"load:{message.function_load_response.function_id}").put(message)
                else:
                    self._waiter(kind).put(message)
        except grpc.RpcError:
            return

    def _waiter(self, key: str) -> queue.Queue[Any]:
        with self.lock:
            return self.waiters.setdefault(key, queue.Queue())

    def wait(self, key: str, timeout: float = 30.0) -> Any:
        try:
            return self._waiter(key).get(timeout=timeout)
        except queue.Empty:
            raise HostError(f"no {key} from the worker in {timeout} s\n{self.worker_output()}") from None

    def log_containing(self, text: str, timeout: float = 10.0) -> Any:
        """The first RpcLog whose message contains ``text``, waiting for it: logs travel on the stream
        next to the responses, and may come after the InvocationResponse they belong to."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((log for log in list(self.logs) if text in log.message), None)
            if found is not None or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def mark(self) -> set[str]:
        """Every invocation sent or answered so far, for ``invocations_after``: an earlier test's
        invocation can still be answered after this point (its HTTP response came first)."""
        return set(self.requested) | set(self.invocations)

    def invocations_after(self, before: set[str], count: int, timeout: float = 10.0) -> list[str]:
        """Ids of the invocations answered since ``before`` (``mark()``), waiting for ``count`` of them:
        under HTTP streams an InvocationResponse and the HTTP response it belongs to race each other."""
        deadline = time.monotonic() + timeout
        while True:
            new = [i for i in list(self.invocations) if i not in before]
            if len(new) >= count or time.monotonic() > deadline:
                return new
            time.sleep(0.02)

    def send(self, **content: Any) -> None:
        self.outbox.put(protos.StreamingMessage(request_id=self.request_id, **content))

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> FakeHost:
        t0 = time.monotonic()
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        protos.add_FunctionRpcServicer_to_server(self, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        env = {**os.environ, **self.app_settings}
        env.update(
            FUNCTIONS_WORKER_RUNTIME="python",
            AzureWebJobsScriptRoot=str(self.app_dir),
            # The app's directory first, as the host does; this project's root too when the app is
            # elsewhere (a control app in a temporary directory still imports router and this worker).
            PYTHONPATH=os.pathsep.join(dict.fromkeys([str(self.app_dir), str(WORKER_LIB), str(ROOT)])),
        )
        args = ["--host", "127.0.0.1", "--port", str(port), "--workerId", self.worker_id]
        args += ["--requestId", self.request_id, "--grpcMaxMessageLength", "2147483647"]
        with self.worker_log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.functions_host.worker", *args],
                cwd=self.app_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        started = self.wait("start_stream")
        if started.start_stream.worker_id != self.worker_id:
            raise HostError("StartStream named another worker")
        self.started_s = time.monotonic() - t0
        return self

    def stop(self) -> None:
        if self.front is not None:
            self.front.stop()
        self.outbox.put(_STOP)
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.server is not None:
            self.server.stop(grace=1)

    def worker_output(self) -> str:
        text = self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""
        logs = "\n".join(f"[{log.category}] {log.message}" for log in self.logs[-40:])
        return f"--- worker output ---\n{text[-6000:]}\n--- worker RpcLog (last 40) ---\n{logs}"

    # --- protocol steps -------------------------------------------------------------------------------
    def init(self) -> Any:
        self.send(
            worker_init_request=protos.WorkerInitRequest(
                host_version="4.1040.0.0",
                function_app_directory=str(self.app_dir),
                worker_directory=str(WORKER_LIB),
            )
        )
        response = self.wait("worker_init_response").worker_init_response
        self.http_uri = response.capabilities.get("HttpUri")
        return response

    def metadata(self) -> Any:
        self.send(
            functions_metadata_request=protos.FunctionsMetadataRequest(
                function_app_directory=str(self.app_dir)
            )
        )
        response = self.wait("function_metadata_response").function_metadata_response
        self.functions = {m.name: m for m in response.function_metadata_results}
        return response

    def load(self, metadata: Any) -> Any:
        self.send(
            function_load_request=protos.FunctionLoadRequest(
                function_id=metadata.function_id, metadata=metadata
            )
        )
        return self.wait(f"load:{metadata.function_id}").function_load_response

    def invoke(self, name: str, input_data: list[Any], timeout: float = 60.0) -> Any:
        invocation_id = str(uuid.uuid4())
        self.requested.append(invocation_id)
        self.send(invocation_request=self._invocation(name, invocation_id, input_data))
        return self.wait(invocation_id, timeout).invocation_response

    def invoke_timer(self, name: str, past_due: bool = False) -> Any:
        status = {
            "Last": "0001-01-01T00:00:00",
            "Next": "0001-01-01T00:00:00",
            "LastUpdated": "0001-01-01T00:00:00",
        }
        payload = json.dumps(
            {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": status, "IsPastDue": past_due}
        )
        binding = protos.ParameterBinding(
            name=self.trigger(name)["name"], data=protos.TypedData(json=payload)
        )
        return self.invoke(name, [binding])

    def trigger(self, name: str) -> dict[str, Any]:
        bindings = [json.loads(b) for b in self.functions[name].raw_bindings]
        return next(b for b in bindings if b["type"].endswith("Trigger"))

    def _invocation(self, name: str, invocation_id: str, input_data: list[Any]) -> Any:
        return protos.InvocationRequest(
            invocation_id=invocation_id, function_id=self.functions[name].function_id, input_data=input_data
        )

    # --- HTTP front: what the host's web server does for an HTTP-streams worker --------------------
    def serve_http(self, function: str = "http_app_func") -> str:
        app = Starlette(routes=[Route("/{path:path}", self._proxy_to(function), methods=_METHODS)])
        self.front = ThreadServer(app).start()
        return self.front.url

    def _proxy_to(self, function: str) -> Any:
        async def proxy(request: Request) -> Response:
            key = request.headers.get("x-functions-key") or request.query_params.get("code")
            if key != self.function_key:
                return Response(status_code=401)  # the host answers before the worker sees anything
            trigger = self.trigger(function)
            if request.method.lower() not in [m.lower() for m in trigger.get("methods", [])]:
                return Response(status_code=404)
            if self.http_uri is None:  # a worker without HTTP streams: the classic RpcHttp round trip
                return await self._classic(request, function, trigger)
            invocation_id = str(uuid.uuid4())
            rpc_http = protos.RpcHttp(
                method=request.method,
                url=str(request.url),
                headers=dict(request.headers),
                query=dict(request.query_params),
                params={"route": request.url.path.lstrip("/")},
            )
            binding = protos.ParameterBinding(name=trigger["name"], data=protos.TypedData(http=rpc_http))
            self.requested.append(invocation_id)
            self.send(invocation_request=self._invocation(function, invocation_id, [binding]))
            return await self._forward(request, invocation_id)

        return proxy

    async def _classic(self, request: Request, function: str, trigger: dict[str, Any]) -> Response:
        """Without HTTP streams the body travels in the InvocationRequest and the whole response comes
        back in the InvocationResponse's return value (what AsgiFunctionApp used)."""
        body = protos.TypedData(bytes=await request.body())
        rpc_http = protos.RpcHttp(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            query=dict(request.query_params),
            params={"route": request.url.path.lstrip("/")},
            body=body,
        )
        binding = protos.ParameterBinding(name=trigger["name"], data=protos.TypedData(http=rpc_http))
        response = await asyncio.to_thread(self.invoke, function, [binding])
        if response.result.status != 1:
            return Response(response.result.exception.message, status_code=500)
        http = response.return_value.http
        content = http.body.bytes or http.body.string.encode()
        return Response(content, status_code=int(http.status_code or 200), headers=dict(http.headers))

    async def _forward(self, request: Request, invocation_id: str) -> Response:
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=httpx2.Timeout(120.0))
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        headers.append(("x-ms-invocation-id", invocation_id))
        url = f"{self.http_uri}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        upstream = self._client.build_request(request.method, url, headers=headers, content=_body(request))
        response = await self._client.send(upstream, stream=True)
        out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
        return StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers=out,
            background=BackgroundTask(response.aclose),
        )


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE"]
