"""The OpenAI-compatible endpoint, driven by the official OpenAI SDK against the app on a loopback port,
with the simulator as the Azure OpenAI upstream and every cost record checked in Azurite."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import openai
import pytest

from router.api.app import create_app
from router.dev.simulator import Reply
from router.runtime import Runtime
from tests.conftest import MODELS, UPSTREAM_CLIENTS, Harness
from tests.support import ThreadServer


@pytest.fixture(params=UPSTREAM_CLIENTS)
def upstream_client(request: pytest.FixtureRequest) -> str:
    """Every test here runs against both upstream clients."""
    return str(request.param)


HARD = (
    "Why does this function fail on large inputs and how do I fix it? ```def f(xs): return sorted(xs)[0]``` "
    + "Context: " + "the input is a list of integers streamed from a sensor. " * 5
)  # fmt: skip


@pytest.fixture
async def served(harness: Harness):
    """An app on a real port (its own runtime and event loop in the server thread, the harness's tables),
    so the SDK talks HTTP (and streams) to it."""
    server = ThreadServer(create_app(Runtime(harness.settings))).start()
    harness.server_url = server.url  # type: ignore[attr-defined]
    client = openai.AsyncOpenAI(
        base_url=f"{server.url}/api/v1",
        api_key="ignored-by-the-router",
        default_headers={"x-functions-key": "the-function-key"},
        max_retries=0,
    )
    yield harness, server, client
    await client.close()
    server.stop()


async def _records(h: Harness, request_id: str | None = None) -> list[dict]:
    """Stored records, once the serving app has no cost-record write in flight."""
    url = getattr(h, "server_url", None)
    if url:
        async with httpx2.AsyncClient() as http:
            for _ in range(100):
                if (await http.get(f"{url}/api/health")).json()["pending_cost_records"] == 0:
                    break
                await asyncio.sleep(0.05)
    rows = await h.costs()
    return [r for r in rows if request_id is None or r["request_id"] == request_id]


async def test_auto_routes_and_returns_a_real_chat_completion(served):
    h, _, client = served
    h.simulator.script("dep-small", Reply(content="Paris.", prompt_tokens=20_000, completion_tokens=10_000))
    raw = await client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        extra_headers={"x-request-id": "chat-1"},
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "small"
    assert completion.choices[0].message.content == "Paris."
    assert completion.usage.prompt_tokens == 20_000 and completion.usage.completion_tokens == 10_000
    assert raw.headers["x-router-model"] == "small"
    assert raw.headers["x-router-classifier"] == "heuristic"
    assert float(raw.headers["x-router-complexity"]) == pytest.approx(0.03, abs=1e-4)
    # 20k × 0.00015/1k + 10k × 0.0006/1k = 0.003 + 0.006
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(0.009)
    assert raw.headers["x-request-id"] == "chat-1"
    [rec] = await _records(h, "chat-1")
    assert rec["api"] == "chat" and rec["model"] == "small"
    assert rec["cost_usd"] == pytest.approx(0.009)
    assert rec["baseline_cost_usd"] == pytest.approx(20 * 0.002 + 10 * 0.008)
    sent = h.simulator.calls_to("dep-small")[0]
    assert sent.authorization.startswith("Bearer ey")  # the managed-identity token, not the caller's key
    assert "ignored-by-the-router" not in sent.authorization


async def test_pinned_model_is_used_and_costed(served):
    h, _, client = served
    completion = await client.chat.completions.create(
        model="large", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "pin-1"}
    )
    assert completion.model == "large"
    [rec] = await _records(h, "pin-1")
    assert rec["model"] == "large" and rec["classifier"] == "pinned"
    assert rec["cost_usd"] == pytest.approx(
        completion.usage.prompt_tokens / 1000 * 0.002 + completion.usage.completion_tokens / 1000 * 0.008
    )


async def test_unknown_model_is_404_in_openai_shape(served):
    _, _, client = served
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "model_not_found"
    assert info.value.body["param"] == "model"
    assert info.value.body["type"] == "invalid_request_error"


async def test_bad_parameters_are_400_naming_the_parameter(served):
    h, _, client = served
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], extra_body={"temprature": 0.2}
        )
    assert info.value.body["param"] == "temprature"
    assert "unrecognized" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], temperature=7
        )
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="auto", messages=[])
    assert h.simulator.seen == []


async def test_a_parameter_the_deployment_refuses_is_a_clear_400(served):
    h, _, client = served
    h.simulator.script(
        "dep-small",
        Reply(
            status=400, error_code="unsupported_parameter", error_message="Unsupported parameter: 'logprobs'"
        ),
    )
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=2
        )
    assert "Unsupported parameter: 'logprobs'" in info.value.message
    assert not h.simulator.calls_to("dep-medium")  # the caller's mistake is not retried elsewhere


async def test_parameters_and_tools_pass_through_unchanged(served):
    h, _, client = served
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    await client.chat.completions.create(
        model="auto",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        ],
        tools=tools,
        tool_choice="auto",
        temperature=0.3,
        top_p=0.9,
        max_completion_tokens=50,
        stop=["\n\n"],
        seed=7,
        user="u-1",
        response_format={"type": "text"},
    )
    sent = h.simulator.seen[-1].body
    assert sent["tools"] == tools and sent["tool_choice"] == "auto"
    assert (sent["temperature"], sent["top_p"], sent["max_completion_tokens"]) == (0.3, 0.9, 50)
    assert (sent["stop"], sent["seed"], sent["user"]) == (["\n\n"], 7, "u-1")
    assert sent["response_format"] == {"type": "text"}
    assert sent["messages"][1]["content"] == [{"type": "text", "text": "Weather in Oslo?"}]
    assert "router" not in sent and sent.get("model") == "dep-small"


async def test_tool_results_are_relayed_in_multi_turn(served):
    h, _, client = served
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    }
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'},
    ]
    await client.chat.completions.create(model="auto", messages=messages)
    sent = h.simulator.seen[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'}


async def test_routing_sees_the_conversation_not_just_the_last_turn(served):
    _, _, client = served
    follow_up = {"role": "user", "content": "ok, now make it faster"}
    alone = await client.chat.completions.create(model="auto", messages=[follow_up])
    assert alone.model == "small"
    conversation = [
        {"role": "system", "content": "You are a senior engineer. Explain why, and compare approaches."},
        {"role": "user", "content": HARD},
        {
            "role": "assistant",
            "content": "It sorts the whole list: O(n log n). Use min() instead and then...",
        },
        follow_up,
    ]
    in_context = await client.chat.completions.create(model="auto", messages=conversation)
    assert in_context.model == "large"


async def test_models_too_small_for_the_prompt_are_ruled_out(harness_factory):
    tiny = MODELS[0].model_copy(update={"context_window": 100})
    h = await harness_factory(models=[tiny, *MODELS[1:]])
    long_msg = "word " * 400  # ~2000 chars ≈ 570 tokens > 100
    r = await h.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": [
        {"role": "user", "content": "Summarise: " + long_msg}]})  # fmt: skip
    assert r.status_code == 200
    assert r.json()["model"] != "small"
    huge = "x" * 4_000_000  # ≈ 1.1M tokens: beyond every window
    r = await h.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": [
        {"role": "user", "content": huge}]})  # fmt: skip
    assert r.status_code in (400, 413)
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "context_length_exceeded"


async def test_constraints_from_extra_body_and_from_headers(served):
    _, _, client = served
    msgs = [{"role": "user", "content": "hi"}]
    unconstrained = await client.chat.completions.create(model="auto", messages=msgs)
    assert unconstrained.model == "small"
    via_body = await client.chat.completions.create(
        model="auto", messages=msgs, extra_body={"router": {"max_cost_per_1k": 0.0001}}
    )
    assert via_body.model == "large"  # nothing that cheap: the most capable model answers
    via_header = await client.chat.completions.with_raw_response.create(
        model="auto", messages=msgs, extra_headers={"x-router-max-latency-ms": "900"}
    )
    assert via_header.parse().model == "small"
    slow_only = await client.chat.completions.create(
        model="auto", messages=msgs, extra_headers={"x-router-max-cost-per-1k": "0.0001"}
    )
    assert slow_only.model == "large"
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=msgs, extra_headers={"x-router-max-latency-ms": "soon"}
        )
    assert info.value.body["param"] == "x-router-max-latency-ms"


async def test_streaming_without_usage_chunk_still_records_exact_usage(served):
    h, _, client = served
    h.simulator.script(
        "dep-small", Reply(content="one two three four", prompt_tokens=111, completion_tokens=22)
    )
    stream = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "count"}], stream=True,
        extra_headers={"x-request-id": "stream-1"},
    )  # fmt: skip
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    assert all(c.model == "small" for c in chunks)
    assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    assert h.simulator.seen[-1].body["stream_options"] == {"include_usage": True}  # the router always does
    [rec] = await _records(h, "stream-1")
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (111, 22)
    assert rec["status"] == "ok"
    assert rec["cost_usd"] == pytest.approx(0.111 * 0.00015 + 0.022 * 0.0006)


async def test_streaming_with_usage_delivers_the_usage_chunk(served):
    h, _, client = served
    h.simulator.script("dep-small", Reply(content="a b", prompt_tokens=5, completion_tokens=2))
    stream = await client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = [c async for c in stream]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 7


async def test_raw_sse_ends_with_done(served):
    _, server, _ = served
    async with httpx2.AsyncClient() as http:
        r = await http.post(f"{server.url}/api/v1/chat/completions", json={
            "model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-router-model"] == "small"
    events = [line for line in r.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0].removeprefix("data: "))["object"] == "chat.completion.chunk"


async def test_client_disconnect_mid_stream_still_records_tokens(served):
    h, server, _ = served
    words = " ".join(f"w{i}" for i in range(200))
    h.simulator.script("dep-small", Reply(content=words, chunk_delay_s=0.02))
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{server.url}/api/v1/chat/completions"
    async with (
        httpx2.AsyncClient() as http,
        http.stream("POST", url, headers={"x-request-id": "gone-1"}, json=body) as r,
    ):
        received = 0
        async for _ in r.aiter_bytes():
            received += 1
            if received >= 5:
                break  # the caller goes away mid-stream
    deadline = time.monotonic() + 10
    while not await _records(h, "gone-1"):
        assert time.monotonic() < deadline, "no cost record after the disconnect"
        await asyncio.sleep(0.1)
    [rec] = await _records(h, "gone-1")
    assert rec["status"] == "error" and rec["error_code"] == "client_disconnected"
    assert 0 < rec["completion_tokens"] < 200  # what was generated before the disconnect, estimated
    assert rec["prompt_tokens"] > 0 and rec["cost_usd"] > 0


async def test_models_list_in_openai_shape(served):
    _, _, client = served
    page = await client.models.list()
    assert [m.id for m in page.data] == ["auto", "small", "medium", "large"]


async def test_fallback_applies_to_chat_too(served):
    h, _, client = served
    h.simulator.script("dep-small", Reply(status=429, headers={"retry-after": "5"}))
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.parse().model == "medium"
    assert raw.headers["x-router-model"] == "medium"


async def test_stream_through_the_deployed_function_path_is_complete_sse(harness: Harness):
    """Through ``func.AsgiFunctionApp``'s buffering bridge (the deployed path before HTTP streams, still
    what a host without HTTP streams would do) the body is delivered whole: still valid SSE."""
    import azure.functions as func
    from azure.functions._http_asgi import AsgiMiddleware

    middleware = AsgiMiddleware(harness.app)
    body = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    req = func.HttpRequest(
        method="POST",
        url="https://fn.example/api/v1/chat/completions",
        headers={"content-type": "application/json"},
        body=json.dumps(body).encode(),
    )
    resp = await middleware.handle_async(req)
    text = resp.get_body().decode()
    assert resp.status_code == 200
    assert text.rstrip().endswith("data: [DONE]")
    assert text.count("chat.completion.chunk") >= 3


# -- issue 13: every paid call has one correct record --------------------------------------------------

COUNT = [{"role": "user", "content": "count to four"}]
PROMPT_ESTIMATE = 11  # estimate_prompt_tokens(COUNT): ceil(13 / 3.5) + 4 + 3 (asserted below)
SMALL_IN, SMALL_OUT, LARGE_IN, LARGE_OUT = 0.00015, 0.0006, 0.002, 0.008


def _cost(prompt: int, completion: int, per_in: float = SMALL_IN, per_out: float = SMALL_OUT) -> float:
    return prompt / 1000 * per_in + completion / 1000 * per_out


def _assert_record(rec: dict, prompt: int, completion: int, *, estimated: bool, status: str = "ok") -> None:
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (prompt, completion)
    assert rec["usage_estimated"] is estimated
    assert rec["status"] == status
    assert rec["cost_usd"] == pytest.approx(_cost(prompt, completion), abs=1e-9)
    assert rec["baseline_cost_usd"] == pytest.approx(_cost(prompt, completion, LARGE_IN, LARGE_OUT), abs=1e-9)


def test_prompt_estimate_of_the_fixture():
    from router.chat.conversation import estimate_prompt_tokens

    assert estimate_prompt_tokens(COUNT) == PROMPT_ESTIMATE


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"usage": {"prompt_tokens": "lots", "completion_tokens": "many"}}, id="not-a-number"),
        pytest.param({"usage": {"prompt_tokens": None, "completion_tokens": None}}, id="null-counts"),
        pytest.param({"omit_usage": True}, id="absent"),
    ],
)
async def test_invalid_or_missing_usage_is_estimated_and_flagged_not_a_500_or_free(served, fault):
    h, _, client = served
    h.simulator.script("dep-small", Reply(content="one two three four", **fault))  # 18 chars: 5 tokens
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=COUNT, extra_headers={"x-request-id": "usage-1"}
    )
    assert raw.parse().choices[0].message.content == "one two three four"  # the upstream payload, as sent
    [rec] = await _records(h, "usage-1")
    _assert_record(rec, PROMPT_ESTIMATE, 5, estimated=True)
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(_cost(PROMPT_ESTIMATE, 5), abs=1e-9)


async def test_valid_usage_is_exact_and_not_flagged(served):
    h, _, client = served
    h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=1234, completion_tokens=56))
    await client.chat.completions.create(model="auto", messages=COUNT, extra_headers={"x-request-id": "u-2"})
    [rec] = await _records(h, "u-2")
    _assert_record(rec, 1234, 56, estimated=False)


async def test_streamed_usage_with_null_counts_is_recorded_estimated_and_the_stream_completes(served):
    h, _, client = served
    nulls = {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}
    h.simulator.script("dep-small", Reply(content="one two three four", usage=nulls))
    stream = await client.chat.completions.create(
        model="auto", messages=COUNT, stream=True, extra_headers={"x-request-id": "null-1"}
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two three four"
    [rec] = await _records(h, "null-1")
    _assert_record(rec, PROMPT_ESTIMATE, 5, estimated=True)


async def _raw_stream(server: ThreadServer, rid: str, **extra) -> tuple[list[str], float]:
    """The SSE events of one streamed call (raw, as any client sees them) and how long it took."""
    body = {"model": "auto", "stream": True, "messages": COUNT, **extra}
    started = time.monotonic()
    async with httpx2.AsyncClient(timeout=60) as http:
        r = await http.post(f"{server.url}/api/v1/chat/completions", json=body, headers={"x-request-id": rid})
    assert r.status_code == 200
    return [e for e in r.text.split("\n\n") if e], time.monotonic() - started


def _error_event(events: list[str]) -> dict:
    assert "data: [DONE]" not in events
    return json.loads(events[-1].removeprefix("data: "))["error"]


@pytest.mark.parametrize(
    ("reply", "completion", "estimated"),
    [
        pytest.param(Reply(content="one two three four", cut_after_chunks=2), 2, True, id="cut-mid-answer"),
        pytest.param(
            Reply(content="one two three four", omit_done=True, completion_tokens=4),
            4,
            False,
            id="cut-before-done",
        ),
    ],
)
async def test_a_cut_stream_is_an_error_event_not_done_and_recorded_incomplete(
    served, reply, completion, estimated
):
    h, server, client = served
    h.simulator.script("dep-small", reply)
    events, _ = await _raw_stream(server, "cut-1")
    assert _error_event(events)["code"] == "stream_incomplete"
    [rec] = await _records(h, "cut-1")
    assert rec["error_code"] == "stream_incomplete"
    prompt = PROMPT_ESTIMATE if estimated else rec["prompt_tokens"]
    _assert_record(rec, prompt, completion, estimated=estimated, status="error")
    h.simulator.script("dep-small", reply)  # the OpenAI SDK raises on the error event
    stream = await client.chat.completions.create(model="auto", messages=COUNT, stream=True)
    with pytest.raises(openai.APIError, match="ended before the answer"):
        async for _ in stream:
            pass


@pytest.mark.parametrize("how", ["REQUEST_TIMEOUT_S", "max_latency_ms"])
async def test_a_trickling_stream_stops_at_the_request_deadline(harness_factory, how):
    settings = {"REQUEST_TIMEOUT_S": 1.5} if how == "REQUEST_TIMEOUT_S" else {}
    h = await harness_factory(**settings)
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    h.server_url = server.url  # type: ignore[attr-defined]
    try:
        words = " ".join(f"w{i}" for i in range(100))  # 100 chunks, 0.1 s apart: 10 s in all
        h.simulator.script("dep-small", Reply(content=words, chunk_delay_s=0.1))
        extra = {"router": {"max_latency_ms": 1500}} if how == "max_latency_ms" else {}
        events, took = await _raw_stream(server, "trickle-1", **extra)
        assert 1.4 < took < 3.5
        assert _error_event(events)["code"] == "deadline"
        [rec] = await _records(h, "trickle-1")
        assert rec["error_code"] == "deadline" and rec["status"] == "error"
        assert 1 <= rec["completion_tokens"] <= 17  # w0..w~15 at most: 3 to 4 characters each, estimated
        _assert_record(rec, PROMPT_ESTIMATE, rec["completion_tokens"], estimated=True, status="error")
    finally:
        server.stop()


async def test_a_silent_stream_stops_at_the_idle_timeout(harness_factory):
    h = await harness_factory(STREAM_IDLE_TIMEOUT_S=0.3)
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    h.server_url = server.url  # type: ignore[attr-defined]
    try:
        h.simulator.script("dep-small", Reply(content="one two three", chunk_delay_s=2))
        events, took = await _raw_stream(server, "idle-1")
        assert took < 1.5
        assert _error_event(events)["code"] == "stream_idle_timeout"
        [rec] = await _records(h, "idle-1")
        assert rec["error_code"] == "stream_idle_timeout" and rec["usage_estimated"] is True
    finally:
        server.stop()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_upstream_answer_over_max_upstream_bytes_is_a_clear_502(harness_factory, chunked):
    h = await harness_factory(MAX_UPSTREAM_BYTES=65536)
    h.simulator.script("dep-small", Reply(content="ok", padding_bytes=100_000, chunked=chunked))
    r = await h.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": COUNT},
                            headers={"x-request-id": "big-1"})  # fmt: skip
    assert r.status_code == 502
    error = r.json()["error"]
    assert error["code"] == "upstream_response_too_large" and "MAX_UPSTREAM_BYTES" in error["message"]
    assert len(r.content) < 1000
    assert len(h.simulator.seen) == 1  # not retried on another model: the same request, the same answer
    [rec] = await _records(h, "big-1")
    assert rec["error_code"] == "response_too_large"
    # Generated and billed but never read: priced at its bound (the prompt's estimate, every output token
    # the call allowed: MAX_OUTPUT_TOKENS here), flagged as an estimate.
    _assert_record(rec, PROMPT_ESTIMATE, 32768, estimated=True, status="error")


async def test_an_upstream_stream_over_max_upstream_bytes_ends_in_an_error_event(harness_factory):
    h = await harness_factory(MAX_UPSTREAM_BYTES=65536)
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    h.server_url = server.url  # type: ignore[attr-defined]
    try:
        h.simulator.script("dep-small", Reply(content=" ".join(["w"] * 100), padding_bytes=4000))
        events, _ = await _raw_stream(server, "bigs-1")
        assert _error_event(events)["code"] == "response_too_large"
        assert sum(len(e) for e in events) < 80_000
        [rec] = await _records(h, "bigs-1")
        assert rec["error_code"] == "response_too_large" and rec["usage_estimated"] is True
    finally:
        server.stop()


# -- issue 13: bill limits -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["auto", "large"])
async def test_n_above_max_choices_is_a_400_naming_n(served, model):
    h, _, client = served
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model=model, messages=COUNT, n=5)
    assert info.value.body["param"] == "n" and "MAX_CHOICES" in info.value.message
    await client.chat.completions.create(model=model, messages=COUNT, n=4)
    assert [s.body["n"] for s in h.simulator.seen] == [4]


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_output_tokens_above_the_limit_are_a_400_on_a_pinned_model(served, param):
    h, _, client = served
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="large", messages=COUNT, **{param: 2147483647})
    assert info.value.body["param"] == param and "MAX_OUTPUT_TOKENS" in info.value.message
    assert h.simulator.seen == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_output_tokens_above_the_limit_are_clamped_on_auto_and_named_in_a_header(served, param, stream):
    h, _, client = served
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=COUNT, stream=stream, **{param: 2147483647}
    )
    assert raw.headers["x-router-dropped-params"] == param
    assert h.simulator.seen[-1].body[param] == 32768
    await client.chat.completions.with_raw_response.create(model="auto", messages=COUNT, max_tokens=32768)
    assert h.simulator.seen[-1].body["max_tokens"] == 32768


async def test_both_output_limits_clamped_are_listed_comma_separated(harness: Harness):
    body = {"model": "auto", "messages": COUNT, "max_tokens": 40_000, "max_completion_tokens": 50_000}
    r = await harness.client.post("/api/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert r.headers["x-router-dropped-params"] == "max_tokens,max_completion_tokens"
    sent = harness.simulator.seen[-1].body
    assert (sent["max_tokens"], sent["max_completion_tokens"]) == (32768, 32768)
    plain = await harness.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": COUNT})
    assert "x-router-dropped-params" not in plain.headers


async def test_a_stream_refused_by_the_first_model_falls_back_and_completes(served):
    h, server, _ = served
    h.simulator.script("dep-small", Reply(status=429, headers={"retry-after": "5"}))
    h.simulator.script("dep-medium", Reply(content="a b", prompt_tokens=7, completion_tokens=2))
    events, _ = await _raw_stream(server, "fb-1")
    assert events[-1] == "data: [DONE]"
    [rec] = await _records(h, "fb-1")
    assert rec["model"] == "medium" and rec["fallbacks"] == 1 and rec["status"] == "ok"
    assert rec["cost_usd"] == pytest.approx(0.007 * 0.0004 + 0.002 * 0.0016, abs=1e-9)
