"""Quality sampling end to end: the real app, Azurite and the Azure OpenAI simulator over HTTP through the
real SDK. Sampling at 1.0: one quality entity per eligible call with the verdict the scripted judge replies
(both orders) give, the overhead in /api/costs, the Wilson interval to 1e-6, export → ``router eval``,
``calibrate --from-quality``, and no effect on the caller (the response is complete before the shadow call
reaches the baseline)."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI, Request

from router.api.app import create_app
from router.api.functions_relay import relay
from router.cli import main
from router.dev.simulator import Reply
from router.models.store import read_table
from router.quality.verdict import Z95
from router.reports.aggregate import PICO
from tests.conftest import MODELS, Harness, unique

ROUTED = "routed answer: the capital of France is Paris"
BASELINE = "baseline answer: Paris"

# (judge reply with the routed answer first, with it second) -> the routed model's verdict
CASES = [
    (("A", "B"), "win"),
    (("B", "A"), "loss"),
    (("TIE", "TIE"), "tie"),
    (("A", "A"), "tie"),  # the judge always picked the first answer: position bias, no preference
    (("B", "B"), "tie"),
    (("A", "TIE"), "tie"),
    ((" a. ", "b"), "win"),
    (("B", "B."), "tie"),
    (("A", "B"), "win"),
    (("B", "A"), "loss"),
]


def wilson_by_bisection(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson interval as its definition (the p for which |k/n - p| <= z·sqrt(p(1-p)/n)), solved
    numerically: independent of the closed form under test."""
    phat = k / n

    def inside(p: float) -> bool:
        return abs(phat - p) <= z * math.sqrt(p * (1 - p) / n)

    def edge(lo: float, hi: float, lo_inside: bool) -> float:
        for _ in range(200):
            mid = (lo + hi) / 2
            if inside(mid) == lo_inside:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    return edge(0.0, phat, False) if k else 0.0, edge(phat, 1.0, True) if k < n else 1.0


@pytest.fixture
async def quality(harness_factory: Any) -> Harness:
    return await harness_factory(
        QUALITY_SAMPLE_RATE=1.0, QUALITY_TABLE=unique("quality"), QUALITY_STORE_TEXT=True, JUDGE_ENABLED=False
    )


async def samples(h: Harness) -> list[dict[str, Any]]:
    if h.runtime.built_service is not None:  # else shut down, which drained it
        await h.runtime.sampler.drain()
    table = await h.runtime.table(h.settings.QUALITY_TABLE)
    return sorted([dict(e) async for e in table.list_entities()], key=lambda e: e["RowKey"])


async def route(h: Harness, query: str, picks: tuple[str, ...] | None, rid: str) -> dict[str, Any]:
    """One /api/route call answered by "small", its shadow by "large" and (if given) the judge's two picks;
    waits for the sample so the scripted replies are consumed in order."""
    h.simulator.script("dep-small", Reply(content=ROUTED, prompt_tokens=20, completion_tokens=10))
    if picks is not None:
        h.simulator.script(
            "dep-large",
            Reply(content=BASELINE, prompt_tokens=20, completion_tokens=5),
            *(Reply(content=p, prompt_tokens=300, completion_tokens=1) for p in picks),
        )
    r = await h.client.post("/api/route", json={"query": query}, headers={"x-request-id": rid})
    assert r.status_code == 200, r.text
    await h.runtime.sampler.drain()
    return dict(r.json())


async def test_one_entity_per_eligible_call_with_the_verdict_of_both_orders(quality: Harness):
    h = quality
    for i, (picks, _) in enumerate(CASES):
        body = await route(h, f"What is the capital of France? ({i})", picks, f"q-{i}")
        assert body["model_used"] == "small" and body["response"] == ROUTED
    # Not eligible: answered by the most capable model (pinned), so nothing to compare with.
    r = await h.client.post(
        "/api/v1/chat/completions", json={"model": "large", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 200
    rows = await samples(h)
    assert [e["request_id"] for e in rows] == [f"q-{i}" for i in range(len(CASES))]
    assert [e["verdict"] for e in rows] == [verdict for _, verdict in CASES]
    first = rows[0]
    assert (first["verdict_1"], first["verdict_2"]) == ("A", "B")
    assert first["routed_model"] == "small" and first["baseline_model"] == "large"
    assert (
        first["judge_model"] == "large" and first["scorer"] == "seed" and first["classifier"] == "heuristic"
    )
    assert first["prompt"].startswith("What is the capital") and first["routed_answer"] == ROUTED
    assert first["baseline_answer"] == BASELINE
    # Tokens and USD of the shadow call (large: $0.002 in, $0.008 out per 1k) and both judge calls.
    assert (first["shadow_prompt_tokens"], first["shadow_completion_tokens"]) == (20, 5)
    assert first["shadow_usd"] == pytest.approx(20 / 1000 * 0.002 + 5 / 1000 * 0.008, abs=1e-12)
    assert (first["judge_calls"], first["judge_prompt_tokens"], first["judge_completion_tokens"]) == (
        2,
        600,
        2,
    )
    assert first["judge_usd"] == pytest.approx(600 / 1000 * 0.002 + 2 / 1000 * 0.008, abs=1e-12)
    assert first["total_usd"] == pytest.approx(first["shadow_usd"] + first["judge_usd"], abs=1e-12)
    # The judge saw the two answers in both orders, as delimited data, with the same request.
    large = h.simulator.calls_to("dep-large")
    shadow, j1, j2 = large[0], large[1], large[2]
    assert shadow.body["messages"] == [{"role": "user", "content": "What is the capital of France? (0)"}]
    one, two = j1.body["messages"][1]["content"], j2.body["messages"][1]["content"]
    block = "<answer_{0}-([0-9a-f]{{16}})>\n{1}\n</answer_{0}-\\1>"
    assert re.search(block.format("a", ROUTED), one) and re.search(block.format("b", BASELINE), one)
    assert re.search(block.format("a", BASELINE), two) and re.search(block.format("b", ROUTED), two)
    assert one.split(">")[0] != two.split(">")[0]  # a fresh delimiter per call
    assert j1.body["max_tokens"] == 4 and j1.body["temperature"] == 0


async def test_judge_errors_are_recorded_with_their_cost_and_never_retried(quality: Harness):
    h = quality
    await route(h, "question one", ("Answer A is better",), "bad-1")  # unparseable: no second call
    h.simulator.script("dep-small", Reply(content=ROUTED))
    h.simulator.script(
        "dep-large", Reply(content=BASELINE, prompt_tokens=10, completion_tokens=10), Reply(status=500)
    )
    await h.client.post("/api/route", json={"query": "question two"}, headers={"x-request-id": "bad-2"})
    await h.runtime.sampler.drain()
    h.simulator.script("dep-small", Reply(content=ROUTED))
    h.simulator.script("dep-large", Reply(status=503))  # the shadow call itself fails
    await h.client.post("/api/route", json={"query": "question three"}, headers={"x-request-id": "bad-3"})
    rows = await samples(h)
    assert [(e["request_id"], e["verdict"], e["error"]) for e in rows] == [
        ("bad-1", "judge_error", "judge_unparseable"),
        ("bad-2", "judge_error", "judge_http_500"),
        ("bad-3", "judge_error", "shadow_http_503"),
    ]
    assert rows[0]["verdict_1"] == "" and rows[0]["judge_calls"] == 1 and rows[0]["total_usd"] > 0
    assert rows[1]["judge_calls"] == 0 and rows[1]["shadow_usd"] > 0  # the shadow was paid for: accounted
    assert rows[2]["total_usd"] == 0
    assert len(h.simulator.calls_to("dep-large")) == 2 + 2 + 1  # one judge call each, no retry
    report = (await h.client.get("/api/quality")).json()
    assert (report["samples"], report["judge_errors"], report["judged"]) == (3, 3, 0)
    assert report["win_or_tie_rate"] is None and report["ci95"] is None


async def test_report_wilson_interval_and_overhead_in_costs(quality: Harness):
    h = quality
    for i, (picks, _) in enumerate(CASES):
        await route(h, f"What is the capital of France? ({i})", picks, f"r-{i}")
    rows = await samples(h)
    report = (await h.client.get("/api/quality", params={"group_by": "model"})).json()
    wins, ties, losses = (sum(v == x for _, v in CASES) for x in ("win", "tie", "loss"))
    assert (report["samples"], report["wins"], report["ties"], report["losses"]) == (10, wins, ties, losses)
    assert report["win_or_tie_rate"] == pytest.approx((wins + ties) / 10, abs=1e-12)
    lo, hi = wilson_by_bisection(wins + ties, 10)
    assert report["ci95"][0] == pytest.approx(lo, abs=1e-6) and report["ci95"][1] == pytest.approx(
        hi, abs=1e-6
    )
    assert [g["model"] for g in report["groups"]] == ["small"]
    by_band = (await h.client.get("/api/quality", params={"group_by": "band"})).json()
    assert sum(g["samples"] for g in by_band["groups"]) == 10 and all(
        "-" in g["band"] for g in by_band["groups"]
    )
    bad = await h.client.get("/api/quality", params={"group_by": "day"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "validation_error"
    assert "group_by" in bad.json()["error"]["message"]
    # The overhead is its own line in /api/costs, in total spend and out of savings, to the pico-dollar.
    overhead = sum(round(e["total_usd"] * PICO) for e in rows) / PICO
    assert report["overhead_usd"] == pytest.approx(overhead, abs=1e-9)
    costs = (await h.client.get("/api/costs", params={"group_by": "model"})).json()
    t = costs["totals"]
    assert t["quality_check_usd"] == pytest.approx(overhead, abs=1e-9)
    assert t["total_spend_usd"] == pytest.approx(t["spend_usd"] + t["overhead_usd"] + overhead, abs=1e-9)
    assert t["savings_usd"] == pytest.approx(t["baseline_usd"] - t["total_spend_usd"], abs=1e-9)
    assert {g["model"]: g["quality_check_usd"] for g in costs["groups"]} == {"small": pytest.approx(overhead)}
    # The callers' cost records are untouched: one per call, the routed model only.
    records = await h.costs()
    assert len(records) == 10 and {r["model"] for r in records} == {"small"}
    page = await h.client.get("/api/dashboard")
    assert "Quality kept" in page.text and "win or tie" in page.text


async def test_streams_are_compared_on_the_assembled_text(quality: Harness):
    h = quality
    h.simulator.script("dep-small", Reply(content="streamed routed answer, in several chunks"))
    h.simulator.script("dep-large", Reply(content=BASELINE), Reply(content="TIE"), Reply(content="TIE"))
    body = {
        "model": "auto",
        "stream": True,
        "temperature": 0.2,
        "messages": [{"role": "user", "content": "Say something short"}],
    }
    async with h.client.stream("POST", "/api/v1/chat/completions", json=body) as r:
        text = "".join([chunk async for chunk in r.aiter_text()])
    assert "[DONE]" in text
    rows = await samples(h)
    assert len(rows) == 1 and rows[0]["api"] == "chat" and rows[0]["verdict"] == "tie"
    assert rows[0]["routed_answer"] == "streamed routed answer, in several chunks"
    shadow = h.simulator.calls_to("dep-large")[0].body
    assert "stream" not in shadow and "stream_options" not in shadow and shadow["temperature"] == 0.2
    assert rows[0]["routed_cost_usd"] > 0


async def warm(h: Harness) -> None:
    """One call that is not sampled (pinned to the baseline): the first call of a process builds the
    service, the SDK client and the token, which is no part of what the timing tests measure."""
    r = await h.client.post(
        "/api/v1/chat/completions",
        json={"model": "large", "messages": [{"role": "user", "content": "warm up"}]},
    )
    assert r.status_code == 200, r.text
    h.simulator.reset()


async def test_the_response_is_complete_before_the_shadow_call_starts(quality: Harness, harness_factory: Any):
    h = quality
    await warm(h)
    ended: list[float] = []
    app = h.app

    async def stamped(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_stamp(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended.append(time.monotonic())

        await app(scope, receive, send_and_stamp)

    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=stamped), base_url="http://router.test")
    h.simulator.script("dep-small", Reply(content=ROUTED, prompt_tokens=20, completion_tokens=10))
    h.simulator.script(
        "dep-large", Reply(content=BASELINE, delay_s=1.5), Reply(content="A"), Reply(content="B")
    )
    started = time.monotonic()
    r = await client.post("/api/route", json={"query": "What is the capital of France?"})
    caller_s = time.monotonic() - started
    await client.aclose()
    assert r.status_code == 200 and caller_s < 1.0  # the 1.5 s baseline never delayed the caller
    rows = await samples(h)
    assert len(rows) == 1 and rows[0]["verdict"] == "win"
    shadow_arrival = h.simulator.calls_to("dep-large")[0].at
    assert ended and shadow_arrival > ended[0]
    # Same body and cost record as without sampling (request id and latency aside).
    plain = await harness_factory(QUALITY_SAMPLE_RATE=0.0, JUDGE_ENABLED=False)
    plain.simulator.script("dep-small", Reply(content=ROUTED, prompt_tokens=20, completion_tokens=10))
    r2 = await plain.client.post("/api/route", json={"query": "What is the capital of France?"})
    strip = ("request_id", "latency_ms")
    assert {k: v for k, v in r.json().items() if k not in strip} == {
        k: v for k, v in r2.json().items() if k not in strip
    }
    rec1 = next(c for c in await h.costs() if c["request_id"] == r.json()["request_id"])
    rec2 = (await plain.costs())[0]
    keys = (
        "model",
        "cost_usd",
        "baseline_cost_usd",
        "prompt_tokens",
        "completion_tokens",
        "status",
        "fallbacks",
    )
    assert {k: rec1[k] for k in keys} == {k: rec2[k] for k in keys}


async def test_no_sampling_while_the_baseline_cools_down_or_over_budget(harness_factory: Any):
    h = await harness_factory(
        QUALITY_SAMPLE_RATE=1.0,
        QUALITY_TABLE=unique("quality"),
        JUDGE_ENABLED=False,
        QUALITY_MAX_USD_PER_DAY=0.0001,
    )
    await h.client.get("/api/health")  # builds the service and the sampler
    h.runtime.sampler.health.on_failure("large", "http_429", 60)
    await route(h, "cooling down", None, "cool-1")
    assert await samples(h) == [] and h.simulator.calls_to("dep-large") == []
    h.runtime.sampler.health.board.get("large").cooldown_until = 0  # type: ignore[union-attr]
    await route(h, "first sample", ("A", "B"), "budget-1")  # costs ~$0.0012: over the $0.0001 cap
    h.simulator.script("dep-large", Reply(content=BASELINE), Reply(content="A"), Reply(content="B"))
    await route(h, "paused until tomorrow", None, "budget-2")
    assert [e["request_id"] for e in await samples(h)] == ["budget-1"]
    # Another instance on the same table sees the spend once it has read the table.
    other = await harness_factory(
        models=None,
        QUALITY_SAMPLE_RATE=1.0,
        QUALITY_TABLE=h.settings.QUALITY_TABLE,
        QUALITY_MAX_USD_PER_DAY=0.0001,
    )
    await other.client.get("/api/health")
    await other.runtime.sampler.budget.refresh()
    assert other.runtime.sampler.budget.spent_usd > 0.0001 and not other.runtime.sampler.budget.allows()


async def test_export_then_router_eval_and_calibrate_from_quality(
    quality: Harness, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
):
    h = quality
    for i, (picks, _) in enumerate(CASES):
        await route(h, f"What is the capital of France? ({i})", picks, f"e-{i}")
    s = h.settings
    for key in ("TABLES_CONNECTION_STRING", "QUALITY_TABLE", "MODELS_TABLE", "COSTS_TABLE", "HEALTH_TABLE"):
        monkeypatch.setenv(key, str(getattr(s, key)))
    out = tmp_path / "mine.jsonl"
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert (
        await asyncio.to_thread(main, ["quality", "export", "--from", day, "--to", day, "--out", str(out)])
        == 0
    )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 10
    score = {"win": 1.0, "tie": 0.5, "loss": 0.0}
    assert [r["scores"] for r in lines] == [{"small": score[v], "large": 1 - score[v]} for _, v in CASES]
    assert all(r["cost"]["small"] > 0 and r["cost"]["large"] > 0 for r in lines)
    code = await asyncio.to_thread(
        main,
        [
            "eval",
            "--data",
            str(out),
            "--strong",
            "large",
            "--weak",
            "small",
            "--classifier",
            "seed",
            "--prompt-field",
            "prompt",
            "--json",
        ],
    )
    assert code == 0
    # calibrate --from-quality: small's 8/10 win-or-tie rate misses a 0.9 target, so its threshold is
    # lowered to the highest complexity at which the samples at or below it still reach 0.9.
    args = ["calibrate", "--from-quality", "--from", day, "--to", day, "--target-quality", "0.9", "--apply"]
    assert await asyncio.to_thread(main, args) == 0
    models = {m.name: m for m in await read_table(await h.runtime.table(s.MODELS_TABLE), s.endpoint_policy)}
    assert models["small"].max_complexity < MODELS[0].max_complexity
    assert models["large"].max_complexity == 1.0
    assert await asyncio.to_thread(main, ["quality", "report", "--from", day, "--to", day]) == 0


async def test_under_the_functions_relay_the_response_ends_before_the_shadow_call(quality: Harness):
    """The Functions host (HTTP streams): the relay ends a response when the app's ASGI call returns,
    after the request's own cost records were awaited (``functions_host``); the sample starts only then,
    as a detached task the invocation does not wait for."""
    h = quality
    await warm(h)
    hosted = create_app(h.runtime, functions_host=True)
    worker = FastAPI()

    @worker.api_route("/{path:path}", methods=["GET", "POST"])
    async def catch_all(request: Request) -> Any:
        return await relay(hosted, request)

    ended: list[float] = []

    async def stamped(scope: Any, receive: Any, send: Any) -> None:
        async def send_and_stamp(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                ended.append(time.monotonic())

        await worker(scope, receive, send_and_stamp)

    h.simulator.script("dep-small", Reply(content=ROUTED))
    h.simulator.script(
        "dep-large", Reply(content=BASELINE, delay_s=1.5), Reply(content="B"), Reply(content="A")
    )
    transport = httpx2.ASGITransport(app=stamped)
    async with httpx2.AsyncClient(transport=transport, base_url="http://worker.test") as client:
        started = time.monotonic()
        r = await client.post("/api/route", json={"query": "What is the capital of France?"})
        returned = time.monotonic()
    # The baseline takes 1.5 s to answer the shadow call: the invocation did not wait for it.
    assert r.status_code == 200 and r.json()["response"] == ROUTED and returned - started < 1.0
    rows = await samples(h)
    assert [e["verdict"] for e in rows] == ["loss"]
    assert r.json()["request_id"] in [c["request_id"] for c in await h.costs()]
    assert ended and h.simulator.calls_to("dep-large")[0].at > ended[0]
