"""The worker process: Microsoft's worker library (``azure_functions_runtime``) behind a gRPC client.

In Azure the host starts the Python worker with ``--host --port --workerId --requestId
--grpcMaxMessageLength``; the worker opens FunctionRpc.EventStream, says StartStream, and hands each
request to the library (``worker_init_request``, ``functions_metadata_request``,
``function_load_request``, ``invocation_request``), whose responses go back on the stream. For Python
3.13+ that transport is the "proxy worker" (workers/proxy_worker in Azure/azure-functions-python-worker),
which is not published on PyPI; this module is a stand-in for it only, written from that protocol:
every request is answered by the real library, which indexes function_app.py, loads and invokes the
functions and, with HTTP streams, runs the worker's own HTTP server. Logs go to the host as RpcLog.

Run as ``python -m tests.functions_host.worker --host 127.0.0.1 --port N --workerId W --requestId R``
from the function app's directory (the fake host does that).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from tests.functions_host.rpc import protos

_HANDLERS = {
    "worker_init_request": ("worker_init_request", "worker_init_response"),
    "functions_metadata_request": ("functions_metadata_request", "function_metadata_response"),
    "function_load_request": ("function_load_request", "function_load_response"),
    "invocation_request": ("invocation_request", "invocation_response"),
}


@dataclass
class WorkerRequest:
    """What the library reads: ``request`` (the StreamingMessage) and ``properties``."""

    name: str
    request: Any
    properties: dict[str, Any] | None = None


class RpcLogHandler(logging.Handler):
    def __init__(self, outbox: asyncio.Queue[Any], request_id: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.INFO)
        self.outbox, self.request_id, self.loop = outbox, request_id, loop

    def emit(self, record: logging.LogRecord) -> None:
        level = {
            logging.CRITICAL: protos.RpcLog.Critical,
            logging.ERROR: protos.RpcLog.Error,
            logging.WARNING: protos.RpcLog.Warning,
        }.get(record.levelno, protos.RpcLog.Information)
        log = protos.RpcLog(level=level, message=self.format(record), category=record.name)
        message = protos.StreamingMessage(request_id=self.request_id, rpc_log=log)
        self.loop.call_soon_threadsafe(self.outbox.put_nowait, message)


class Worker:
    def __init__(self, args: argparse.Namespace) -> None:
        import azure_functions_runtime

        self.library = azure_functions_runtime
        self.args = args
        self.outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()

    async def dispatch(self, message: Any) -> None:
        kind = message.WhichOneof("content")
        if kind == "worker_status_request":
            reply = protos.StreamingMessage(
                request_id=message.request_id, worker_status_response=protos.WorkerStatusResponse()
            )
            await self.outbox.put(reply)
            return
        if kind not in _HANDLERS:
            logging.getLogger("worker").error("unknown StreamingMessage content: %s", kind)
            return
        handler, response_field = _HANDLERS[kind]
        properties = {"protos": protos, "host": self.args.host} if kind == "worker_init_request" else None
        if kind == "worker_init_request":
            self.library.start_threadpool_executor()
        response = await getattr(self.library, handler)(WorkerRequest(kind, message, properties))
        await self.outbox.put(
            protos.StreamingMessage(request_id=self.args.requestId, **{response_field: response})
        )

    async def outgoing(self) -> AsyncIterator[Any]:
        while True:
            yield await self.outbox.get()

    async def run(self) -> None:
        options = [("grpc.max_receive_message_length", self.args.grpcMaxMessageLength)]
        options.append(("grpc.max_send_message_length", self.args.grpcMaxMessageLength))
        async with grpc.aio.insecure_channel(f"{self.args.host}:{self.args.port}", options) as channel:
            stub = protos.FunctionRpcStub(channel)
            start = protos.StartStream(worker_id=self.args.workerId)
            await self.outbox.put(protos.StreamingMessage(request_id=self.args.requestId, start_stream=start))
            handler = RpcLogHandler(self.outbox, self.args.requestId, asyncio.get_running_loop())
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
            async for message in stub.EventStream(self.outgoing()):
                task = asyncio.create_task(self.dispatch(message))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workerId", required=True)
    parser.add_argument("--requestId", required=True)
    parser.add_argument("--grpcMaxMessageLength", type=int, default=2_147_483_647)
    asyncio.run(Worker(parser.parse_args()).run())


if __name__ == "__main__":
    main()
