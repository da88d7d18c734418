"""Conversation affinity (issue 15, item 4): a follow-up turn stays on the model that answered the
conversation so far (its prompt cache keeps paying), escalates when the turn needs more, never moves down
silently, and needs nothing but the conversation: two router processes that share no state, no table and
no memory route turn N and turn N+1 to the same model. The route reason is in every cost record, in
``x-router-route-reason`` and in ``/api/decide``. Real Azurite, the simulator over HTTP, the openai SDK;
the pure rules are checked on their own first."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from router.chat.affinity import MAX_EARLIER_TURNS, conversation_turns, session_model, session_value
from router.dev.simulator import Reply
from router.models.store import upsert_table
from router.pipeline.affinity import conversation_model, keep, route_reason
from router.pipeline.route import Constraints, choose
from tests.conftest import CLIENT_ID, MODELS, Harness, unique
from tests.support import router_env, start_router, stop_router, wait_ready
from tests.test_chat_completions import HARD, _records

ROOT = Path(__file__).resolve().parents[1]
SMALL, MEDIUM, LARGE = MODELS
NONE = Constraints()

# Seed scores: HARD 0.85 (large); the short turns alone ~0.04 (small). From the fourth turn on, HARD has
# left the classifier's window of recent turns, so without affinity the conversation would drop to small.
CONVERSATION = [
    {"role": "user", "content": HARD},
    {"role": "assistant", "content": "Use min(xs): sorting is O(n log n) and copies the list."},
    {"role": "user", "content": "thanks"},
    {"role": "assistant", "content": "You are welcome."},
    {"role": "user", "content": "ok"},
    {"role": "assistant", "content": "Sure."},
    {"role": "user", "content": "bye"},
]


# -- the pure rules ---------------------------------------------------------------------------------
def test_the_conversation_model_is_the_most_capable_model_its_earlier_turns_route_to():
    assert conversation_model(MODELS, [0.1, 0.9, 0.2], NONE).name == "large"
    assert conversation_model(MODELS, [0.1, 0.5], NONE).name == "medium"
    assert conversation_model(MODELS, [], NONE) is None
    # Capped to what the turn may use: without large (disabled, lacking a capability, too small a window)
    # the hard turn's model is the most capable one left.
    assert conversation_model([SMALL, MEDIUM], [0.9], NONE).name == "medium"
    disabled = LARGE.model_copy(update={"enabled": False})
    assert conversation_model([SMALL, MEDIUM, disabled], [0.9], NONE).name == "medium"
    # A hint counts only when it names one of the models given; it can only add, never lower.
    assert conversation_model(MODELS, [], NONE, hinted="medium").name == "medium"
    assert conversation_model(MODELS, [0.9], NONE, hinted="small").name == "large"
    assert conversation_model([SMALL, MEDIUM], [], NONE, hinted="large") is None


def test_keep_holds_escalates_and_never_downgrades():
    easy = choose(MODELS, 0.05, NONE)
    kept, why = keep(easy, 0.05, LARGE)
    assert (kept.model.name, why) == ("large", "affinity") and kept.reason.startswith("affinity:")
    assert kept.candidates == easy.candidates
    hard = choose(MODELS, 0.9, NONE)
    up, why = keep(hard, 0.9, SMALL)
    assert (up.model.name, why) == ("large", "escalated") and up.reason.startswith("escalated:")
    assert keep(easy, 0.05, None)[1] == "classified"
    assert keep(easy, 0.05, SMALL) == (easy, "classified")  # the classifier's choice anyway
    # Outside this turn's limits: the caller's constraint wins, and the reason says so.
    cheap = choose(MODELS, 0.05, Constraints(max_cost_per_1k=0.001))
    limited, why = keep(cheap, 0.05, LARGE)
    assert (limited.model.name, why) == (
        "small",
        "classified",
    ) and "outside the constraints" in limited.reason


def test_route_reason_is_fallback_when_another_model_answered():
    assert route_reason("affinity", "large", "large") == "affinity"
    assert route_reason("affinity", "large", "medium") == "fallback"


def earlier_texts(messages: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(turn.text() for turn in conversation_turns(messages).earlier)


def test_earlier_turns_are_the_conversation_up_to_each_earlier_user_turn():
    assert earlier_texts(CONVERSATION[:1]) == ()
    turns = earlier_texts(CONVERSATION)
    assert len(turns) == 3 and turns[0] == HARD and turns[1].startswith("thanks\n\n")
    # Each earlier turn's digest is the digest this turn had when it was the latest: its score, kept
    # then, is found again without rebuilding its text.
    keys = [conversation_turns(CONVERSATION[: 2 * n + 1]).key for n in range(4)]
    assert [t.key for t in conversation_turns(CONVERSATION).earlier] == keys[:3]
    assert len(set(keys)) == 4 and conversation_turns(CONVERSATION[:2]).key is None
    # Ending in a tool result continues the turn that called the tool: that turn is an earlier one.
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tool_turn = [{"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "content": "3C"}]  # fmt: skip
    assert earlier_texts(tool_turn) == ("weather?",)
    long = [m for i in range(50) for m in ({"role": "user", "content": f"q{i}"}, {"role": "assistant"})]
    assert len(earlier_texts(long)) == MAX_EARLIER_TURNS


def test_the_session_hint_round_trips_and_anything_else_is_ignored():
    value = session_value("gpt-4.1")
    assert value.startswith("s1.") and "gpt" not in value and session_model(value) == "gpt-4.1"
    for junk in (None, "", "my-session-1", "s1.!!!", "s1." + "A" * 300, session_value("a/b")):
        assert session_model(junk) is None


# -- through the app and the openai SDK -------------------------------------------------------------


async def _turn(client: openai.AsyncOpenAI, messages: list[dict[str, Any]], rid: str, **kw: Any) -> Any:
    headers = {"x-request-id": rid, **kw.pop("headers", {})}
    return await client.chat.completions.with_raw_response.create(
        model="auto", messages=messages, extra_headers=headers, **kw
    )


async def test_a_follow_up_stays_on_the_conversation_model_and_the_record_says_affinity(routed):
    h, client = routed
    first = await _turn(client, CONVERSATION[:1], "aff-1")
    assert first.headers["x-router-model"] == "large"
    assert first.headers["x-router-route-reason"] == "classified"
    assert session_model(first.headers["x-router-session"]) == "large"
    raw = await _turn(client, CONVERSATION, "aff-4")
    assert raw.parse().model == "large"
    assert raw.headers["x-router-route-reason"] == "affinity"
    assert float(raw.headers["x-router-complexity"]) < SMALL.max_complexity  # the classifier said small
    [rec] = await _records(h, "aff-4")
    [opening] = await _records(h, "aff-1")
    assert (rec["model"], rec["route_reason"]) == ("large", "affinity")
    assert opening["route_reason"] == "classified"
    assert h.simulator.calls_to("dep-small") == []


async def test_without_affinity_the_same_turn_drops_to_the_cheap_model(harness_factory):
    h = await harness_factory(CONVERSATION_AFFINITY=False)
    headers = {"x-request-id": "noaff", "x-router-session": session_value("large")}
    body = {"model": "auto", "messages": CONVERSATION}
    r = await h.client.post("/api/v1/chat/completions", json=body, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "small" and r.headers["x-router-route-reason"] == "classified"
    [rec] = [x for x in await h.costs() if x["request_id"] == "noaff"]
    assert (rec["model"], rec["route_reason"]) == ("small", "classified")


async def test_a_harder_turn_escalates_and_the_conversation_stays_up(routed):
    h, client = routed
    easy = [{"role": "user", "content": "hi"}]
    assert (await _turn(client, easy, "esc-1")).parse().model == "small"
    harder = [*easy, {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": HARD}]
    raw = await _turn(client, harder, "esc-2")
    assert raw.parse().model == "large" and raw.headers["x-router-route-reason"] == "escalated"
    later = [*harder, {"role": "assistant", "content": "Fixed."}, *CONVERSATION[2:]]
    after = await _turn(client, later, "esc-3")
    assert after.parse().model == "large" and after.headers["x-router-route-reason"] == "affinity"
    recs = {r["request_id"]: r["route_reason"] for r in await _records(h)}
    assert recs == {"esc-1": "classified", "esc-2": "escalated", "esc-3": "affinity"}


async def test_capabilities_still_filter_and_a_pinned_model_is_unaffected(harness_factory):
    h = await harness_factory([SMALL, MEDIUM, LARGE.model_copy(update={"supports_tools": False})])
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    r = await h.client.post("/api/v1/chat/completions", json={"model": "auto", "messages": CONVERSATION,
                            "tools": [tool]}, headers={"x-request-id": "aff-tools"})  # fmt: skip
    assert r.status_code == 200, r.text
    # The conversation's model (large) cannot take tools: held on the most capable model that can.
    assert r.json()["model"] == "medium" and r.headers["x-router-route-reason"] == "affinity"
    assert h.simulator.calls_to("dep-large") == []
    body = {"model": "small", "messages": CONVERSATION}
    pinned = await h.client.post("/api/v1/chat/completions", json=body, headers={"x-request-id": "aff-pin"})
    assert pinned.json()["model"] == "small" and pinned.headers["x-router-route-reason"] == "pinned"
    recs = {x["request_id"]: x for x in await h.costs()}
    assert recs["aff-tools"]["route_reason"] == "affinity" and recs["aff-pin"]["route_reason"] == "pinned"


async def test_the_session_hint_honours_a_fallback_answer_and_cannot_downgrade(routed):
    h, client = routed
    h.simulator.script("dep-small", Reply(status=500))
    first = await _turn(client, [{"role": "user", "content": "hi"}], "hint-1")
    assert first.parse().model == "medium"  # small failed: the fallback answered
    assert first.headers["x-router-route-reason"] == "fallback"
    session = first.headers["x-router-session"]
    assert session_model(session) == "medium"
    follow = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello"},
              {"role": "user", "content": "thanks"}]  # fmt: skip
    # Re-scoring alone says small (the first turn was classified small); the hint says who answered.
    raw = await _turn(client, follow, "hint-2", headers={"x-router-session": session})
    assert raw.parse().model == "medium" and raw.headers["x-router-route-reason"] == "affinity"
    plain = await _turn(client, follow, "hint-3")
    assert plain.parse().model == "small"
    # A hint naming a cheaper model than the turn needs cannot hold it there; one not ours is ignored.
    down = await _turn(
        client, CONVERSATION[:1], "hint-4", headers={"x-router-session": session_value("small")}
    )
    assert down.parse().model == "large" and down.headers["x-router-route-reason"] == "escalated"
    junk = await _turn(client, follow, "hint-5", headers={"x-router-session": "my-session-1"})
    assert junk.parse().model == "small"
    recs = {r["request_id"]: r["route_reason"] for r in await _records(h)}
    assert recs == {"hint-1": "fallback", "hint-2": "affinity", "hint-3": "classified",
                    "hint-4": "escalated", "hint-5": "classified"}  # fmt: skip


async def test_a_streamed_follow_up_keeps_affinity_in_headers_and_record(routed):
    h, client = routed
    async with client.chat.completions.with_streaming_response.create(
        model="auto", messages=CONVERSATION, stream=True, extra_headers={"x-request-id": "aff-stream"}
    ) as raw:
        assert raw.headers["x-router-route-reason"] == "affinity"
        assert session_model(raw.headers["x-router-session"]) == "large"
        models = {chunk.model async for chunk in await raw.parse()}
    assert models == {"large"}
    [rec] = await _records(h, "aff-stream")
    assert (rec["model"], rec["route_reason"]) == ("large", "affinity")


async def test_decide_says_when_affinity_decided(harness: Harness):
    earlier, query = CONVERSATION[:-1], CONVERSATION[-1]["content"]
    r = await harness.client.post("/api/decide", json={"query": query, "messages": earlier})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["model"], body["route_reason"]) == ("large", "affinity")
    assert body["reason"].startswith("affinity: the conversation is on large")
    assert r.headers["x-router-route-reason"] == "affinity" and r.headers["x-router-model"] == "large"
    alone = await harness.client.post("/api/decide", json={"query": query})
    assert (alone.json()["model"], alone.json()["route_reason"]) == ("small", "classified")
    hinted = await harness.client.post("/api/decide", json={"query": query},
                                       headers={"x-router-session": session_value("medium")})  # fmt: skip
    assert (hinted.json()["model"], hinted.json()["route_reason"]) == ("medium", "affinity")
    bad = await harness.client.post("/api/decide", json={"query": query, "messages": [{"role": "robot"}]})
    assert bad.status_code == 400 and "messages.0.role" in bad.json()["error"]["message"]


# -- two processes sharing nothing but the conversation ----------------------------------------------
@pytest.fixture
def two_routers(settings_factory: Any) -> Iterator[list[tuple[str, Any, subprocess.Popen[str]]]]:
    """Two `python -m router serve` processes: each its own models, costs and health tables (the same
    catalogue loaded into each), its own memory; in common only the simulator they both call."""
    made: list[tuple[subprocess.Popen[str], str, Any]] = []
    for _ in range(2):
        s = settings_factory(MODELS_TABLE=unique("models"), COSTS_TABLE=unique("costs"),
                             HEALTH_TABLE=unique("health"), COST_WRITE_MODE="inline")  # fmt: skip
        env = router_env(s, CLIENT_ID)
        proc, url = start_router(env)
        made.append((proc, url, s))
    yield [(url, s, proc) for proc, url, s in made]
    for proc, _, _ in made:
        stop_router(proc)


async def test_affinity_across_two_router_processes(two_routers, simulator, azurite):
    from azure.data.tables.aio import TableServiceClient

    (url_a, settings_a, proc_a), (url_b, settings_b, proc_b) = two_routers
    async with TableServiceClient.from_connection_string(azurite.connection_string) as service:
        for s in (settings_a, settings_b):
            await upsert_table(await service.create_table_if_not_exists(s.MODELS_TABLE), MODELS)
        await asyncio.gather(wait_ready(url_a, proc_a), wait_ready(url_b, proc_b))
        a = openai.AsyncOpenAI(base_url=f"{url_a}/api/v1", api_key="unused", max_retries=0)
        b = openai.AsyncOpenAI(base_url=f"{url_b}/api/v1", api_key="unused", max_retries=0)
        messages = list(CONVERSATION[:1])
        answers = []
        for turn, (client, rid) in enumerate([(a, "two-1"), (b, "two-2"), (a, "two-3"), (b, "two-4")]):
            if turn:
                messages += [{"role": "assistant", "content": answers[-1].choices[0].message.content},
                             CONVERSATION[2 * turn]]  # fmt: skip
            raw = await client.chat.completions.with_raw_response.create(  # no x-router-session: state-free
                model="auto", messages=messages, extra_headers={"x-request-id": rid}
            )
            answers.append(raw.parse())
        await a.close()
        await b.close()
        assert [c.model for c in answers] == ["large"] * 4
        stored = {}
        for s in (settings_a, settings_b):
            table = service.get_table_client(s.COSTS_TABLE)
            stored[s.COSTS_TABLE] = {e["request_id"]: e async for e in table.list_entities()}
    in_a, in_b = stored[settings_a.COSTS_TABLE], stored[settings_b.COSTS_TABLE]
    assert set(in_a) == {"two-1", "two-3"} and set(in_b) == {"two-2", "two-4"}  # nothing shared
    # Turn 4 alone routes to small (complexity < 0.3): process B kept it on large from the conversation.
    assert (in_b["two-4"]["model"], in_b["two-4"]["route_reason"]) == ("large", "affinity")
    assert in_b["two-4"]["complexity"] < SMALL.max_complexity
    assert in_a["two-1"]["route_reason"] == "classified"
    assert {c.deployment for c in simulator.seen} == {"dep-large"}


def test_an_instance_remembers_its_turns_scores_and_re_scores_only_what_it_never_saw(settings_factory):
    from router.classifiers.seed import SeedScorer
    from router.pipeline.classify import Classifier

    class Counting(SeedScorer):  # the real seed scorer, counting the texts it is given
        def __init__(self) -> None:
            self.texts: list[str] = []

        def score(self, text: str) -> float:
            self.texts.append(text)
            return super().score(text)

    settings = settings_factory(JUDGE_ENABLED=False)
    scorer = Counting()
    here = Classifier(settings, scorer, None, None)  # type: ignore[arg-type]  # no judge: no upstream
    for n in (1, 3, 5):  # this instance answered turns 1..3
        prefix = CONVERSATION[:n]
        key = conversation_turns(prefix).key
        assert key is not None
        here.remember(key, asyncio.run(here.classify(HARD if n == 1 else "x", MODELS)))
    scorer.texts.clear()
    turns = conversation_turns(CONVERSATION).earlier
    # What this instance remembered (its own scores then), not a re-scoring of the real texts (0.85 each)
    assert [here.earlier_score(t) for t in turns] == [0.85, 0.001, 0.001] and scorer.texts == []
    cold = Classifier(settings, scorer, None, None)  # type: ignore[arg-type]
    assert [cold.earlier_score(t) for t in turns] == [0.85] * 3 and len(scorer.texts) == 3
    off = Classifier(settings_factory(CONVERSATION_AFFINITY=False), scorer, None, None)  # type: ignore[arg-type]
    assert len(off.turn_scores) == 0
