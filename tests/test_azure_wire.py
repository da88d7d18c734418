"""Azure OpenAI's wire format (issue 17 item 1), driven by the unchanged SDK clients over real HTTP.

The app is served on a loopback port (uvicorn in a thread), the simulator is the Azure OpenAI upstream and
the cost records are read back from Azurite. The SAME cases run against every client:

- ``azure-key``: ``AsyncAzureOpenAI(azure_endpoint=…, api_key=…, api_version=…)``, deployment from ``model``
- ``azure-token``: ``AsyncAzureOpenAI(azure_ad_token_provider=…)`` with the real azure-identity
  ``ManagedIdentityCredential`` against the loopback managed-identity endpoint (tests/support.py),
  through ``get_bearer_token_provider``: the SDK sends ``Authorization: Bearer <token>``
- ``openai-v1``: ``AsyncOpenAI(base_url=f"{endpoint}/openai/v1/")``, Azure's v1 API

Nothing is mocked: the only stand-in is the managed-identity endpoint, which cannot exist here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
import pytest
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from azure.identity.aio import get_bearer_token_provider as async_bearer_token_provider

from router.api.app import create_app
from router.chat.azure_wire import resolve_deployment, throttled
from router.dev.simulator import Reply
from router.errors import RouterError, UpstreamError
from router.runtime import Runtime
from tests.conftest import CLIENT_ID, MODELS, Harness
from tests.support import ThreadServer

API_VERSION = "2024-10-21"
# The caller's token is for the router, not for Azure OpenAI (under AUTH_MODE=entra: AUTH_AUDIENCE); under
# function keys and local serve the router ignores it. A scope of its own shows which requests were the SDK's.
SCOPE = "api://azure-llm-router/.default"
CLIENTS = ["azure-key", "azure-token", "openai-v1"]
CALLER_KEY = "caller-api-key-never-logged-7f3a"
HELLO = [{"role": "user", "content": "What is the capital of France?"}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
CALL = {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}


@dataclass
class Served:
    harness: Harness
    url: str

    async def records(self, request_id: str) -> list[dict[str, Any]]:
        """The stored records of one request, once the serving app has no record write in flight."""
        async with httpx2.AsyncClient() as http:
            for _ in range(100):
                if (await http.get(f"{self.url}/api/health")).json()["pending_cost_records"] == 0:
                    break
                await asyncio.sleep(0.05)
        return [r for r in await self.harness.costs() if r["request_id"] == request_id]


@pytest.fixture
async def served(harness: Harness) -> AsyncIterator[Served]:
    server = ThreadServer(create_app(Runtime(harness.settings))).start()
    yield Served(harness, server.url)
    server.stop()


def async_client(kind: str, url: str, deployment: str | None = None) -> Any:
    """The unchanged client a user would write, with only the endpoint pointing at the router."""
    if kind == "openai-v1":
        return openai.AsyncOpenAI(base_url=f"{url}/openai/v1/", api_key=CALLER_KEY, max_retries=0)
    if kind == "azure-key":
        return openai.AsyncAzureOpenAI(azure_endpoint=url, api_key=CALLER_KEY, api_version=API_VERSION,
                                       azure_deployment=deployment, max_retries=0)  # fmt: skip
    credential = AsyncManagedIdentityCredential(client_id=CLIENT_ID)
    sdk = openai.AsyncAzureOpenAI(
        azure_endpoint=url, azure_ad_token_provider=async_bearer_token_provider(credential, SCOPE),
        api_version=API_VERSION, azure_deployment=deployment, max_retries=0,
    )  # fmt: skip
    _CREDENTIALS[id(sdk)] = credential
    return sdk


_CREDENTIALS: dict[int, AsyncManagedIdentityCredential] = {}


async def close(sdk: Any) -> None:
    """Close the SDK client and, for the token client, its credential's own HTTP session."""
    await sdk.close()
    credential = _CREDENTIALS.pop(id(sdk), None)
    if credential is not None:
        await credential.close()


def sync_client(kind: str, url: str) -> Any:
    if kind == "openai-v1":
        return openai.OpenAI(base_url=f"{url}/openai/v1/", api_key=CALLER_KEY, max_retries=0)
    if kind == "azure-key":
        return openai.AzureOpenAI(
            azure_endpoint=url, api_key=CALLER_KEY, api_version=API_VERSION, max_retries=0
        )
    provider = get_bearer_token_provider(ManagedIdentityCredential(client_id=CLIENT_ID), SCOPE)
    return openai.AzureOpenAI(azure_endpoint=url, azure_ad_token_provider=provider, api_version=API_VERSION,
                              max_retries=0)  # fmt: skip


@pytest.fixture(params=CLIENTS)
async def client(request: pytest.FixtureRequest, served: Served) -> AsyncIterator[Any]:
    sdk = async_client(str(request.param), served.url)
    yield sdk
    await close(sdk)


def _mi_token(authorization: str | None) -> bool:
    """The upstream got the router's own managed-identity token, never the caller's credential."""
    return bool(authorization) and authorization.startswith("Bearer ey") and CALLER_KEY not in authorization


# -- the same cases for every client ------------------------------------------------------------------


async def test_auto_answers_a_chat_completion_with_its_cost_recorded(served: Served, client: Any) -> None:
    served.harness.simulator.script(
        "dep-small", Reply(content="Paris.", prompt_tokens=20_000, completion_tokens=10_000)
    )
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=HELLO, extra_headers={"x-request-id": "az-json-1"}
    )
    completion = raw.parse()
    assert completion.object == "chat.completion" and completion.model == "small"
    assert completion.choices[0].message.content == "Paris."
    assert completion.usage.prompt_tokens == 20_000 and completion.usage.completion_tokens == 10_000
    assert raw.headers["x-request-id"] == raw.headers["apim-request-id"] == "az-json-1"
    assert raw.headers["x-router-model"] == "small"
    assert float(raw.headers["x-router-cost-usd"]) == pytest.approx(0.009, abs=1e-9)
    [rec] = await served.records("az-json-1")
    assert rec["api"] == "azure" and rec["model"] == "small"
    assert rec["cost_usd"] == pytest.approx(20 * 0.00015 + 10 * 0.0006, abs=1e-9)
    assert rec["baseline_cost_usd"] == pytest.approx(20 * 0.002 + 10 * 0.008, abs=1e-9)
    assert _mi_token(served.harness.simulator.calls_to("dep-small")[0].authorization)


async def test_streaming_relays_every_chunk_and_the_usage_chunk(served: Served, client: Any) -> None:
    served.harness.simulator.script(
        "dep-small", Reply(content="The capital is Paris.", prompt_tokens=300, completion_tokens=5)
    )
    stream = await client.chat.completions.create(
        model="auto", messages=HELLO, stream=True, stream_options={"include_usage": True},
        extra_headers={"x-request-id": "az-stream-1"},
    )  # fmt: skip
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The capital is Paris."
    assert {c.model for c in chunks} == {"small"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert not chunks[-1].choices and chunks[-1].usage.prompt_tokens == 300  # the usage chunk, last
    [rec] = await served.records("az-stream-1")
    assert rec["api"] == "azure" and rec["model"] == "small" and rec["completion_tokens"] == 5
    assert rec["cost_usd"] == pytest.approx(0.3 * 0.00015 + 0.005 * 0.0006, abs=1e-9)


async def test_a_stream_without_include_usage_gets_no_usage_chunk(served: Served, client: Any) -> None:
    stream = await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks and all(c.choices and c.usage is None for c in chunks)


async def test_tool_calls_come_back_parsed(served: Served, client: Any) -> None:
    served.harness.simulator.script("dep-small", Reply(tool_calls=[CALL]), Reply(tool_calls=[CALL]))
    completion = await client.chat.completions.create(model="auto", messages=HELLO, tools=[TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert served.harness.simulator.calls_to("dep-small")[0].body["tools"] == [TOOL]
    stream = await client.chat.completions.create(model="auto", messages=HELLO, tools=[TOOL], stream=True)
    deltas = [c.choices[0] async for c in stream if c.choices]
    streamed = [tc for d in deltas for tc in (d.delta.tool_calls or [])]
    # As OpenAI streams a call: its id and name first, then the arguments in pieces (index 0 throughout).
    assert {t.index for t in streamed} == {0}
    assert (streamed[0].id, streamed[0].function.name) == ("call_1", "get_weather")
    assert "".join(t.function.arguments or "" for t in streamed) == '{"city":"Oslo"}'
    assert deltas[-1].finish_reason == "tool_calls"


async def test_a_tool_result_turn_is_relayed(served: Served, client: Any) -> None:
    messages = [
        *HELLO,
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function", **CALL}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'},
    ]
    await client.chat.completions.create(model="auto", messages=messages, tools=[TOOL])
    sent = served.harness.simulator.seen[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "call_1" and sent[2]["tool_call_id"] == "call_1"


@pytest.mark.parametrize("name", ["large", "dep-large"])
async def test_a_model_or_deployment_name_pins_that_model(served: Served, client: Any, name: str) -> None:
    completion = await client.chat.completions.create(
        model=name, messages=HELLO, extra_headers={"x-request-id": f"az-pin-{name}"}
    )
    assert completion.model == "large"
    [rec] = await served.records(f"az-pin-{name}")
    assert rec["model"] == "large" and rec["classifier"] == "pinned"
    assert rec["cost_usd"] == pytest.approx(
        completion.usage.prompt_tokens / 1000 * 0.002 + completion.usage.completion_tokens / 1000 * 0.008,
        abs=1e-9,
    )


async def test_routing_limits_travel_in_extra_body_and_headers(served: Served, client: Any) -> None:
    via_body = await client.chat.completions.create(
        model="auto", messages=HELLO, extra_body={"router": {"max_cost_per_1k": 0.0001}}
    )
    assert via_body.model == "large"  # nothing that cheap: the most capable model answers
    via_header = await client.chat.completions.create(
        model="auto", messages=HELLO, extra_headers={"x-router-max-cost-per-1k": "0.0001"}
    )
    assert via_header.model == "large"
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="auto", messages=HELLO, extra_headers={"x-router-max-latency-ms": "soon"}
        )
    assert info.value.body["param"] == "x-router-max-latency-ms"


async def test_an_unknown_deployment_is_azures_404(served: Served, client: Any) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await client.chat.completions.create(model="gpt-9", messages=HELLO)
    assert info.value.code == "DeploymentNotFound"
    assert "deployment for this resource does not exist" in info.value.message
    assert info.value.body["type"] == "invalid_request_error" and info.value.body["request_id"]
    assert served.harness.simulator.seen == []


async def test_a_bad_body_is_a_400_naming_the_field(served: Served, client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="auto", messages=HELLO, extra_body={"temprature": 0.2})
    assert info.value.body["param"] == "temprature" and "unrecognized" in info.value.message
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(model="auto", messages=HELLO, temperature=7)
    assert info.value.body["param"] == "temperature" and info.value.code == "validation_error"
    assert served.harness.simulator.seen == []


async def test_every_deployment_throttled_is_a_429_with_retry_after(served: Served, client: Any) -> None:
    throttled = Reply(status=429, error_code="429", error_message="slow down", headers={"retry-after": "7"})
    for deployment in ("dep-small", "dep-medium", "dep-large"):
        served.harness.simulator.script(deployment, throttled)
    with pytest.raises(openai.RateLimitError) as info:
        await client.chat.completions.create(model="auto", messages=HELLO)
    assert info.value.code == "429" and "Please retry after 7 seconds" in info.value.message
    headers = info.value.response.headers
    assert headers["retry-after"] == "7"
    assert 6000 < int(headers["retry-after-ms"]) <= 7000  # the cooldown left, from the upstream's 7 s
    assert headers["x-request-id"] == headers["apim-request-id"]


async def test_models_list_the_router_and_the_catalogue(served: Served, client: Any) -> None:
    ids = [m.id async for m in client.models.list()]
    assert ids == ["auto", "small", "medium", "large"]


async def test_credentials_are_never_forwarded_or_logged(
    served: Served, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="router")
    await client.chat.completions.create(model="auto", messages=HELLO)
    await client.chat.completions.create(model="auto", messages=HELLO, stream=True)
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="gpt-9", messages=HELLO)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("router"))
    assert CALLER_KEY not in logged and "Bearer" not in logged
    assert all(_mi_token(s.authorization) for s in served.harness.simulator.seen)


async def test_the_token_provider_is_the_real_credential(served: Served, identity: Any) -> None:
    endpoint, _ = identity
    sdk = async_client("azure-token", served.url)
    try:
        assert (await sdk.chat.completions.create(model="auto", messages=HELLO)).model == "small"
    finally:
        await close(sdk)
    asked = [r for r in endpoint.requests if r.resource == "api://azure-llm-router"]
    assert asked and asked[-1].client_id == CLIENT_ID  # ManagedIdentityCredential, over the MI protocol


@pytest.mark.parametrize("kind", CLIENTS)
async def test_the_sync_clients_pass_the_same_cases(served: Served, kind: str) -> None:
    """``AzureOpenAI`` / ``OpenAI`` (sync, with the sync azure-identity credential), off the event loop."""
    replies = (Reply(content="Paris."), Reply(content="It is Paris."), Reply(tool_calls=[CALL]))
    served.harness.simulator.script("dep-small", *replies)

    def run() -> tuple[Any, str, Any]:
        with sync_client(kind, served.url) as sdk:
            completion = sdk.chat.completions.create(model="auto", messages=HELLO)
            streamed = "".join(
                c.choices[0].delta.content or ""
                for c in sdk.chat.completions.create(model="auto", messages=HELLO, stream=True)
                if c.choices
            )
            tools = sdk.chat.completions.create(model="auto", messages=HELLO, tools=[TOOL])
            return completion, streamed, tools

    completion, streamed, tools = await asyncio.to_thread(run)
    assert completion.model == "small" and completion.choices[0].message.content == "Paris."
    assert streamed == "It is Paris."
    assert tools.choices[0].message.tool_calls[0].function.name == "get_weather"


# -- the Azure client's deployment forms --------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment", "model"), [("auto", "small"), ("large", "large"), ("dep-large", "large")]
)
@pytest.mark.parametrize("kind", ["azure-key", "azure-token"])
async def test_azure_deployment_decides_and_the_body_model_is_ignored(
    served: Served, kind: str, deployment: str, model: str
) -> None:
    sdk = async_client(kind, served.url, deployment=deployment)
    try:
        completion = await sdk.chat.completions.create(model="gpt-4o-whatever", messages=HELLO)
        stream = await sdk.chat.completions.create(model="ignored", messages=HELLO, stream=True)
        assert {c.model async for c in stream} == {model}
        assert [m.id async for m in sdk.models.list()] == [
            "auto",
            "small",
            "medium",
            "large",
        ]  # /openai/models
    finally:
        await close(sdk)
    assert completion.model == model


# -- the wire rules ------------------------------------------------------------------------------------


def test_a_deployment_name_means_the_first_enabled_model_deployed_under_it() -> None:
    shared = [MODELS[0], MODELS[1].model_copy(update={"deployment": "dep-small"})]
    assert resolve_deployment("dep-small", shared, param=None) == "small"
    assert resolve_deployment("medium", shared, param=None) == "medium"  # a model name wins
    assert resolve_deployment("router", shared, param=None) == "router"
    with pytest.raises(RouterError) as info:
        resolve_deployment("dep-medium", shared, param="model")
    assert (info.value.status, info.value.code, info.value.param) == (404, "DeploymentNotFound", "model")


def test_throttled_waits_for_the_soonest_cooldown_else_the_default() -> None:
    error = UpstreamError("no model could answer", code="upstream_http_429")
    soonest = throttled(error, [0.0, 12.5, 3.2], default_s=10.0)
    assert (soonest.status, soonest.code, soonest.retry_after_s) == (429, "429", 3.2)
    assert "Please retry after 3 seconds" in soonest.message
    assert throttled(error, [0.0, 0.0], default_s=10.0).retry_after_s == 10.0


async def test_api_version_is_validated_as_azure_does(served: Served) -> None:
    path = "/openai/deployments/auto/chat/completions"
    body = {"messages": HELLO}
    async with httpx2.AsyncClient(base_url=served.url, headers={"api-key": CALLER_KEY}) as http:
        missing = await http.post(path, json=body)
        assert missing.status_code == 400
        assert missing.json()["error"]["code"] == "BadRequest"
        assert missing.json()["error"]["param"] == "api-version"
        assert "api-version" in missing.json()["error"]["message"]
        for bad in ("2019-01-01", "2022-12-01", "2024-13-01", "latest", "2024-10-21-beta"):
            r = await http.post(path, json=body, params={"api-version": bad})
            assert r.status_code == 400 and "API version not supported" in r.json()["error"]["message"], bad
        for good in ("2023-05-15", "2024-10-21", "2025-04-01-preview", "2031-01-01-preview"):
            r = await http.post(path, json=body, params={"api-version": good})
            assert r.status_code == 200, (good, r.text)
        dated_on_v1 = await http.post("/openai/v1/chat/completions", json={"model": "auto", **body},
                                      params={"api-version": "2024-10-21"})  # fmt: skip
        assert dated_on_v1.status_code == 400 and dated_on_v1.json()["error"]["code"] == "BadRequest"
        preview_on_v1 = await http.get("/openai/v1/models", params={"api-version": "preview"})
        assert preview_on_v1.status_code == 200
        assert (await http.get("/openai/models")).status_code == 400
    assert len(served.harness.simulator.seen) == 4  # only the four good versions reached a deployment


async def test_errors_have_azures_shape(served: Served) -> None:
    async with httpx2.AsyncClient(base_url=served.url) as http:
        unknown_path = await http.get(
            "/openai/deployments/auto/embeddingz", params={"api-version": API_VERSION}
        )
        assert unknown_path.status_code == 404
        assert unknown_path.json()["error"]["code"] == "404"
        assert unknown_path.json()["error"]["message"] == "Resource not found"
        assert unknown_path.headers["apim-request-id"] == unknown_path.headers["x-request-id"]
        not_json = await http.post("/openai/v1/chat/completions", content=b"{nope")
        assert not_json.status_code == 400
        assert set(not_json.json()["error"]) == {"code", "message", "param", "type", "request_id"}
        assert not_json.json()["error"]["code"] == "invalid_json"
        no_messages = await http.post("/openai/deployments/auto/chat/completions",
                                      params={"api-version": API_VERSION}, json={})  # fmt: skip
        assert no_messages.status_code == 400 and no_messages.json()["error"]["param"] == "messages"
        too_large = await http.post("/openai/v1/chat/completions", content=b"x" * 1_100_000)
        assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"
        assert too_large.json()["error"]["type"] == "invalid_request_error"
        assert too_large.headers["apim-request-id"] == too_large.headers["x-request-id"]
        unknown = await http.post("/openai/deployments/nope/chat/completions",
                                  params={"api-version": API_VERSION}, json={"messages": HELLO})  # fmt: skip
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "DeploymentNotFound"


async def test_the_openai_surface_is_unchanged(served: Served) -> None:
    """``/api/v1`` keeps its own answers: records say api="chat", an unknown model is model_not_found."""
    sdk = openai.AsyncOpenAI(base_url=f"{served.url}/api/v1", api_key="x", max_retries=0)
    try:
        await sdk.chat.completions.create(
            model="auto", messages=HELLO, extra_headers={"x-request-id": "v1-1"}
        )
        with pytest.raises(openai.NotFoundError) as info:
            await sdk.chat.completions.create(model="dep-large", messages=HELLO)
    finally:
        await close(sdk)
    assert info.value.code == "model_not_found"
    [rec] = await served.records("v1-1")
    assert rec["api"] == "chat"
