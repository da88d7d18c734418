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
    """Under the Functions host (AsgiFunctionApp) the body is delivered whole: still valid SSE."""
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
