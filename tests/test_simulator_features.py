"""The simulator as Azure OpenAI answers (issue 15, item 5): tool calls when tools are offered and the
prompt asks for one, JSON for ``response_format`` (a ``json_schema`` object the SDK's own parser
accepts), both streamed as OpenAI streams them, and a per-model latency jittered around the model's
``avg_latency_ms``, off unless asked for. Through the real openai SDK: via the router (what a client of
``./scripts/dev`` sees) and straight to the simulator with ``AsyncAzureOpenAI``."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from router.dev.sim_answers import example, json_answer, tools_to_call
from router.dev.simulator import Reply, Simulator
from tests.support import ThreadServer
from tests.test_chat_completions import _records

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


class Colour(StrEnum):
    red = "red"
    blue = "blue"


class Address(BaseModel):
    street: str
    number: int


class Person(BaseModel):
    name: str
    age: int
    height_m: float
    admin: bool
    tags: list[str]
    favourite: Colour
    address: Address
    nickname: str | None


@pytest.fixture
async def azure(simulator_server: tuple[Simulator, ThreadServer], simulator: Simulator) -> Any:
    """The SDK's Azure client straight at the simulator (a fixed bearer token: nothing checks it here)."""
    _, server = simulator_server
    client = openai.AsyncAzureOpenAI(azure_endpoint=server.url, api_version="2024-10-21",
                                     azure_ad_token="simulated-entra-token", max_retries=0)  # fmt: skip
    yield simulator, client
    await client.close()


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# -- tools ---------------------------------------------------------------------------------------------
async def test_a_prompt_asking_for_a_tool_gets_tool_calls_with_valid_arguments(routed):
    h, client = routed
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=_user("What is the weather in Oslo? Use the tool."), tools=[WEATHER],
        extra_headers={"x-request-id": "sim-tool"},
    )  # fmt: skip
    reply = raw.parse()
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert isinstance(args["city"], str) and args["unit"] in ("celsius", "fahrenheit")
    assert isinstance(args["days"], int) and 1 <= args["days"] <= 7
    [rec] = await _records(h, "sim-tool")
    assert rec["completion_tokens"] == reply.usage.completion_tokens > 0
    # The tool definitions count as prompt tokens, as Azure counts them.
    plain = await client.chat.completions.create(model="auto", messages=_user("What is the weather in Oslo?"))
    assert reply.usage.prompt_tokens > plain.usage.prompt_tokens


async def test_text_unless_asked_and_after_the_tool_answered(routed):
    _, client = routed
    plain = await client.chat.completions.create(model="auto", messages=_user("Hello there"), tools=[WEATHER])
    assert plain.choices[0].finish_reason == "stop" and plain.choices[0].message.tool_calls is None
    choice = {"type": "function", "function": {"name": "get_time"}}
    named = await client.chat.completions.create(
        model="auto", messages=_user("Hello"), tools=[WEATHER, CLOCK], tool_choice=choice
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls] == ["get_time"]
    refused = await client.chat.completions.create(model="auto", messages=_user("call get_weather"),
                                                   tools=[WEATHER], tool_choice="none")  # fmt: skip
    assert refused.choices[0].message.tool_calls is None
    call = named.choices[0].message.tool_calls[0]
    loop = [*_user("What time is it? call the tool"),
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "12:00"}]  # fmt: skip
    done = await client.chat.completions.create(model="auto", messages=loop, tools=[CLOCK])
    assert done.choices[0].finish_reason == "stop" and done.choices[0].message.content


async def test_two_named_tools_are_called_in_parallel_unless_turned_off(azure):
    _, client = azure
    ask = _user("Use get_weather for Oslo and get_time there")
    both = await client.chat.completions.create(model="dep-small", messages=ask, tools=[WEATHER, CLOCK])
    assert [c.function.name for c in both.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    one = await client.chat.completions.create(model="dep-small", messages=ask, tools=[WEATHER, CLOCK],
                                               parallel_tool_calls=False)  # fmt: skip
    assert len(one.choices[0].message.tool_calls) == 1


async def test_streamed_tool_calls_arrive_as_openai_deltas(routed):
    h, client = routed
    tools = [WEATHER, CLOCK]
    async with client.chat.completions.stream(
        model="auto", messages=_user("Call get_weather for Oslo and get_time"), tools=tools,
        extra_headers={"x-request-id": "sim-tool-stream"},
    ) as stream:  # fmt: skip
        deltas = [event.chunk async for event in stream if event.type == "chunk"]
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    names = [c.function.name for c in choice.message.tool_calls]
    assert names == ["get_weather", "get_time"]
    assert json.loads(choice.message.tool_calls[0].function.arguments)["unit"] == "celsius"
    firsts = [d.choices[0].delta.tool_calls[0] for d in deltas if d.choices and d.choices[0].delta.tool_calls]
    assert firsts[0].id and firsts[0].function.name == "get_weather" and firsts[0].function.arguments == ""
    assert sum(1 for t in firsts if t.function and t.function.arguments) > 2  # arguments in pieces
    [rec] = await _records(h, "sim-tool-stream")
    assert rec["status"] == "ok" and rec["usage_estimated"] is False and rec["completion_tokens"] > 0


# -- JSON ----------------------------------------------------------------------------------------------
async def test_json_object_answers_are_json(routed):
    _, client = routed
    reply = await client.chat.completions.create(
        model="auto", messages=_user("List three colours as JSON"), response_format={"type": "json_object"}
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


async def test_json_schema_answers_parse_into_the_callers_model(routed):
    _, client = routed
    # The SDK sends a strict json_schema ($defs, $ref, enum, anyOf null) and validates the answer itself.
    parsed = await client.chat.completions.parse(model="auto", messages=_user("Make up a person"),
                                                 response_format=Person)  # fmt: skip
    person = parsed.choices[0].message.parsed
    assert isinstance(person, Person) and person.favourite is Colour.red and person.tags
    async with client.chat.completions.stream(
        model="auto", messages=_user("Make up a person"), response_format=Person
    ) as stream:
        final = await stream.get_final_completion()
    assert isinstance(final.choices[0].message.parsed, Person)


def test_schema_examples_have_the_right_types():
    properties = {
        "n": {"type": "number", "exclusiveMinimum": 0},
        "when": {"type": "string", "format": "date"},
        "code": {"type": "string", "minLength": 12},
        "k": {"const": 3},
        "maybe": {"type": ["null", "boolean"]},
        "items": {"type": "array", "minItems": 2, "items": {"type": "integer", "maximum": -1}},
    }
    schema = {"type": "object", "required": ["n", "when"], "properties": properties}
    value = example(schema, schema)
    assert value == {"n": 1.0, "when": "2026-01-01", "code": "simulated code", "k": 3, "maybe": True,
                     "items": [-1, -1]}  # fmt: skip
    assert json_answer({"type": "text"}, "hi") is None
    assert tools_to_call({"messages": _user("call it"), "tools": [WEATHER], "tool_choice": "required"})


# -- latency ---------------------------------------------------------------------------------------------
async def test_latency_is_the_models_average_jittered_and_off_by_default(azure):
    sim, client = azure
    raw = await client.chat.completions.with_raw_response.create(model="dep-small", messages=_user("hi"))
    assert "x-simulated-latency-ms" not in raw.headers  # the harness: no simulated latency
    sim.latency_ms = {"dep-small": 20.0}  # small, so the test stays fast
    seen = []
    for stream in (False,) * 8 + (True,) * 2:
        raw = await client.chat.completions.with_raw_response.create(
            model="dep-small", messages=_user("hi"), stream=stream
        )
        seen.append(float(raw.headers["x-simulated-latency-ms"]))
        parsed = raw.parse()
        if stream:
            assert [chunk async for chunk in parsed][-1].usage is None  # read to the end
    assert all(16.0 <= ms <= 24.0 for ms in seen) and len(set(seen)) > 1
    sim.script("dep-small", Reply(content="scripted"))  # a scripted reply keeps its own timing
    raw = await client.chat.completions.with_raw_response.create(model="dep-small", messages=_user("hi"))
    assert "x-simulated-latency-ms" not in raw.headers


def test_the_jitter_stays_within_twenty_percent():
    sim = Simulator(latency_ms={"d": 450.0}, seed=3)
    values = [sim.latency_s("d") for _ in range(2000)]
    assert 0.36 <= min(values) < 0.38 and 0.52 < max(values) <= 0.54
    assert sim.latency_s("unknown") == 0.0
