"""Capabilities and reasoning models (issue 15 items 2 and 3): a request that needs tools, an image or a
JSON schema routes only among models that have it (the cheapest capable one), a pinned model without it
is a 400 naming the capability; a reasoning model gets ``max_completion_tokens`` and no sampling
parameters (dropped and named in ``x-router-dropped-params`` when auto-routed, a 400 naming the parameter
when pinned), and an output limit over a model's ``max_output_tokens`` is clamped on auto.

Real components: the app over ASGI, Azurite for the catalogue and records, the simulator as Azure OpenAI
(the body each deployment received is asserted)."""

from __future__ import annotations

import pytest

from router.dev.simulator import Reply
from router.errors import RouterError
from router.models.config import ModelConfig
from router.pipeline.capabilities import Needs, missing, needs_of, translate
from tests.conftest import MODELS, Harness

SMALL, MEDIUM, LARGE = MODELS
USER = {"role": "user", "content": "hi"}
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
PNG = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
IMAGE = {"role": "user", "content": [{"type": "text", "text": "what is this?"}, PNG]}


def _with(model: ModelConfig, **fields: object) -> ModelConfig:
    return model.model_copy(update=fields)


# -- pure -------------------------------------------------------------------------------------------
def test_needs_are_read_from_the_body():
    assert needs_of({"messages": [USER]}) == Needs()
    assert needs_of({"messages": [USER], "tools": [TOOL]}) == Needs(tools=True)
    assert needs_of({"messages": [IMAGE]}) == Needs(vision=True)
    assert needs_of(
        {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {}}}
    ) == Needs(json_schema=True)
    assert needs_of({"messages": [USER], "response_format": {"type": "json_object"}}) == Needs()
    assert missing(_with(SMALL, supports_vision=False), Needs(vision=True, tools=True)) == ["vision"]


def test_a_reasoning_model_gets_max_completion_tokens_and_no_sampling_parameters():
    o = _with(SMALL, reasoning=True)
    body = {"messages": [USER], "temperature": 0.2, "top_p": 0.9, "max_tokens": 50, "seed": 1}
    out = translate(body, o, pinned=False)
    assert out.body == {"messages": [USER], "max_completion_tokens": 50, "seed": 1}
    assert out.dropped == ["temperature", "top_p"]
    assert body["temperature"] == 0.2  # the caller's body is not changed
    with pytest.raises(RouterError) as caught:
        translate(body, o, pinned=True)
    assert (caught.value.status, caught.value.param, caught.value.code) == (
        400,
        "temperature",
        "unsupported_parameter",
    )
    assert translate(body, SMALL, pinned=False).body == body  # a non-reasoning model takes it as sent


def test_output_limits_over_a_models_max_output_tokens():
    capped = _with(SMALL, max_output_tokens=100)
    out = translate({"messages": [USER], "max_tokens": 500}, capped, pinned=False)
    assert out.body["max_tokens"] == 100 and out.dropped == ["max_tokens"]
    with pytest.raises(RouterError) as caught:
        translate({"messages": [USER], "max_completion_tokens": 101}, capped, pinned=True)
    assert (caught.value.status, caught.value.param) == (400, "max_completion_tokens")
    assert translate({"messages": [USER], "max_tokens": 100}, capped, pinned=True).dropped == []


# -- end to end -------------------------------------------------------------------------------------
async def _chat(h: Harness, **body: object):
    return await h.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": [USER], **body})


async def test_tools_route_to_the_cheapest_model_that_supports_them(harness_factory):
    h: Harness = await harness_factory([_with(SMALL, supports_tools=False), MEDIUM, LARGE])
    h.simulator.script("dep-medium", Reply(content="ok", prompt_tokens=10, completion_tokens=2))
    r = await _chat(h, tools=[TOOL])
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "medium"
    assert h.simulator.calls_to("dep-medium")[-1].body["tools"] == [TOOL]
    assert not h.simulator.calls_to("dep-small")
    d = await h.client.post("/api/decide", json={"query": "hi", "requires": ["tools"]})
    assert d.json()["model"] == "medium"
    assert "only models that support tools" in d.json()["reason"]
    assert (await h.client.post("/api/decide", json={"query": "hi"})).json()["model"] == "small"


async def test_a_pinned_model_without_the_capability_is_a_400_naming_it(harness_factory):
    h: Harness = await harness_factory([_with(SMALL, supports_vision=False), MEDIUM, LARGE])
    before = len(h.simulator.seen)
    r = await h.client.post("/api/v1/chat/completions", json={"model": "small", "messages": [IMAGE]})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "capability_unsupported" and error["param"] == "messages"
    assert "vision" in error["message"]
    assert len(h.simulator.seen) == before  # nothing was sent


async def test_no_capable_model_at_all_is_a_400(harness_factory):
    models = [_with(m, supports_json_schema=False) for m in MODELS]
    h: Harness = await harness_factory(models)
    r = await _chat(h, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"


async def test_auto_routed_reasoning_model_drops_what_it_refuses_and_says_so(harness_factory):
    h: Harness = await harness_factory([_with(SMALL, reasoning=True), MEDIUM, LARGE])
    h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=10, completion_tokens=2))
    r = await _chat(h, temperature=0.3, presence_penalty=0.5, max_tokens=40)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-model"] == "small"
    assert r.headers["x-router-dropped-params"] == "temperature,presence_penalty"
    sent = h.simulator.calls_to("dep-small")[-1].body
    assert "temperature" not in sent and "presence_penalty" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 40


async def test_a_pinned_reasoning_model_refusing_a_parameter_is_a_400_naming_it(harness_factory):
    h: Harness = await harness_factory([_with(SMALL, reasoning=True), MEDIUM, LARGE])
    before = len(h.simulator.seen)
    r = await h.client.post(
        "/api/v1/chat/completions", json={"model": "small", "messages": [USER], "top_p": 0.5}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "top_p" and r.json()["error"]["code"] == "unsupported_parameter"
    assert len(h.simulator.seen) == before


async def test_max_tokens_over_a_models_max_output_tokens_is_clamped_on_auto(harness_factory):
    h: Harness = await harness_factory([_with(SMALL, max_output_tokens=64), MEDIUM, LARGE])
    h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=10, completion_tokens=2))
    r = await _chat(h, max_tokens=500)
    assert r.status_code == 200, r.text
    assert r.headers["x-router-dropped-params"] == "max_tokens"
    assert h.simulator.calls_to("dep-small")[-1].body["max_tokens"] == 64
    pinned = await h.client.post(
        "/api/v1/chat/completions", json={"model": "small", "messages": [USER], "max_tokens": 500}
    )
    assert pinned.status_code == 400 and pinned.json()["error"]["param"] == "max_tokens"
