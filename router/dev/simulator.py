"""A local stand-in for Azure OpenAI: same wire format, realistic usage, scriptable faults.

Used by the local dev run when no real endpoint is configured (answers are clearly marked as simulated)
and by the tests and benchmarks, which script replies per deployment (judge scores, 429 with
Retry-After, 500, slow replies, content filter, custom usage).

Token types as Azure reports them: a prompt that repeats a prefix of at least ``CACHE_MIN_TOKENS`` tokens
already sent to the same deployment reports that prefix (1,024 tokens, then 128-token steps) as
``usage.prompt_tokens_details.cached_tokens``; a deployment in ``reasoning_deployments`` spends hidden
reasoning tokens, counted in ``completion_tokens`` and reported as
``usage.completion_tokens_details.reasoning_tokens``.

Tools and JSON as Azure answers them (``router.dev.sim_answers``): a ``tool_calls`` answer when tools are
offered and the prompt asks for one, valid JSON for ``response_format`` ``json_object``/``json_schema``,
streamed too (tool-call deltas as OpenAI streams them). Latency: ``latency_ms`` maps a deployment to its
model's ``avg_latency_ms``; each unscripted call then takes that, jittered by ±``latency_jitter`` (20%),
and says so in ``x-simulated-latency-ms`` (a stream spends 40% before its first chunk, the rest spread
over the chunks). Empty by default (the tests stay fast); ``./scripts dev`` fills it from the catalogue.

Capacity as Azure reports it: a deployment given a ``Quota`` (``quotas``) refuses what its window cannot
take with 429 and reports ``x-ratelimit-remaining-*`` on every answer (``router.dev.quota``); every answer
names its deployment in ``x-ms-deployment-name``. A request carrying ``x-ms-spillover-deployment`` that
its deployment would refuse (429, 500, 503) is answered by that deployment instead, with
``x-ms-spillover-from-deployment`` and ``x-ms-spillover-error``, as Azure's spillover does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import time
import uuid
from collections import OrderedDict, defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from router.dev.quota import Quota
from router.dev.sim_answers import json_answer, message_text, tool_calls, tools_to_call

SIMULATED_PREFIX = "[simulated"
CACHE_MIN_TOKENS = 1024  # Azure caches prompts from 1,024 tokens, then in 128-token increments
CACHE_STEP_TOKENS = 128
CACHE_MAX_PREFIXES = 10_000  # per deployment, oldest forgotten first (a load run stays bounded)


@dataclass
class Reply:
    """One scripted reply. ``status`` != 200 sends an Azure-style error body."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_code: str | None = None
    error_message: str = "simulated failure"
    chunk_delay_s: float = 0.0  # pause between streamed chunks
    # Faults in the answer itself (a 200 that is wrong), for the cost-record and size-cap tests:
    usage: dict[str, Any] | None = None  # sent instead of the computed usage, as given (any JSON values)
    omit_usage: bool = False  # no "usage" in the answer; no usage chunk in a stream
    cut_after_chunks: int | None = None  # stream: stop after this many content chunks (no finish, no [DONE])
    omit_done: bool = False  # stream: everything but the final [DONE]
    padding_bytes: int = 0  # an extra "padding" string of this size in the answer (a huge body)
    chunked: bool = False  # send the answer without Content-Length, in 64 KiB pieces
    cached_tokens: int | None = None  # reported as cached instead of what the prompt cache would give
    reasoning_tokens: int | None = None  # a reasoning deployment's reasoning tokens (default: computed)
    # Answer with these tool calls ({"id", "function": {"name", "arguments"}}), finish_reason "tool_calls".
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class SeenRequest:
    deployment: str
    api_version: str | None
    authorization: str | None
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)  # arrival (tests order calls against responses)


def estimate_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4)) if text else 0


class Simulator:
    def __init__(
        self,
        deployments: set[str] | None = None,
        delay_s: float = 0.0,
        seed: int = 0,
        reasoning_deployments: set[str] | None = None,
        latency_ms: dict[str, float] | None = None,
    ) -> None:
        self.deployments = deployments  # None accepts any deployment name
        self.reasoning_deployments: set[str] = set(reasoning_deployments or ())
        # Per deployment: the message prefixes it has seen (hash -> their tokens), for cached_tokens.
        self._prefixes: dict[str, OrderedDict[str, int]] = defaultdict(OrderedDict)
        self.delay_s = delay_s
        # Per deployment: its model's avg_latency_ms, applied to unscripted calls (jittered, seeded).
        self.latency_ms: dict[str, float] = dict(latency_ms or {})
        self.latency_jitter = 0.2
        self._latency_rng = random.Random(seed + 1)
        # Random injected failures for load runs: this share of unscripted calls gets fault_status.
        self.fault_rate = 0.0
        self.fault_status = 500
        self.faults_injected = 0
        self._rng = random.Random(seed)
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.seen: list[SeenRequest] = []
        self.keep_seen = True
        self.quotas: dict[str, Quota] = {}
        self.answered: dict[str, int] = defaultdict(int)  # 200s per deployment that answered
        self.app = Starlette(
            routes=[
                Route("/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]),
                Route("/health", lambda _: JSONResponse({"status": "ok"}), methods=["GET"]),
            ]
        )

    def script(self, deployment: str, *replies: Reply) -> None:
        self.scripts[deployment].extend(replies)

    def reset(self) -> None:
        self.scripts.clear()
        self.quotas.clear()
        self.answered.clear()
        self.seen.clear()
        self._prefixes.clear()
        self.reasoning_deployments.clear()
        self.latency_ms.clear()
        self.fault_rate = 0.0
        self.faults_injected = 0

    def latency_s(self, deployment: str) -> float:
        """This call's simulated latency: the deployment's ``latency_ms`` ± ``latency_jitter`` (0: none)."""
        average = self.latency_ms.get(deployment, 0.0)
        if average <= 0:
            return 0.0
        jitter = self.latency_jitter
        return average * self._latency_rng.uniform(1 - jitter, 1 + jitter) / 1000

    def calls_to(self, deployment: str) -> list[SeenRequest]:
        return [s for s in self.seen if s.deployment == deployment]

    async def _chat(self, request: Request) -> Response:
        deployment = request.path_params["deployment"]
        api_version = request.query_params.get("api-version")
        auth = request.headers.get("authorization")
        if not api_version:
            return _error(404, "404", "Resource not found")
        if not auth or not auth.lower().startswith("bearer ") or len(auth) < 12:
            return _error(401, "PermissionDenied", "Access denied: missing or invalid Entra ID token")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "BadRequest", "invalid JSON")
        if self.keep_seen:
            self.seen.append(SeenRequest(deployment, api_version, auth, body))
        if self.deployments is not None and deployment not in self.deployments:
            return _error(404, "DeploymentNotFound", f"The API deployment {deployment} does not exist")
        reply, scripted = self._next_reply(deployment)
        reply = self._admitted(deployment, body, reply)
        spill = request.headers.get("x-ms-spillover-deployment")
        extra = {"x-ms-deployment-name": deployment}
        if spill and reply.status in (429, 500, 503):
            error = reply.status
            reply, scripted = self._next_reply(spill)
            reply = self._admitted(spill, body, reply)
            extra = {"x-ms-deployment-name": spill, "x-ms-spillover-from-deployment": deployment,
                     "x-ms-spillover-error": str(error)}  # fmt: skip
            deployment = spill
        latency = 0.0 if scripted else self.latency_s(deployment)
        if latency:
            reply.headers = {**reply.headers, "x-simulated-latency-ms": f"{latency * 1000:.1f}"}
        delay = reply.delay_s or self.delay_s or (latency if not body.get("stream") else 0.4 * latency)
        if delay:
            await asyncio.sleep(delay)
        if reply.status != 200:
            return _error(
                reply.status, reply.error_code or str(reply.status), reply.error_message, reply.headers
            )
        self.answered[deployment] += 1
        reply = replace(reply, headers={**reply.headers, **extra})
        return self._answer(deployment, body, reply, stream_time_s=0.6 * latency)

    def _admitted(self, deployment: str, body: dict[str, Any], reply: Reply) -> Reply:
        """``reply`` as the deployment's quota lets it through: a 429 when the window cannot take the
        request's estimate, the remaining counts on an answer."""
        quota = self.quotas.get(deployment)
        if quota is None or reply.status != 200:
            return reply
        messages = body.get("messages") or []
        output = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        estimate = sum(estimate_tokens(message_text(m)) + 4 for m in messages) + 3 + int(output)
        if not quota.admit(estimate):
            message = "Requests to the ChatCompletions_Create Operation have exceeded the token rate limit"
            return Reply(status=429, error_code="429", error_message=message, headers=quota.refusal_headers())
        return replace(reply, headers={**reply.headers, **quota.headers()})

    def _next_reply(self, deployment: str) -> tuple[Reply, bool]:
        """The scripted reply, else an injected fault (at ``fault_rate``), else the default answer; and
        whether it was scripted (a scripted reply keeps its own timing)."""
        queue = self.scripts.get(deployment)
        if queue:
            return queue.popleft(), True
        if self.fault_rate and self._rng.random() < self.fault_rate:
            self.faults_injected += 1
            return Reply(status=self.fault_status, error_message="injected fault"), False
        return Reply(), False

    def _answer(
        self, deployment: str, body: dict[str, Any], reply: Reply, stream_time_s: float = 0.0
    ) -> Response:
        messages = body.get("messages") or []
        calls = tool_calls(tools_to_call(body)) if reply.content is None else []
        if reply.tool_calls:  # scripted calls
            calls = [{"type": "function", **c} for c in reply.tool_calls]
        content = reply.content
        if content is None and not calls:
            text = self._default_answer(deployment, messages)
            content = json_answer(body.get("response_format"), text) or text
        generated = content if content is not None else json.dumps(calls)
        usage: dict[str, Any] | None = reply.usage or self._usage(deployment, body, generated, reply)
        if reply.omit_usage:
            usage = None
        cid = f"chatcmpl-sim{uuid.uuid4().hex[:20]}"
        created = int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            answer = _Streamed(content or "", calls, usage if include_usage else None, stream_time_s)
            return StreamingResponse(
                _stream(cid, created, deployment, answer, reply),
                media_type="text/event-stream",
                headers=reply.headers,
            )
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop",
                  "logprobs": None}  # fmt: skip
        payload = {"id": cid, "object": "chat.completion", "created": created, "model": deployment,
                   "choices": [choice], "system_fingerprint": "fp_simulated"}  # fmt: skip
        if usage is not None:
            payload["usage"] = usage
        if reply.padding_bytes:
            payload["padding"] = "x" * reply.padding_bytes
        if reply.chunked:
            data = json.dumps(payload).encode()
            pieces = (data[i : i + 65536] for i in range(0, len(data), 65536))
            return StreamingResponse(_pieces(pieces), media_type="application/json", headers=reply.headers)
        return JSONResponse(payload, headers=reply.headers)

    def _usage(self, deployment: str, body: dict[str, Any], content: str, reply: Reply) -> dict[str, Any]:
        """Counts estimated from the text, tool definitions included (or scripted), with the token-type
        details when there are any."""
        messages = body.get("messages") or []
        cached = self._cached(deployment, messages)
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(estimate_tokens(message_text(m)) + 4 for m in messages) + 3
            if body.get("tools"):
                prompt_tokens += estimate_tokens(json.dumps(body["tools"]))
        cached = min(prompt_tokens, cached if reply.cached_tokens is None else reply.cached_tokens)
        visible = estimate_tokens(content)
        reasoning = 0
        if deployment in self.reasoning_deployments:
            reasoning = max(16, 2 * visible) if reply.reasoning_tokens is None else reply.reasoning_tokens
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = visible + reasoning
        reasoning = min(reasoning, completion_tokens)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if cached or deployment in self.reasoning_deployments:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
            usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
        return usage

    def _cached(self, deployment: str, messages: list[dict[str, Any]]) -> int:
        """Tokens of the longest message prefix this deployment has seen before, when that is at least
        ``CACHE_MIN_TOKENS`` (rounded down to Azure's 128-token steps); every prefix is remembered."""
        seen = self._prefixes[deployment]
        digest = hashlib.sha256()
        tokens = hit = 0
        for message in messages:
            digest.update(json.dumps(message, sort_keys=True, default=str).encode() + b"\n")
            tokens += estimate_tokens(message_text(message)) + 4
            key = digest.hexdigest()
            if key in seen:
                hit = tokens
                seen.move_to_end(key)
            else:
                seen[key] = tokens
                if len(seen) > CACHE_MAX_PREFIXES:
                    seen.popitem(last=False)
        if hit < CACHE_MIN_TOKENS:
            return 0
        return CACHE_MIN_TOKENS + (hit - CACHE_MIN_TOKENS) // CACHE_STEP_TOKENS * CACHE_STEP_TOKENS

    @staticmethod
    def _default_answer(deployment: str, messages: list[dict[str, Any]]) -> str:
        system = next((message_text(m) for m in messages if m.get("role") == "system"), "")
        last = next((message_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        if "compare two answers" in system:
            # A plausible pairwise judge: the longer answer wins, equal lengths tie. Deterministic.
            a, b = (_block(last, f"answer_{x}") for x in "ab")
            return "A" if len(a) > len(b) else "B" if len(b) > len(a) else "TIE"
        if "rate how hard" in system:
            # A plausible judge: longer, code-bearing requests are harder. Deterministic.
            score = min(1.0, 0.2 + len(last) / 2000 + (0.3 if "```" in last or "def " in last else 0.0))
            return f"{score:.2f}"
        words = last.split()
        topic = " ".join(words[:12]) + ("…" if len(words) > 12 else "")
        return (
            f"{SIMULATED_PREFIX} answer from deployment '{deployment}'] This is a simulated reply to: "
            f"{topic!r}. Configure AZURE_OPENAI_ENDPOINT to get real answers."
        )


async def _pieces(pieces: Any) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _block(text: str, name: str) -> str:
    """The text of the ``<name-token>`` … ``</name-token>`` block of a judge prompt (empty if none)."""
    match = re.search(rf"<{name}-([0-9a-f]+)>\n(.*?)\n</{name}-\1>", text, re.S)
    return match.group(2) if match else ""


@dataclass(frozen=True, slots=True)
class _Streamed:
    """What a stream carries: text or tool calls, the usage chunk (None: not asked for) and how long the
    chunks take in all (the simulated latency after the first one)."""

    content: str
    calls: list[dict[str, Any]]
    usage: dict[str, Any] | None
    time_s: float = 0.0


def _pieces_of(answer: _Streamed) -> list[dict[str, Any]]:
    """The deltas after the role chunk: one per word of text, or per tool call its header (id, name, empty
    arguments) then its arguments in 16-character pieces, as OpenAI streams them."""
    if not answer.calls:
        words = answer.content.split(" ")
        return [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(answer.calls):
        head = {"index": index, "id": call["id"], "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
        deltas.append({"tool_calls": [head]})
        arguments = call["function"]["arguments"]
        for at in range(0, len(arguments), 16):
            piece = {"index": index, "function": {"arguments": arguments[at : at + 16]}}
            deltas.append({"tool_calls": [piece]})
    return deltas


async def _stream(
    cid: str, created: int, model: str, answer: _Streamed, reply: Reply
) -> AsyncIterator[bytes]:
    """The answer as Chat Completions chunks: role, the pieces, finish, usage (when asked for and not
    omitted), [DONE]; ``reply`` can cut it short, drop [DONE], pad it or slow it down."""

    def chunk(choices: list[dict[str, Any]], usage_: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created,
                               "model": model, "choices": choices}  # fmt: skip
        if usage_ is not None:
            obj["usage"] = usage_
        if reply.padding_bytes:
            obj["padding"] = "x" * reply.padding_bytes
        return f"data: {json.dumps(obj)}\n\n".encode()

    def delta(d: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": d, "finish_reason": finish}]

    pieces = _pieces_of(answer)
    pause = max(reply.chunk_delay_s, answer.time_s / max(1, len(pieces)))
    yield chunk(delta({"role": "assistant", "content": None if answer.calls else ""}))
    for i, piece in enumerate(pieces):
        if reply.cut_after_chunks is not None and i >= reply.cut_after_chunks:
            return  # the connection ends here: no finish_reason, no usage, no [DONE]
        yield chunk(delta(piece))
        await asyncio.sleep(pause)
    yield chunk(delta({}, "tool_calls" if answer.calls else "stop"))
    if answer.usage is not None:
        yield chunk([], answer.usage)
    if not reply.omit_done:
        yield b"data: [DONE]\n\n"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
