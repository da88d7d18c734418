"""AUTH_MODE=keys end to end: keys made by ``python -m router callers create`` (a subprocess against real
Azurite, as a user runs it), accepted as ``api-key`` and as ``Authorization: Bearer`` from the real OpenAI
SDK over HTTP; stored only as salted hashes; revoked within CALLERS_CACHE_TTL_S (a fake clock moves the
cache's time, no sleeps); no table read per request; the caller and team on every cost record."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from router.api.app import create_app
from router.callers.keys import parse_key
from router.dev.simulator import Reply
from router.runtime import Runtime
from tests.conftest import Harness, unique
from tests.support import ThreadServer

ROOT = Path(__file__).resolve().parents[1]


def callers_cli(settings: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLES_", "CALLERS_"))}
    env.update(
        TABLES_CONNECTION_STRING=settings.TABLES_CONNECTION_STRING, CALLERS_TABLE=settings.CALLERS_TABLE
    )
    return subprocess.run([sys.executable, "-m", "router", "callers", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def create(settings: Any, name: str, *extra: str) -> str:
    done = callers_cli(settings, "create", name, *extra)
    assert done.returncode == 0, done.stderr
    key = done.stdout.rstrip("\n").split("\n")[-1]
    assert parse_key(key) is not None and key.count(" ") == 0  # alone on the last line
    return key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def keyed(harness_factory: Any) -> Harness:
    h: Harness = await harness_factory(AUTH_MODE="keys", CALLERS_TABLE=unique("callers"))
    h.simulator.script("dep-small", *[Reply(content="ok", prompt_tokens=2000, completion_tokens=1000)] * 5)
    return h


async def test_created_key_works_as_api_key_and_bearer_and_attributes_every_record(keyed: Harness):
    alice = create(keyed.settings, "alice", "--team", "payments")
    bob = create(keyed.settings, "bob")
    for rid, headers in (
        ("k1", {"api-key": alice}),
        ("k2", {"authorization": f"Bearer {alice}"}),
        ("k3", {"api-key": bob}),
    ):
        r = await keyed.client.post(
            "/api/route", json={"query": "hi"}, headers={**headers, "x-request-id": rid}
        )
        assert r.status_code == 200, (rid, r.text)
    rows = {x["request_id"]: x for x in await keyed.costs()}
    assert {rid: (rows[rid]["caller"], rows[rid]["team"]) for rid in rows} == {
        "k1": ("alice", "payments"), "k2": ("alice", "payments"), "k3": ("bob", "bob"),
    }  # fmt: skip
    # $0.00015 × 2 + $0.0006 × 1 on "small", per call
    assert all(x["cost_usd"] == pytest.approx(0.0009, abs=1e-9) for x in rows.values())


async def test_only_a_salted_hash_is_stored_and_list_shows_no_secret(keyed: Harness):
    key = create(keyed.settings, "carol", "--team", "research")
    again = callers_cli(keyed.settings, "create", "carol")
    assert again.returncode == 2 and "already has a key" in again.stderr
    key_id, secret = parse_key(key) or ("", "")
    table = await keyed.runtime.table(keyed.settings.CALLERS_TABLE)
    rows = [dict(e) async for e in table.list_entities()]
    assert {(r["PartitionKey"], r["RowKey"]) for r in rows} == {("key", key_id), ("caller", "carol")}
    stored = " ".join(str(v) for r in rows for v in r.values())
    assert secret not in stored and key not in stored
    (key_row,) = [r for r in rows if r["PartitionKey"] == "key"]
    assert len(key_row["salt"]) == 32 and len(key_row["hash"]) == 64
    listed = callers_cli(keyed.settings, "list")
    assert listed.returncode == 0 and "carol" in listed.stdout and "research" in listed.stdout
    assert secret not in listed.stdout and key_id not in listed.stdout


async def test_bad_keys_are_the_same_401_and_the_openai_sdk_sees_authentication_error(keyed: Harness):
    key = create(keyed.settings, "dave")
    key_id, secret = parse_key(key) or ("", "")
    other_secret = ("A" if secret[0] != "A" else "B") + secret[1:]
    reference = await keyed.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "r"})
    assert reference.status_code == 401
    for bad in ("nope", key[:-1], f"rk_{key_id}_{other_secret}", f"rk_{'0' * 16}_{secret}", key + "x", "rk_"):
        for headers in ({"api-key": bad}, {"authorization": f"Bearer {bad}"}):
            r = await keyed.client.post(
                "/api/route", json={"query": "hi"}, headers={**headers, "x-request-id": "r"}
            )
            assert r.status_code == 401 and r.json() == reference.json(), (bad, headers)
    assert await keyed.costs() == []

    server = ThreadServer(create_app(Runtime(keyed.settings))).start()
    try:
        good = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key=key, max_retries=0)
        reply = await good.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "ok"
        bad_client = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key="rk_wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad_client.models.list()
        assert caught.value.status_code == 401 and caught.value.code == "unauthorized"
        await good.close()
        await bad_client.close()
        rows: list[dict[str, Any]] = []
        for _ in range(200):  # the serving app writes its record in the background
            rows = await keyed.costs()
            if rows:
                break
            await asyncio.sleep(0.05)
        assert [(r["caller"], r["team"], r["api"]) for r in rows] == [("dave", "dave", "chat")]
    finally:
        server.stop()


async def test_revoke_takes_effect_within_the_cache_ttl_and_no_table_read_per_request(keyed: Harness):
    key = create(keyed.settings, "erin", "--team", "ops")
    verifier = keyed.app.state.authenticator.keys
    verifier.clock = clock = FakeClock()
    reads: list[str] = []
    real_read = verifier._read

    async def counting(key_id: str) -> Any:
        reads.append(key_id)
        return await real_read(key_id)

    verifier._read = counting
    for _ in range(10):
        assert (await keyed.client.get("/api/models", headers={"api-key": key})).status_code == 200
    assert len(reads) == 1  # one point read, then the cache

    done = callers_cli(keyed.settings, "revoke", "erin")
    assert done.returncode == 0 and "30 s" in done.stdout, done.stdout
    clock.now += 29  # within CALLERS_CACHE_TTL_S (30): this instance has not re-read the row yet
    assert (await keyed.client.get("/api/models", headers={"api-key": key})).status_code == 200
    clock.now += 2  # past it: the row is read again, and is gone
    assert (await keyed.client.get("/api/models", headers={"api-key": key})).status_code == 401
    assert len(reads) == 2
    assert "revoked" in callers_cli(keyed.settings, "list").stdout
    assert callers_cli(keyed.settings, "revoke", "erin").returncode == 2  # nothing left to revoke
    fresh = create(keyed.settings, "erin", "--team", "ops")  # a new key after a revoke
    assert (await keyed.client.get("/api/models", headers={"api-key": fresh})).status_code == 200


async def test_bad_names_are_refused_by_the_cli(keyed: Harness):
    for name in ("", "_x", "a/b", "a'b", "x" * 65, "é"):
        done = callers_cli(keyed.settings, "create", name)
        assert done.returncode == 2 and "caller name" in done.stderr, name
    done = callers_cli(keyed.settings, "create", "ok-name", "--team", "bad team")
    assert done.returncode == 2 and "team" in done.stderr


async def test_an_unchanged_azure_openai_client_authenticates_with_a_router_key_as_api_key(keyed: Harness):
    """The Azure SDK sends ``api_key`` as the ``api-key`` header on the /openai paths: a router key there is
    the caller; a wrong one is a 401 in Azure's error shape, and nothing is called or recorded for it."""
    key = create(keyed.settings, "frank", "--team", "search")
    server = ThreadServer(create_app(Runtime(keyed.settings))).start()
    try:
        good = openai.AsyncAzureOpenAI(
            azure_endpoint=server.url, api_key=key, api_version="2024-10-21", max_retries=0
        )
        messages: Any = [{"role": "user", "content": "hi"}]
        reply = await good.chat.completions.create(model="auto", messages=messages)
        assert reply.choices[0].message.content == "ok"
        stream = await good.chat.completions.create(model="auto", messages=messages, stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "ok"
        bad = openai.AsyncAzureOpenAI(
            azure_endpoint=server.url, api_key=key[:-1], api_version="2024-10-21", max_retries=0
        )
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model="auto", messages=messages)
        assert caught.value.status_code == 401 and caught.value.code == "unauthorized"
        await good.close()
        await bad.close()
        rows: list[dict[str, Any]] = []
        for _ in range(200):  # the serving app writes its records in the background
            rows = await keyed.costs()
            if len(rows) >= 2:
                break
            await asyncio.sleep(0.05)
        assert sorted((r["caller"], r["team"], r["api"]) for r in rows) == [("frank", "search", "azure")] * 2
    finally:
        server.stop()


async def test_a_router_keys_team_budget_refuses_its_members_through_the_real_auth_step(harness_factory):
    """Identity and budgets together, with no stand-in: two keys of one team, a team budget set with the
    CLI; the first member's call fits, then the second member's is a 429 naming the team's scope."""
    h: Harness = await harness_factory(
        AUTH_MODE="keys",
        CALLERS_TABLE=unique("callers"),
        BUDGETS_TABLE=unique("budgets"),
        JUDGE_ENABLED=False,
    )
    h.simulator.script("dep-small", Reply(content="ok", prompt_tokens=18, completion_tokens=400))
    gina, hal = create(h.settings, "gina", "--team", "growth"), create(h.settings, "hal", "--team", "growth")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLES_", "BUDGETS_"))}
    env.update(TABLES_CONNECTION_STRING=h.settings.TABLES_CONNECTION_STRING or "",
               BUDGETS_TABLE=h.settings.BUDGETS_TABLE)  # fmt: skip
    command = [sys.executable, "-m", "router", "callers", "budget", "growth", "--team", "--daily", "0.0003"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    server = ThreadServer(create_app(Runtime(h.settings))).start()
    try:
        messages: Any = [{"role": "user", "content": "hello there"}]
        first = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key=gina, max_retries=0)
        await first.chat.completions.create(model="small", max_tokens=400, messages=messages)
        rows: list[dict[str, Any]] = []
        for _ in range(200):  # the record (and with it the settlement) is written after the response
            rows = await h.costs()
            if rows:
                break
            await asyncio.sleep(0.05)
        # Whether the first call is settled yet or still reserved, the second one's worst case
        # (0.0002427 USD at "small") does not fit what is left of 0.0003.
        second = openai.AsyncOpenAI(base_url=f"{server.url}/api/v1", api_key=hal, max_retries=0)
        with pytest.raises(openai.RateLimitError) as refused:
            await second.chat.completions.create(model="small", max_tokens=400, messages=messages)
        error = refused.value.response.json()["error"]
        assert error["code"] == "budget_exceeded" and error["scope"] == "team"
        assert [(r["caller"], r["team"]) for r in await h.costs()] == [("gina", "growth")]
        await first.close()
        await second.close()
    finally:
        server.stop()
