"""Responses, headers and cost records name the scorer (its registry name), and the savings report can
split by it: two scorers' traffic through one costs table, told apart by ``group_by=scorer``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.dev.simulator import Reply
from tests.conftest import Harness

HARD = "Prove that there are infinitely many primes, and explain each step of the argument in detail."


async def _records(h: Harness) -> dict[str, dict]:
    await h.runtime.built_service.recorder.idle()
    return {r["request_id"]: r for r in await h.costs()}


async def test_route_and_decide_name_the_scorer_in_body_header_and_record(harness_factory):
    h: Harness = await harness_factory(CLASSIFIER="improved", JUDGE_ENABLED=False)
    h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=10, completion_tokens=2))
    r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "sc-1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scorer"] == "improved" == r.headers["x-router-scorer"]
    assert body["classifier"] == "heuristic"  # kept for compatibility: any non-LLM score
    assert body["complexity"] == round(body["complexity"], 4)

    d = await h.client.post("/api/decide", json={"query": HARD})
    assert d.status_code == 200, d.text
    assert d.json()["scorer"] == "improved" == d.headers["x-router-scorer"]
    assert d.json()["complexity"] == round(d.json()["complexity"], 4)

    rec = (await _records(h))["sc-1"]
    assert rec["scorer"] == "improved" and rec["classifier"] == "heuristic"
    assert rec["complexity"] == body["complexity"]


async def test_chat_completions_name_the_scorer_in_headers_and_record(harness_factory):
    h: Harness = await harness_factory(CLASSIFIER="seed", JUDGE_ENABLED=False)
    h.simulator.script("dep-small", Reply(content="Paris.", prompt_tokens=9, completion_tokens=2))
    r = await h.client.post(
        "/api/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": "Capital of France?"}]},
        headers={"x-request-id": "sc-chat"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-router-scorer"] == "seed"
    assert (await _records(h))["sc-chat"]["scorer"] == "seed"


async def test_costs_report_groups_by_scorer(harness_factory):
    first: Harness = await harness_factory(CLASSIFIER="seed", JUDGE_ENABLED=False)
    # A second app with another scorer writing to the same costs table, as after a CLASSIFIER change.
    second: Harness = await harness_factory(
        models=None, CLASSIFIER="improved", JUDGE_ENABLED=False,
        MODELS_TABLE=first.settings.MODELS_TABLE, COSTS_TABLE=first.settings.COSTS_TABLE,
        COSTS_ROLLUP_TABLE=first.settings.COSTS_ROLLUP_TABLE,
    )  # fmt: skip
    for h, n in ((first, 2), (second, 3)):
        for _ in range(n):
            h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=1000, completion_tokens=0))
            assert (await h.client.post("/api/route", json={"query": "hi"})).status_code == 200
        await h.runtime.built_service.recorder.idle()
    today = datetime.now(UTC).date().isoformat()
    r = await first.client.get(f"/api/costs?from={today}&to={today}&group_by=scorer")
    assert r.status_code == 200, r.text
    groups = {g["scorer"]: g for g in r.json()["groups"]}
    assert {k: g["calls"] for k, g in groups.items()} == {"improved": 3, "seed": 2}
    # 1000 prompt tokens on "small" at $0.00015/1k each
    assert groups["improved"]["spend_usd"] == pytest.approx(3 * 0.00015, abs=1e-9)
    assert groups["seed"]["spend_usd"] == pytest.approx(2 * 0.00015, abs=1e-9)
