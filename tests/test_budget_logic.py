"""Budgets and rate limits, the pure parts: counters, periods, worst cases, and the limiter's bound
(two limiters on one real Azurite table, with a fixed clock instead of waiting for a minute)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from router.callers.budget_store import BudgetStore, row_key
from router.callers.budgets import Counter, Hold, Limits, seconds_to_reset, to_pico, usd
from router.callers.rate_limit import TokenRateLimiter, seconds_to_next_minute
from router.errors import RateLimited
from router.pipeline import pricing
from router.pipeline.admission import call_worst_case, judge_worst_case, prompt_upper_bound, worst_case
from router.pipeline.plan import Ask, PlanRequest
from router.pipeline.route import Constraints
from router.settings import Settings
from tests.conftest import MODELS, unique

NOW = datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC)
SETTINGS = Settings(TABLES_CONNECTION_STRING="UseDevelopmentStorage=true", MAX_OUTPUT_TOKENS=4096)


def test_periods_reset_at_the_utc_day_and_month():
    assert seconds_to_reset(NOW, "day") == 30
    assert seconds_to_reset(NOW, "month") == 30  # December rolls into January
    mid = datetime(2026, 2, 10, 12, 0, 0, tzinfo=UTC)
    assert seconds_to_reset(mid, "day") == 12 * 3600
    assert seconds_to_reset(mid, "month") == (18 * 24 + 12) * 3600
    assert seconds_to_next_minute(NOW) == 30


def test_a_counter_admits_within_every_limit_and_names_the_exhausted_period():
    limits = Limits(daily_usd=1.0, monthly_usd=1.5)
    c = Counter().current(NOW).reserve(to_pico(0.6))
    assert c.exhausted(limits, to_pico(0.4)) is None  # exactly the limit fits
    day = c.exhausted(limits, to_pico(0.41))
    assert day is not None and day.period == "day" and day.remaining_usd == pytest.approx(0.4, abs=1e-12)
    # A new day: the daily counter starts at zero, the month keeps counting.
    c = Counter(day="2026-12-30", day_spent=to_pico(1.2), month="2026-12", month_spent=to_pico(1.2))
    c = c.current(NOW)
    assert c.day == "2026-12-31" and c.day_spent == 0 and c.month_spent == to_pico(1.2)
    month = c.exhausted(limits, to_pico(0.31))
    assert month is not None and month.period == "month" and month.remaining_usd == pytest.approx(0.3)


def test_settling_releases_the_hold_only_in_the_period_it_was_taken():
    held = Hold("caller", "a", to_pico(0.5), day="2026-12-30", month="2026-12")
    c = Counter(day="2026-12-30", day_reserved=held.amount, month="2026-12", month_reserved=held.amount)
    same_day = c.settle(held, to_pico(0.2))
    assert (same_day.day_reserved, same_day.day_spent) == (0, to_pico(0.2))
    assert (same_day.month_reserved, same_day.month_spent) == (0, to_pico(0.2))
    # Settled after midnight: the day was reset (its hold went with it); the month still holds it.
    next_day = c.current(NOW).settle(held, to_pico(0.2))
    assert (next_day.day_reserved, next_day.day_spent) == (0, to_pico(0.2))
    assert (next_day.month_reserved, next_day.month_spent) == (0, to_pico(0.2))
    # Never negative, whatever order settlements arrive in.
    assert Counter(day="2026-12-30", month="2026-12").settle(held, 0).day_reserved == 0


def test_pico_amounts_round_up_and_are_exact():
    assert to_pico(0.0000327) == 32_700_000
    assert usd(to_pico(50.5 * 0.0000327)) == pytest.approx(50.5 * 0.0000327, abs=1e-12)
    assert to_pico(1e-13) == 1  # a reservation never rounds down to nothing


def test_the_prompt_bound_is_at_least_one_token_per_byte():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "héllo 世界"}]
    assert prompt_upper_bound(messages) == 3 + 2 * 4 + len(b"be brief") + len("héllo 世界".encode())
    image = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]
    assert prompt_upper_bound(image) == 3 + 4 + 1600


def test_the_worst_case_is_the_priciest_reachable_model_plus_the_judge():
    ask = Ask(prompt_tokens=100, output_tokens=200, choices=2)
    request = PlanRequest("q", Constraints(), ask=ask)
    large = MODELS[2]
    call = pricing.call_cost(large, 100, 400)
    judge = judge_worst_case(MODELS[0], "q")
    assert judge > 0
    assert worst_case(request, tuple(MODELS), MODELS[0], SETTINGS) == pytest.approx(call + judge, abs=1e-15)
    pinned = PlanRequest("q", Constraints(), pinned="small", ask=ask)
    assert worst_case(pinned, tuple(MODELS), MODELS[0], SETTINGS) == pricing.call_cost(MODELS[0], 100, 400)
    # No output limit: the model's cap, else MAX_OUTPUT_TOKENS.
    capped = MODELS[0].model_copy(update={"max_output_tokens": 1000})
    assert call_worst_case(capped, Ask(10), SETTINGS) == pricing.call_cost(capped, 10, 1000)
    assert call_worst_case(MODELS[0], Ask(10), SETTINGS) == pricing.call_cost(MODELS[0], 10, 4096)


async def test_rate_limit_decides_locally_and_learns_the_other_instances_at_each_sync(azurite):
    """The documented bound: between syncs an instance sees only its own tokens (both may admit), after
    a sync each counts the other's, so together they stop at the limit."""
    from router.tables import create_service_client, ensure_table

    service = create_service_client(Settings(TABLES_CONNECTION_STRING=azurite.connection_string), None)
    table = await ensure_table(service, unique("budgets"))

    async def get() -> object:
        return table

    store = BudgetStore(get)  # type: ignore[arg-type]
    a, b = (TokenRateLimiter(store, 60.0, lambda: NOW) for _ in range(2))
    try:
        minute = a.admit("alice", 100, 60)
        b.admit("alice", 100, 30)  # b has not heard of a's 60 yet: admitted (the bound's slack)
        await a.sync()
        await b.sync()
        await a.sync()
        with pytest.raises(RateLimited) as refused:
            b.admit("alice", 100, 20)  # 60 + 30 + 20 > 100
        assert refused.value.retry_after_s == 30  # sent as Retry-After (and retry-after-ms)
        assert refused.value.details["remaining_tokens"] == 10
        a.admit("alice", 100, 10)  # exactly the limit
        with pytest.raises(RateLimited):
            a.admit("alice", 100, 1)
        a.adjust("alice", minute, -15)  # the request used fewer tokens than charged
        a.admit("alice", 100, 15)
        await a.sync()
        stored = await store.read_minute("alice")
        assert stored[:2] == ("2026-12-31T23:59", 100)
        assert row_key("a/b#c?") == "a%2Fb%23c%3F"
    finally:
        await a.close()
        await b.close()
        await service.close()
