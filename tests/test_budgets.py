"""Budgets and rate limits end to end: the real app on a loopback port, the OpenAI SDK as the caller,
the simulator upstream, Azurite for the budgets and cost tables, limits set with the real CLI.

Callers other than ``anonymous`` come from ``as_callers``, a test-only ASGI wrapper that sets
``scope["state"]["caller"]`` from an ``x-test-caller: id/team`` header: it stands in for the auth step
(another module) that resolves the caller from a credential.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from datetime import UTC, datetime
from typing import Any

import httpx2
import openai
import pytest

from router.api.app import create_app
from router.callers.budget_store import BudgetStore
from router.callers.budgets import Counter, seconds_to_reset, to_pico
from router.callers.identity import Caller
from router.cli import main
from router.dev.simulator import Reply
from router.runtime import Runtime
from tests.conftest import Harness, unique
from tests.support import HangingProxy, ThreadServer

HARD = "Prove that the algorithm terminates and analyse its complexity: ```def f(n): return f(n-1)```" * 3


def as_callers(app: Any) -> Any:
    """Test-only stand-in for authentication: the caller named by ``x-test-caller: id/team``."""

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"x-test-caller":
                    caller_id, team = value.decode().split("/")
                    scope["state"] = {**(scope.get("state") or {}), "caller": Caller(caller_id, team)}
        await app(scope, receive, send)

    return wrapped


async def cli(h: Harness, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``python -m router callers budget ...`` in-process (its own event loop, in a thread), against the
    harness's tables."""
    monkeypatch.setenv("TABLES_CONNECTION_STRING", h.settings.TABLES_CONNECTION_STRING or "")
    monkeypatch.setenv("BUDGETS_TABLE", h.settings.BUDGETS_TABLE)

    def run() -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["callers", "budget", *args]) == 0
        return out.getvalue()

    return await asyncio.to_thread(run)


async def store_of(runtime: Runtime) -> BudgetStore:
    table = await runtime.table(runtime.settings.BUDGETS_TABLE)

    async def get() -> Any:
        return table

    return BudgetStore(get)


@pytest.fixture
async def served(harness_factory):
    """An app (behind the test caller wrapper) on a real port with its own runtime, plus the harness."""
    h = await harness_factory(BUDGETS_TABLE=unique("budgets"), JUDGE_ENABLED=False)
    runtime = Runtime(h.settings)
    server = ThreadServer(as_callers(create_app(runtime))).start()
    client = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key="unused", max_retries=0)
    http = httpx2.AsyncClient(base_url=server.url)
    yield h, runtime, client, http
    await client.close()
    await http.aclose()
    server.stop()


async def settled(http: httpx2.AsyncClient, runtime: Runtime) -> None:
    """Every settlement and cost-record write of the serving app has finished."""
    service = runtime.built_service
    for _ in range(200):
        idle = service is not None and not service.admission.ledger._tasks.running  # type: ignore[union-attr]
        if idle and (await http.get("/api/health")).json()["pending_cost_records"] == 0:
            return
        await asyncio.sleep(0.02)


async def counter(runtime: Runtime, scope: str, name: str) -> Counter:
    c, _ = await (await store_of(runtime)).read_counter(scope, name)  # type: ignore[arg-type]
    return c.current(datetime.now(UTC))


def ask(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


async def test_a_request_reserves_then_settles_to_its_recorded_cost(served, monkeypatch):
    h, runtime, client, http = served
    out = await cli(h, monkeypatch, "anonymous", "--daily", "5", "--monthly", "80")
    assert "caller anonymous: daily $5.00, monthly $80.00, tpm none, on budget: reject" in out
    h.simulator.script("dep-small", Reply(prompt_tokens=1000, completion_tokens=500))
    await client.chat.completions.create(model="small", max_tokens=800, **ask())
    await settled(http, runtime)
    [rec] = await h.costs()
    assert rec["caller"] == "anonymous"
    c = await counter(h.runtime, "caller", "anonymous")
    cost = 1000 * 0.00015 / 1000 + 500 * 0.0006 / 1000
    assert rec["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert (c.day_reserved, c.month_reserved) == (0, 0)  # nothing left held
    assert c.day_spent == c.month_spent == to_pico(rec["cost_usd"])
    shown = await cli(h, monkeypatch, "anonymous")
    assert f"spent ${cost:.6f}, reserved $0.000000, left ${5 - cost:.6f}" in shown


async def test_over_budget_is_a_429_with_retry_after_to_the_reset_and_the_amount_left(served, monkeypatch):
    h, runtime, client, http = served
    await cli(h, monkeypatch, "anonymous", "--daily", "0.0003")
    # Worst case at "small" with max_tokens=400: 18 prompt tokens (11 bytes + 7) + 400 out = 0.0002427 USD.
    h.simulator.script("dep-small", Reply(prompt_tokens=18, completion_tokens=400))
    await client.chat.completions.create(model="small", max_tokens=400, **ask())
    await settled(http, runtime)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="small", max_tokens=400, **ask())
    response = refused.value.response
    error = response.json()["error"]
    spent = 18 * 0.00015 / 1000 + 400 * 0.0006 / 1000
    assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
    assert error["scope"] == "caller" and error["period"] == "day" and error["limit_usd"] == 0.0003
    assert error["remaining_usd"] == pytest.approx(0.0003 - spent, abs=1e-9)
    assert error["reservation_usd"] == pytest.approx(spent, abs=1e-9)
    assert error["request_id"]
    assert float(response.headers["x-router-budget-remaining"]) == pytest.approx(0.0003 - spent, abs=1e-6)
    expected = seconds_to_reset(datetime.now(UTC), "day")
    assert abs(int(response.headers["Retry-After"]) - expected) <= 5
    assert len(h.simulator.calls_to("dep-small")) == 1  # refused before any upstream call
    assert len(await h.costs()) == 1
    # /api/route answers the same, in the router's error shape.
    route = await http.post("/api/route", json={"query": "hi"})
    assert route.status_code == 429 and route.json()["error"]["code"] == "budget_exceeded"
    assert "remaining_usd" in route.json()["error"] and route.headers["Retry-After"]


async def test_a_team_budget_counts_every_member_and_says_which_budget_refused(served, monkeypatch):
    h, runtime, client, http = served
    await cli(h, monkeypatch, "ml", "--team", "--daily", "0.0004")
    h.simulator.script("dep-small", Reply(prompt_tokens=10, completion_tokens=400))
    alice, bob = ({"x-test-caller": f"{n}/ml"} for n in ("alice", "bob"))
    await client.chat.completions.create(model="small", max_tokens=400, extra_headers=alice, **ask())
    await settled(http, runtime)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="small", max_tokens=400, extra_headers=bob, **ask())
    error = refused.value.response.json()["error"]
    assert (error["code"], error["scope"]) == ("budget_exceeded", "team")
    assert "team 'ml'" in error["message"]
    # Another team is untouched; the records say who spent what.
    await client.chat.completions.create(model="small", max_tokens=400,
                                         extra_headers={"x-test-caller": "carol/web"}, **ask())  # fmt: skip
    await settled(http, runtime)
    by_caller = {(r["caller"], r["team"]) for r in await h.costs()}
    assert by_caller == {("alice", "ml"), ("carol", "web")}
    team = await counter(h.runtime, "team", "ml")
    assert team.day_spent == to_pico(10 * 0.00015 / 1000 + 400 * 0.0006 / 1000) and team.day_reserved == 0
    assert "team ml: daily $0.00" in await cli(h, monkeypatch, "ml", "--team")


async def test_downgrade_answers_with_the_cheapest_model_within_the_budget(served, monkeypatch):
    h, runtime, client, http = served
    # Worst case on auto is "large" (1000 out × 0.008/1k = 0.008 USD): over 0.002; "small" fits.
    await cli(h, monkeypatch, "anonymous", "--daily", "0.002", "--on-budget", "downgrade")
    raw = await client.chat.completions.with_raw_response.create(model="auto", max_tokens=1000, **ask(HARD))
    assert raw.headers["x-router-budget"] == "downgraded"
    assert raw.headers["x-router-model"] == "small"
    assert raw.parse().model == "small"
    await settled(http, runtime)
    [rec] = await h.costs()
    assert rec["model"] == "small" and rec["classifier"] == "downgraded"
    assert (await counter(h.runtime, "caller", "anonymous")).day_spent == to_pico(rec["cost_usd"])
    # Without downgrade the same request is refused; with a budget even "small" cannot fit, too.
    await cli(h, monkeypatch, "anonymous", "--on-budget", "reject")
    runtime.built_service.admission.ledger.forget()  # type: ignore[union-attr]  # (else seen within the TTL)
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model="auto", max_tokens=1000, **ask(HARD))
    await cli(h, monkeypatch, "anonymous", "--daily", "0.0001", "--on-budget", "downgrade")
    runtime.built_service.admission.ledger.forget()  # type: ignore[union-attr]
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="auto", max_tokens=1000, **ask(HARD))
    assert refused.value.response.json()["error"]["code"] == "budget_exceeded"
    # An undowngraded answer carries no budget header.
    await cli(h, monkeypatch, "anonymous", "--clear")
    runtime.built_service.admission.ledger.forget()  # type: ignore[union-attr]
    raw = await client.chat.completions.with_raw_response.create(model="small", **ask())
    assert "x-router-budget" not in raw.headers


async def test_streams_and_failures_settle_so_nothing_stays_reserved(served, monkeypatch):
    h, runtime, client, http = served
    await cli(h, monkeypatch, "anonymous", "--daily", "1")
    stream = await client.chat.completions.create(model="small", max_tokens=300, stream=True, **ask())
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text
    h.simulator.script("dep-small", *[Reply(status=500)] * 3)
    with pytest.raises(openai.APIStatusError):
        await client.chat.completions.create(model="small", max_tokens=300, **ask())
    await settled(http, runtime)
    records = await h.costs()
    c = await counter(h.runtime, "caller", "anonymous")
    assert c.day_reserved == 0
    assert c.day_spent == sum(to_pico(r["cost_usd"]) for r in records) > 0
    assert {r["status"] for r in records} == {"ok", "error"}


async def test_rate_limit_is_a_429_with_retry_after_to_the_next_minute(served, monkeypatch):
    h, _, client, _ = served
    await cli(h, monkeypatch, "anonymous", "--tpm", "10")
    # "hello there" is 11 tokens by the estimate (11 chars / 3.5, + 7), plus max_tokens 20: 31 > 10.
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(model="small", max_tokens=20, **ask())
    error = refused.value.response.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["limit_tpm"] == 10
    assert error["requested_tokens"] == 31 and error["remaining_tokens"] == 10
    assert 1 <= int(refused.value.response.headers["Retry-After"]) <= 60
    assert h.simulator.calls_to("dep-small") == []
    assert "tpm 10" in await cli(h, monkeypatch, "anonymous")


async def test_cli_refuses_bad_values_and_clears(harness_factory, monkeypatch, capsys):
    h = await harness_factory(BUDGETS_TABLE=unique("budgets"))
    monkeypatch.setenv("TABLES_CONNECTION_STRING", h.settings.TABLES_CONNECTION_STRING or "")
    monkeypatch.setenv("BUDGETS_TABLE", h.settings.BUDGETS_TABLE)
    for bad in (["--daily", "-1"], ["--daily", "nan"], ["--tpm", "0"], ["--team", "--tpm", "5"]):
        with contextlib.suppress(SystemExit):
            assert await asyncio.to_thread(main, ["callers", "budget", "x", *bad]) == 2
    assert "--daily" in capsys.readouterr().err
    out = await cli(h, monkeypatch, "a/b", "--daily", "3", "--tpm", "900")
    assert "caller a/b: daily $3.00, monthly none, tpm 900" in out
    out = await cli(h, monkeypatch, "a/b", "--daily", "none")
    assert "daily none" in out and "tpm 900" in out
    out = await cli(h, monkeypatch, "a/b", "--clear")
    assert "no budget or rate limit" in out


async def test_a_caller_without_a_budget_costs_no_table_round_trip(harness_factory, azurite, monkeypatch):
    """The budgets table goes silent after the first requests: unbudgeted callers keep being answered
    (their limits are cached), and so is a caller never seen (its limits unknown); a caller known to
    have a budget fails closed with 503 and the request id."""
    port = int(re.search(r"TableEndpoint=http://127\.0\.0\.1:(\d+)/", azurite.connection_string).group(1))
    proxy = HangingProxy(port).start()
    h = await harness_factory(
        BUDGETS_TABLE=unique("budgets"), JUDGE_ENABLED=False, TABLES_READ_TIMEOUT_S=0.5, COST_DRAIN_S=0.2,
        TABLES_CONNECTION_STRING=proxy.connection_string(azurite.connection_string),
    )  # fmt: skip
    await cli(h, monkeypatch, "payer", "--daily", "1")
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=as_callers(h.app)), base_url="http://t")
    payer = {"x-test-caller": "payer/p"}
    try:
        for headers in ({}, payer):
            r = await client.post(
                "/api/v1/chat/completions", json={"model": "small", **ask()}, headers=headers
            )
            assert r.status_code == 200
        await h.runtime.built_service.admission.ledger.drain()  # type: ignore[union-attr]
        proxy.hang()
        for _ in range(3):
            r = await client.post("/api/v1/chat/completions", json={"model": "small", **ask()})
            assert r.status_code == 200
        # A caller this instance has never seen: its limits cannot be read, so it is served unlimited
        # (the router answers through a table outage, as it does for cost records).
        stranger = {"x-test-caller": "stranger/s"}
        r = await client.post("/api/v1/chat/completions", json={"model": "small", **ask()}, headers=stranger)
        assert r.status_code == 200
        r = await client.post("/api/v1/chat/completions", json={"model": "small", **ask()}, headers=payer)
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "budget_unavailable" and error["request_id"] == r.headers["x-request-id"]
    finally:
        await client.aclose()
        proxy.stop()
