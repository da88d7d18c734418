"""GET /api/costs against real Azurite: every number of a hand-computed data set, the roll-up path, the
Table queries it sends, and 400s for bad ranges.

The data set (costs in USD; "judge" = classifier overhead; latency in ms; * = error):

    day         rec  model   classifier          cost   judge  baseline  latency  fallbacks
    2025-03-01  r1   small   heuristic           4.50   -       6.00      100     0
                r2   small   llm                 9.00   0.10   12.00      200     0
                r3   large   heuristic          16.00   -      16.00     1000     1
    2025-03-02  r4   medium  llm                 4.40   0.20   22.00      500     0
                r5*  medium  heuristic           0      -       0       30000     2
                r6   small   heuristic-fallback  1.50   0 (asked, timed out)  5.00  300  0
    2025-03-03  r7   small   learned             8.00   -      28.00      150     0
                r8*  large   llm                 0      0.30    0         800     1
                r9   medium  learned             2.00   -      10.00      400     3
                r10  small   heuristic           0.60   -       1.00      120     0

plus one record a millisecond before 2025-03-01 and one at 2025-03-04 00:00 (each $1000: out of range).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from router.api.app import create_app
from router.costs.records import CostRecord
from router.runtime import Runtime
from tests.conftest import Harness, unique

D1 = datetime(2025, 3, 1, tzinfo=UTC)
RANGE = "from=2025-03-01&to=2025-03-03"


def rec(
    ts: datetime,
    rid: str,
    model: str,
    classifier: str,
    cost: float,
    baseline: float,
    latency: float,
    **kw: Any,
):
    return CostRecord(
        request_id=rid,
        timestamp=ts,
        model=model,
        deployment=f"dep-{model}",
        complexity=0.5,
        classifier=classifier,
        cost_usd=cost,
        baseline_model="large",
        baseline_cost_usd=baseline,
        latency_ms=latency,
        **kw,
    )


def judge(cost: float, pt: int, ct: int) -> dict[str, Any]:
    return {
        "classifier_model": "small",
        "classifier_cost_usd": cost,
        "classifier_prompt_tokens": pt,
        "classifier_completion_tokens": ct,
    }


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return D1 + timedelta(days=day, hours=hour, minutes=minute)


SEED = [
    rec(at(0, 1), "r1", "small", "heuristic", 4.50, 6.00, 100, prompt_tokens=1000, completion_tokens=500),
    rec(
        at(0, 5),
        "r2",
        "small",
        "llm",
        9.00,
        12.00,
        200,
        prompt_tokens=2000,
        completion_tokens=1000,
        **judge(0.10, 200, 2),
    ),
    rec(
        at(0, 23, 59),
        "r3",
        "large",
        "heuristic",
        16.00,
        16.00,
        1000,
        prompt_tokens=4000,
        completion_tokens=1000,
        fallbacks=1,
    ),
    rec(
        at(1, 0),
        "r4",
        "medium",
        "llm",
        4.40,
        22.00,
        500,
        prompt_tokens=3000,
        completion_tokens=2000,
        **judge(0.20, 300, 3),
    ),
    rec(
        at(1, 7),
        "r5",
        "medium",
        "heuristic",
        0.0,
        0.0,
        30000,
        status="error",
        error_code="upstream_timeout",
        fallbacks=2,
    ),
    rec(
        at(1, 12),
        "r6",
        "small",
        "heuristic-fallback",
        1.50,
        5.00,
        300,
        prompt_tokens=500,
        completion_tokens=500,
        **judge(0.0, 0, 0),
    ),
    rec(at(2, 3), "r7", "small", "learned", 8.00, 28.00, 150, prompt_tokens=10000, completion_tokens=1000),
    rec(
        at(2, 9),
        "r8",
        "large",
        "llm",
        0.0,
        0.0,
        800,
        status="error",
        error_code="upstream_http_500",
        fallbacks=1,
        **judge(0.30, 400, 4),
    ),
    rec(
        at(2, 15),
        "r9",
        "medium",
        "learned",
        2.00,
        10.00,
        400,
        prompt_tokens=1000,
        completion_tokens=1000,
        fallbacks=3,
    ),
    rec(at(2, 21), "r10", "small", "heuristic", 0.60, 1.00, 120, prompt_tokens=100, completion_tokens=100),
    # Just outside the range on either side: must never be counted.
    rec(D1 - timedelta(milliseconds=1), "before", "large", "heuristic", 1000.0, 1000.0, 5),
    rec(at(3, 0), "after", "large", "heuristic", 1000.0, 1000.0, 5),
]

TOTALS = {
    "calls": 10,
    "ok": 8,
    "errors": 2,
    "prompt_tokens": 21_600,
    "completion_tokens": 7_100,
    "judge_calls": 4,
    "judge_prompt_tokens": 900,
    "judge_completion_tokens": 9,
    "fallbacks": 7,
    "calls_with_fallbacks": 4,
    "spend_usd": 46.00,
    "overhead_usd": 0.60,
    "total_spend_usd": 46.60,
    "baseline_usd": 100.00,
    "savings_usd": 53.40,
    "savings_pct": 53.4,
}
# ok latencies sorted: 100 120 150 200 300 400 500 1000 -> nearest rank 4 (p50) and 8 (p95)
LATENCY = (200, 1000)

BY_MODEL = {
    # calls, errors, fallbacks, spend, judge, total, baseline, savings, pct, share, p50, p95
    "small": (5, 0, 0, 23.60, 0.10, 23.70, 52.00, 28.30, 54.4231, 0.5, 150, 300),
    "medium": (3, 1, 5, 6.40, 0.20, 6.60, 32.00, 25.40, 79.375, 0.3, 400, 500),
    "large": (2, 1, 2, 16.00, 0.30, 16.30, 16.00, -0.30, -1.875, 0.2, 1000, 1000),
}
BY_DAY = {
    "2025-03-01": (3, 0, 1, 29.50, 0.10, 29.60, 34.00, 4.40, 12.9412),
    "2025-03-02": (3, 1, 2, 5.90, 0.20, 6.10, 27.00, 20.90, 77.4074),
    "2025-03-03": (4, 1, 4, 10.60, 0.30, 10.90, 39.00, 28.10, 72.0513),
}
BY_CLASSIFIER = {
    # calls, spend, judge, baseline, savings
    "heuristic": (4, 21.10, 0.0, 23.00, 1.90),
    "llm": (3, 13.40, 0.60, 34.00, 20.00),
    "learned": (2, 10.00, 0.0, 38.00, 28.00),
    "heuristic-fallback": (1, 1.50, 0.0, 5.00, 3.50),
}

CENT = 1e-9  # money is summed exactly: assert far below a cent


@pytest.fixture
async def harness(harness_factory: Any) -> Harness:
    """Each test gets its own roll-up table too (the shared default would leak roll-ups between tests)."""
    return await harness_factory(models=None, COSTS_ROLLUP_TABLE=unique("rollups"))


async def seed(h_runtime: Runtime, table_name: str, records: list[CostRecord]) -> None:
    table = await h_runtime.table(table_name)
    for r in records:
        await table.upsert_entity(r.to_entity())


def assert_latency(fig: dict[str, Any], p50: float, p95: float) -> None:
    # Log-bucket percentiles: within 1% of the exact nearest-rank value.
    assert fig["latency_p50_ms"] == pytest.approx(p50, rel=0.0101)
    assert fig["latency_p95_ms"] == pytest.approx(p95, rel=0.0101)


def assert_totals(totals: dict[str, Any]) -> None:
    for key, expected in TOTALS.items():
        assert totals[key] == pytest.approx(expected, abs=CENT), key
    assert_latency(totals, *LATENCY)


async def test_costs_report_every_number_by_model_from_scan_then_from_rollups(harness: Harness):
    await seed(harness.runtime, harness.settings.COSTS_TABLE, SEED)

    r = await harness.client.get(f"/api/costs?{RANGE}&group_by=model")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["to"], body["days"], body["group_by"]) == (
        "2025-03-01",
        "2025-03-03",
        3,
        "model",
    )
    assert_totals(body["totals"])
    assert [g["model"] for g in body["groups"]] == ["small", "medium", "large"]
    for g in body["groups"]:
        calls, errors, fb, spend, judge_usd, total, base, sav, pct, share, p50, p95 = BY_MODEL[g["model"]]
        assert (g["calls"], g["errors"], g["fallbacks"]) == (calls, errors, fb), g["model"]
        assert g["spend_usd"] == pytest.approx(spend, abs=CENT)
        assert g["overhead_usd"] == pytest.approx(judge_usd, abs=CENT)
        assert g["total_spend_usd"] == pytest.approx(total, abs=CENT)
        assert g["baseline_usd"] == pytest.approx(base, abs=CENT)
        assert g["savings_usd"] == pytest.approx(sav, abs=CENT)
        assert g["savings_pct"] == pytest.approx(pct, abs=1e-4)
        assert g["share_of_calls"] == pytest.approx(share)
        assert_latency(g, p50, p95)
    assert body["calls_by_model"] == [
        {"model": "small", "calls": 5, "share_of_calls": 0.5},
        {"model": "medium", "calls": 3, "share_of_calls": 0.3},
        {"model": "large", "calls": 2, "share_of_calls": 0.2},
    ]
    # First report: the three closed days were scanned and their roll-ups stored.
    assert body["source"] == {"rollup_days": 0, "scanned_days": 3, "stored_days": 3, "rows_scanned": 10}

    again = (await harness.client.get(f"/api/costs?{RANGE}&group_by=model")).json()
    assert again["source"] == {"rollup_days": 3, "scanned_days": 0, "stored_days": 0, "rows_scanned": 0}
    assert {k: v for k, v in again.items() if k != "source"} == {
        k: v for k, v in body.items() if k != "source"
    }

    rollups = await harness.runtime.table(harness.settings.COSTS_ROLLUP_TABLE)
    markers = {e["PartitionKey"]: e["calls"] async for e in rollups.query_entities("RowKey eq 'day'")}
    assert markers == {"2025-03-01": 3, "2025-03-02": 3, "2025-03-03": 4}


async def test_costs_by_day_and_by_classifier(harness: Harness):
    await seed(harness.runtime, harness.settings.COSTS_TABLE, SEED)
    r = await harness.client.get("/api/costs?from=2025-02-28&to=2025-03-04&group_by=day")
    assert r.status_code == 200, r.text
    groups = {g["day"]: g for g in r.json()["groups"]}
    assert list(groups) == ["2025-02-28", "2025-03-01", "2025-03-02", "2025-03-03", "2025-03-04"]
    assert groups["2025-02-28"]["calls"] == groups["2025-03-04"]["calls"] == 1  # the edge records
    assert groups["2025-02-28"]["total_spend_usd"] == pytest.approx(1000.0, abs=CENT)
    for day, (calls, errors, fb, spend, judge_usd, total, base, sav, pct) in BY_DAY.items():
        g = groups[day]
        assert (g["calls"], g["errors"], g["fallbacks"]) == (calls, errors, fb), day
        got = (g["spend_usd"], g["overhead_usd"], g["total_spend_usd"], g["baseline_usd"], g["savings_usd"])
        assert got == pytest.approx((spend, judge_usd, total, base, sav), abs=CENT), day
        assert g["savings_pct"] == pytest.approx(pct, abs=1e-4), day

    r = await harness.client.get(f"/api/costs?{RANGE}&group_by=classifier")
    groups = {g["classifier"]: g for g in r.json()["groups"]}
    assert list(groups) == list(BY_CLASSIFIER)  # most calls first
    for name, (calls, spend, judge_usd, base, sav) in BY_CLASSIFIER.items():
        g = groups[name]
        assert g["calls"] == calls
        got = (g["spend_usd"], g["overhead_usd"], g["baseline_usd"], g["savings_usd"])
        assert got == pytest.approx((spend, judge_usd, base, sav), abs=CENT), name

    r = await harness.client.get(f"/api/costs?{RANGE}")
    assert r.json()["groups"] == [] and r.json()["group_by"] is None
    assert_totals(r.json()["totals"])


async def test_closed_days_come_from_rollups_and_today_is_scanned_live(harness: Harness):
    now = datetime.now(UTC)
    today = [rec(now - timedelta(seconds=1), "t1", "small", "heuristic", 1.25, 2.50, 100)]
    await seed(harness.runtime, harness.settings.COSTS_TABLE, SEED + today)
    first = (await harness.client.get(f"/api/costs?{RANGE}")).json()
    assert first["totals"]["total_spend_usd"] == pytest.approx(46.60, abs=CENT)

    # A record that lands in a closed day after its roll-up is not seen until the roll-up is rebuilt:
    # proof that the second report reads roll-ups rather than raw rows.
    late = rec(at(1, 18), "late", "small", "heuristic", 3.00, 4.00, 100)
    await seed(harness.runtime, harness.settings.COSTS_TABLE, [late])
    second = (await harness.client.get(f"/api/costs?{RANGE}")).json()
    assert second["totals"]["calls"] == 10 and second["source"]["rollup_days"] == 3

    # Today (open) is always scanned, never stored, and picks up new rows at once.
    day = now.date().isoformat()
    r1 = (await harness.client.get(f"/api/costs?from={day}&to={day}")).json()
    assert r1["totals"]["calls"] == 1 and r1["totals"]["savings_usd"] == pytest.approx(1.25, abs=CENT)
    assert r1["source"]["stored_days"] == 0
    await seed(harness.runtime, harness.settings.COSTS_TABLE, [rec(now, "t2", "large", "llm", 0.5, 0.5, 90)])
    r2 = (await harness.client.get(f"/api/costs?from={day}&to={day}")).json()
    assert r2["totals"]["calls"] == 2 and r2["totals"]["total_spend_usd"] == pytest.approx(1.75, abs=CENT)
    rollups = await harness.runtime.table(harness.settings.COSTS_ROLLUP_TABLE)
    assert [e async for e in rollups.query_entities("PartitionKey eq @d", parameters={"d": day})] == []

    # Default range: the last 7 days ending today.
    default = (await harness.client.get("/api/costs")).json()
    assert default["to"] == day and default["days"] == 7 and default["totals"]["calls"] == 2


async def test_report_queries_read_only_partitions_in_range_and_select_only_needed_columns(
    settings_factory: Any,
):
    settings = settings_factory(COSTS_ROLLUP_TABLE=unique("rollups"))
    seen: list[str] = []

    def hook(request: Any) -> None:
        seen.append(request.http_request.url)

    runtime = Runtime(settings, table_transport={"raw_request_hook": hook})
    try:
        await seed(runtime, settings.COSTS_TABLE, SEED)
        seen.clear()
        app = create_app(runtime)
        import httpx2

        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as c:
            r = await c.get(f"/api/costs?{RANGE}")
        assert r.status_code == 200
    finally:
        await runtime.close()

    queries = [parse_qs(urlparse(u).query) for u in seen if f"/{settings.COSTS_TABLE}()" in u]
    assert queries, seen
    expected_columns = {
        "model", "classifier", "scorer", "status", "prompt_tokens", "completion_tokens", "cost_usd",
        "classifier_model", "classifier_prompt_tokens", "classifier_completion_tokens",
        "classifier_cost_usd", "baseline_cost_usd", "latency_ms", "fallbacks",
        "cached_tokens", "reasoning_tokens", "cache_savings_usd", "caller", "team",
        "deployment", "endpoint", "provisioned",  # the backend (group_by=deployment)
    }  # fmt: skip
    partitions = set()
    for q in queries:
        assert set(q["$select"][0].split(",")) == expected_columns
        flt = q["$filter"][0]
        assert flt.startswith("PartitionKey eq '"), flt
        partitions.add(flt.split("'")[1])
    assert partitions == {"2025-03-01", "2025-03-02", "2025-03-03"}
    rollup_queries = [parse_qs(urlparse(u).query) for u in seen if f"/{settings.COSTS_ROLLUP_TABLE}()" in u]
    assert any(
        q.get("$filter") == ["PartitionKey ge '2025-03-01' and PartitionKey le '2025-03-03'"]
        for q in rollup_queries
    )


BAD = [
    ("from=2025-03-05&to=2025-03-01", "from: must be on or before to"),
    ("from=2025-13-01&to=2025-03-01", "from: is not a calendar date"),
    ("from=2025-02-30", "from: is not a calendar date"),
    ("to=yesterday", "to: must be a date as YYYY-MM-DD"),
    ("from=2025-3-1", "from: must be a date as YYYY-MM-DD"),
    ("from=%EF%BC%92%EF%BC%90%EF%BC%92%EF%BC%95-03-01", "from: must be a date"),  # full-width digits
    ("from=2025-01-01&to=2025-04-03", "to: the range is 93 days; at most 92 are allowed"),
    ("from=2025-03-01'%20or%20PartitionKey%20ne%20'", "from: must be a date"),
    ("to=2025-03-01%20or%20true", "to: must be a date"),
    ("from=2025-03-01&from=2025-01-01", "from: give it once"),
    ("group_by=model'%20or%201%20eq%201", "group_by: must be one of model, day, classifier"),
    ("group_by=region", "group_by: must be one of"),  # (deployment is a grouping since issue 18)
    ("group_by=", "group_by: must be one of"),
]


@pytest.mark.parametrize(("query", "message"), BAD)
async def test_bad_parameters_are_400_with_the_json_error_shape(harness: Harness, query: str, message: str):
    for path in ("/api/costs", "/api/dashboard"):
        if path == "/api/dashboard" and query.startswith("group_by"):
            continue
        r = await harness.client.get(f"{path}?{query}", headers={"x-request-id": "bad-range-1"})
        assert r.status_code == 400, (path, r.text)
        err = r.json()["error"]
        assert err["code"] == "validation_error"
        assert err["message"].startswith(message), err["message"]
        assert err["request_id"] == "bad-range-1"
        assert "PartitionKey" not in err["message"] and "true" not in err["message"]  # never echoed


async def test_the_longest_allowed_range_and_a_configured_limit(harness_factory: Any):
    h = await harness_factory(models=None, COSTS_ROLLUP_TABLE=unique("rollups"))
    assert (await h.client.get("/api/costs?from=2025-01-01&to=2025-04-02")).status_code == 200  # 92 days
    short = await harness_factory(models=None, REPORT_MAX_DAYS=7, COSTS_ROLLUP_TABLE=unique("rollups"))
    r = await short.client.get("/api/costs?from=2025-01-01&to=2025-01-08")
    assert r.status_code == 400 and "at most 7" in r.json()["error"]["message"]
