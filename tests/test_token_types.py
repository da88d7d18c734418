"""Token types end to end: cached prompt tokens at the cached input price, reasoning tokens as output,
in every stored record (non-streaming, streaming, fallback, /api/route, the baseline), read defensively
from the upstream's usage, reported by /api/costs, the CLI and the dashboard, and produced by the
simulator the way Azure does. Real Azurite, the simulator over HTTP, the real openai SDK."""

from __future__ import annotations

from datetime import date
from typing import Any

import openai
import pytest

from router.api.app import create_app
from router.costs.records import CostRecord
from router.dev.simulator import Reply
from router.models.config import ModelConfig
from router.pipeline import pricing
from router.reports.aggregate import Summary, build_report, figures, summarize
from router.reports.cli import format_report
from router.reports.dashboard import render
from router.reports.period import Period
from router.runtime import Runtime
from router.upstream.usage import read_usage
from tests.conftest import MODELS, UPSTREAM_CLIENTS, Harness, unique
from tests.support import ThreadServer
from tests.test_chat_completions import _records

NANO = 1e-9  # every price component to 1e-9 USD

CACHED_PRICES = {"small": 0.000075, "medium": 0.0001, "large": 0.0005}
PRICED = [m.model_copy(update={"cached_input_cost_per_1k": CACHED_PRICES[m.name]}) for m in MODELS]
THINKER = ModelConfig(
    name="thinker", deployment="dep-thinker", cost_per_1k_tokens=0.001925, input_cost_per_1k=0.0011,
    cached_input_cost_per_1k=0.000275, output_cost_per_1k=0.0044, avg_latency_ms=4000, max_complexity=0.2,
    reasoning=True,
)  # fmt: skip
CATALOGUE = [*PRICED, THINKER]
BY_NAME = {m.name: m for m in CATALOGUE}
LONG = "Summarise the following log for an on-call engineer. " + "disk latency spike on node-7; " * 170


@pytest.fixture(params=UPSTREAM_CLIENTS)
def upstream_client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def served(harness_factory: Any):
    h = await harness_factory(models=CATALOGUE)
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    h.server_url = server.url  # type: ignore[attr-defined]
    client = openai.AsyncOpenAI(
        base_url=f"{server.url}/api/v1", api_key="ignored", max_retries=0,
        default_headers={"x-functions-key": "the-function-key"},
    )  # fmt: skip
    yield h, client
    await client.close()
    server.stop()


def expected_cost(model: ModelConfig, prompt: int, completion: int, cached: int) -> float:
    """The formula, written out independently of router.pipeline.pricing."""
    in_, cached_in, out = model.input_cost_per_1k, model.cached_input_cost_per_1k, model.output_cost_per_1k
    assert in_ is not None and cached_in is not None and out is not None
    return (prompt - cached) / 1000 * in_ + cached / 1000 * cached_in + completion / 1000 * out


def assert_priced(rec: dict[str, Any], model: str, baseline: str = "large") -> None:
    p, c, k = rec["prompt_tokens"], rec["completion_tokens"], rec["cached_tokens"]
    assert rec["model"] == model and rec["baseline_model"] == baseline
    assert rec["cost_usd"] == pytest.approx(expected_cost(BY_NAME[model], p, c, k), abs=NANO)
    assert rec["baseline_cost_usd"] == pytest.approx(expected_cost(BY_NAME[baseline], p, c, k), abs=NANO)
    m = BY_NAME[model]
    saved = k / 1000 * (m.input_price - m.cached_input_price)
    assert rec["cache_savings_usd"] == pytest.approx(saved, abs=NANO)


async def _ask(client: openai.AsyncOpenAI, model: str, rid: str, content: str = LONG, **kw: Any) -> Any:
    return await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": content}],
        extra_headers={"x-request-id": rid},
        **kw,
    )


async def test_a_repeated_long_prompt_is_cached_and_each_part_priced_to_a_nanodollar(served):
    h, client = served
    first = await _ask(client, "small", "tt-uncached")
    second = await _ask(client, "small", "tt-cached")
    assert first.usage.prompt_tokens >= 1024
    assert second.usage.prompt_tokens_details.cached_tokens == 1280  # 1,024 + two 128-token steps
    [uncached] = await _records(h, "tt-uncached")
    [cached] = await _records(h, "tt-cached")
    assert (uncached["cached_tokens"], uncached["reasoning_tokens"]) == (0, 0)
    assert uncached["cache_savings_usd"] == 0
    assert_priced(uncached, "small")
    assert cached["cached_tokens"] == 1280 and cached["prompt_tokens"] == uncached["prompt_tokens"]
    assert_priced(cached, "small")
    # The cached part is cheaper: exactly the cached tokens at (input - cached input) price.
    assert uncached["cost_usd"] - cached["cost_usd"] == pytest.approx(1.280 * (0.00015 - 0.000075), abs=NANO)


async def test_exact_components_cached_uncached_and_baseline_on_its_own_prices(served):
    h, client = served
    h.simulator.script("dep-medium", Reply(content="ok", prompt_tokens=10_000, completion_tokens=2_000,
                                           cached_tokens=6_144))  # fmt: skip
    await _ask(client, "medium", "tt-exact", content="short")
    [rec] = await _records(h, "tt-exact")
    assert (rec["prompt_tokens"], rec["cached_tokens"], rec["completion_tokens"]) == (10_000, 6_144, 2_000)
    # 3,856 uncached × $0.0004/1k + 6,144 cached × $0.0001/1k + 2,000 × $0.0016/1k
    assert rec["cost_usd"] == pytest.approx(0.0015424 + 0.0006144 + 0.0032, abs=NANO)
    # Baseline (large): 3,856 × $0.002/1k + 6,144 × $0.0005/1k + 2,000 × $0.008/1k
    assert rec["baseline_cost_usd"] == pytest.approx(0.007712 + 0.003072 + 0.016, abs=NANO)
    assert rec["cache_savings_usd"] == pytest.approx(6.144 * 0.0003, abs=NANO)


async def test_reasoning_tokens_are_recorded_and_billed_as_output(served):
    h, client = served
    h.simulator.reasoning_deployments.add("dep-thinker")
    reply = await _ask(client, "thinker", "tt-reason", content="Prove that sqrt(2) is irrational.")
    reasoning = reply.usage.completion_tokens_details.reasoning_tokens
    assert reasoning > 0 and reply.usage.completion_tokens > reasoning  # visible text besides
    [rec] = await _records(h, "tt-reason")
    assert rec["reasoning_tokens"] == reasoning
    assert rec["completion_tokens"] == reply.usage.completion_tokens
    assert_priced(rec, "thinker")
    # Reasoning is output: the completion part is every completion token at the output price.
    visible_only = expected_cost(THINKER, rec["prompt_tokens"], rec["completion_tokens"] - reasoning, 0)
    assert rec["cost_usd"] - visible_only == pytest.approx(reasoning / 1000 * 0.0044, abs=NANO)


async def test_streaming_reads_cached_and_reasoning_tokens_from_the_usage_chunk(served):
    h, client = served
    h.simulator.reasoning_deployments.add("dep-thinker")
    await _ask(client, "thinker", "tt-warm")
    stream = await _ask(client, "thinker", "tt-stream", stream=True)
    chunks = [c async for c in stream]
    assert all(c.usage is None for c in chunks)  # the caller did not ask; the router did
    [rec] = await _records(h, "tt-stream")
    assert rec["status"] == "ok" and rec["cached_tokens"] == 1280 and rec["reasoning_tokens"] > 0
    assert_priced(rec, "thinker")


async def test_a_fallback_is_priced_on_the_model_that_answered_with_its_token_types(served):
    h, client = served
    h.simulator.script("dep-small", Reply(status=429, headers={"retry-after": "5"}))
    h.simulator.script("dep-medium", Reply(content="ok", prompt_tokens=4_000, completion_tokens=100,
                                           cached_tokens=2_048))  # fmt: skip
    raw = await client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "tt-fb"}
    )
    assert raw.parse().model == "medium"
    [rec] = await _records(h, "tt-fb")
    assert rec["fallbacks"] == 1 and rec["cached_tokens"] == 2_048
    assert_priced(rec, "medium")
    assert rec["cost_usd"] == pytest.approx(1.952 * 0.0004 + 2.048 * 0.0001 + 0.1 * 0.0016, abs=NANO)


async def test_api_route_records_cached_tokens_through_the_sdk_client(harness_factory: Any):
    h: Harness = await harness_factory(models=CATALOGUE)
    h.simulator.script("dep-small", Reply(content="Hello!", prompt_tokens=3_000, completion_tokens=50,
                                          cached_tokens=1_024))  # fmt: skip
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "tt-route"})
    assert r.status_code == 200, r.text
    [rec] = [e for e in await h.costs() if e["request_id"] == "tt-route"]
    assert rec["cached_tokens"] == 1_024
    assert_priced(rec, "small")
    assert r.json()["estimated_cost"] == pytest.approx(rec["cost_usd"], abs=NANO)


@pytest.mark.parametrize(
    ("usage", "cached", "reasoning"),
    [
        ({"prompt_tokens_details": {"cached_tokens": 512},
          "completion_tokens_details": {"reasoning_tokens": 7}}, 512, 7),
        ({"prompt_tokens_details": {"cached_tokens": 5_000}}, 0, 0),  # more than the prompt
        ({"completion_tokens_details": {"reasoning_tokens": 11}}, 0, 0),  # more than the completion
        ({"prompt_tokens_details": {"cached_tokens": -1}}, 0, 0),
        ({"prompt_tokens_details": {"cached_tokens": True}}, 0, 0),
        ({"prompt_tokens_details": {"cached_tokens": 1.5}}, 0, 0),
        ({"prompt_tokens_details": {"cached_tokens": 2**31}}, 0, 0),
        ({"prompt_tokens_details": {"cached_tokens": "512"}}, 0, 0),
        ({"prompt_tokens_details": None, "completion_tokens_details": []}, 0, 0),
        ({"prompt_tokens_details": {"cached_tokens": 256.0}}, 256, 0),
        ({}, 0, 0),
    ],
)  # fmt: skip
def test_token_details_are_coerced_like_the_other_counts(usage: dict[str, Any], cached: int, reasoning: int):
    got = read_usage({"prompt_tokens": 1_000, "completion_tokens": 10, **usage}, 99, 40)
    assert (got.prompt_tokens, got.completion_tokens, got.estimated) == (1_000, 10, False)
    assert (got.cached_tokens, got.reasoning_tokens) == (cached, reasoning)


def test_details_of_a_missing_total_are_not_trusted():
    got = read_usage({"prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens": 3}, 99, 40)
    assert got.estimated and got.prompt_tokens == 99 and got.cached_tokens == 0


def test_pricing_defaults_the_cached_price_to_the_input_price_and_clamps_cached():
    plain = MODELS[0]  # no cached price: the cache saves nothing, the cost is as before
    assert plain.cached_input_price == plain.input_price
    assert pricing.call_cost(plain, 2_000, 100, 1_500) == pricing.call_cost(plain, 2_000, 100)
    assert pricing.cache_savings(plain, 2_000, 1_500) == 0
    small = PRICED[0]
    assert pricing.call_cost(small, 1_000, 0, 5_000) == pytest.approx(1.0 * 0.000075, abs=1e-15)


def test_old_model_rows_stay_valid_and_new_fields_round_trip():
    old = {"PartitionKey": "models", "RowKey": "legacy", "deployment": "d", "cost_per_1k_tokens": 0.001,
           "avg_latency_ms": 100.0, "max_complexity": 0.5}  # fmt: skip
    legacy = ModelConfig.from_entity(old)
    assert legacy.cached_input_cost_per_1k is None and legacy.reasoning is False
    assert legacy.cached_input_price == legacy.input_price == 0.001
    entity = THINKER.to_entity()
    assert entity["cached_input_cost_per_1k"] == 0.000275 and entity["reasoning"] is True
    assert ModelConfig.from_entity(entity) == THINKER


async def test_api_models_shows_cached_price_and_reasoning(harness_factory: Any):
    h: Harness = await harness_factory(models=[MODELS[0], THINKER])
    body = (await h.client.get("/api/models")).json()
    out = {m["name"]: m for m in body["models"]}
    assert out["small"]["cached_input_cost_per_1k"] == MODELS[0].input_price  # defaulted
    assert out["small"]["reasoning"] is False
    assert (out["thinker"]["cached_input_cost_per_1k"], out["thinker"]["reasoning"]) == (0.000275, True)


def test_simulator_caches_only_repeated_prompts_of_1024_tokens_or_more(simulator: Any):
    short = [{"role": "user", "content": "hello " * 100}]
    assert simulator._cached("dep", short) == 0
    assert simulator._cached("dep", short) == 0  # repeated, but under 1,024 tokens
    long = [{"role": "system", "content": "x" * 5_000}, {"role": "user", "content": "first"}]
    assert simulator._cached("dep", long) == 0  # new
    assert simulator._cached("other", long) == 0  # per deployment
    follow_up = [*long, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "next"}]
    assert (
        simulator._cached("dep", follow_up) == 1024 + 128
    )  # the earlier prefix (1,260 tokens) in 128-token steps


# -- the report ---------------------------------------------------------------------------------------

DAY = date(2025, 4, 2)


def _rec(rid: str, hour: int, **kw: Any) -> CostRecord:
    from datetime import UTC, datetime

    return CostRecord(
        request_id=rid, timestamp=datetime(2025, 4, 2, hour, tzinfo=UTC), model="small",
        deployment="dep-small", complexity=0.1, classifier="seed", baseline_model="large", latency_ms=100.0,
        **kw,
    )  # fmt: skip


def _seed_records() -> list[dict[str, Any]]:
    new = _rec("n1", 1, prompt_tokens=4_000, cached_tokens=3_072, completion_tokens=100, reasoning_tokens=40,
               cost_usd=0.1234567891, cache_savings_usd=0.0002304, baseline_cost_usd=0.5)  # fmt: skip
    new2 = _rec("n2", 2, prompt_tokens=2_000, cached_tokens=1_024, cost_usd=0.01, cache_savings_usd=0.0000768,
                baseline_cost_usd=0.02)  # fmt: skip
    old = _rec("o1", 3, prompt_tokens=500, completion_tokens=20, cost_usd=0.002, baseline_cost_usd=0.01)
    old_entity = old.to_entity()
    for key in ("cached_tokens", "reasoning_tokens", "cache_savings_usd"):
        del old_entity[key]  # a record written before the token types existed
    return [new.to_entity(), new2.to_entity(), old_entity]


async def test_costs_report_shows_cached_tokens_and_cache_savings_old_records_included(harness_factory: Any):
    h: Harness = await harness_factory(models=None, COSTS_ROLLUP_TABLE=unique("rollups"))
    table = await h.runtime.table(h.settings.COSTS_TABLE)
    for e in _seed_records():
        await table.upsert_entity(e)
    for _ in range(2):  # a scan (storing the day's roll-up), then the roll-up: the same numbers
        r = await h.client.get("/api/costs?from=2025-04-02&to=2025-04-02&group_by=model")
        assert r.status_code == 200, r.text
        t = r.json()["totals"]
        assert (t["calls"], t["prompt_tokens"], t["cached_tokens"], t["reasoning_tokens"]) == (
            3,
            6_500,
            4_096,
            40,
        )
        assert t["cache_savings_usd"] == pytest.approx(0.0003072, abs=1e-12)
        assert t["spend_usd"] == pytest.approx(0.1354567891, abs=NANO)
        [g] = r.json()["groups"]
        assert (g["cached_tokens"], g["cache_savings_usd"]) == (4_096, t["cache_savings_usd"])
    assert r.json()["source"]["rollup_days"] == 1


def test_summary_sums_cache_savings_in_integer_picodollars_and_round_trips():
    cube = summarize(DAY.isoformat(), _seed_records())
    [s] = cube.values()
    assert (s.cached_tokens, s.reasoning_tokens, s.cache_savings) == (4_096, 40, 307_200_000)
    assert Summary.from_dict(s.to_dict()) == s
    assert Summary.from_dict({"calls": 1}).cached_tokens == 0  # an old roll-up dict
    assert figures(s)["cache_savings_usd"] == 0.0003072


def test_cli_and_dashboard_show_cached_tokens_and_what_caching_saved():
    cube = summarize(DAY.isoformat(), _seed_records())
    report = build_report(cube, DAY, DAY, "model")
    text = format_report(report)
    assert "tokens          6,500 prompt (4,096 cached) / 120 completion (40 reasoning)" in text
    assert "prompt cache    $0.000307  saved" in text
    html = render(cube, Period(DAY, DAY), {"scanned_days": 1})
    assert 'data-k="Prompt cache saved">$0.0003<' in html
    assert "4,096 of 6,500 prompt tokens cached" in html
    assert "<th>cached tokens</th>" in html and "<td>4,096</td>" in html
