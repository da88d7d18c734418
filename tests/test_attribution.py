"""Attribution: spend and savings per caller and per team, from /api/costs?group_by=caller|team (live scan
and daily roll-ups agree to the last digit), the CLI's --by caller|team and the dashboard's tables, on
the hand-computed data set of test_reports_api with callers assigned; and end to end under router keys."""

from __future__ import annotations

import math
from typing import Any

import pytest

from router.costs.records import CostRecord
from router.dev.simulator import Reply
from router.reports.dashboard import render
from router.reports.period import Period
from router.reports.store import load_cube
from tests.conftest import Harness, unique
from tests.test_auth_keys import create
from tests.test_reports_api import CENT, RANGE, SEED, seed
from tests.test_reports_cli import cli

# r1 r2 r3 -> alice, alice, bob (payments); r4 -> carol (research); r5, r6 made before callers existed.
CALLERS = {"r1": ("alice", "payments"), "r2": ("alice", "payments"), "r3": ("bob", "payments"),
           "r4": ("carol", "research"), "r7": ("alice", "payments"), "r8": ("carol", "research"),
           "r9": ("bob", "payments"), "r10": ("alice", "payments")}  # fmt: skip


def with_callers() -> list[CostRecord]:
    out = []
    for r in SEED:
        if r.request_id in CALLERS:
            caller, team = CALLERS[r.request_id]
            r = r.model_copy(update={"caller": caller, "team": team})
        out.append(r)
    return out


def expected(by: str) -> dict[str, tuple[int, float, float]]:
    """(calls, total spend, baseline) per caller or team, summed straight from the records."""
    groups: dict[str, list[CostRecord]] = {}
    for r in with_callers():
        if "2025-03-01" <= r.partition_key <= "2025-03-03":
            groups.setdefault(getattr(r, by), []).append(r)
    return {
        name: (len(rs), math.fsum(r.cost_usd + r.classifier_cost_usd for r in rs),
               math.fsum(r.baseline_cost_usd for r in rs))
        for name, rs in groups.items()
    }  # fmt: skip


@pytest.fixture
async def seeded(harness_factory: Any) -> Harness:
    h: Harness = await harness_factory(models=None, COSTS_ROLLUP_TABLE=unique("rollups"))
    await seed(h.runtime, h.settings.COSTS_TABLE, with_callers())
    return h


@pytest.mark.parametrize("by", ["caller", "team"])
async def test_costs_group_by_caller_and_team_from_scans_and_from_rollups(seeded: Harness, by: str):
    want = expected(by)
    assert set(want) == ({"alice", "bob", "carol", "anonymous"} if by == "caller" else
                         {"payments", "research", "anonymous"})  # fmt: skip
    first = (await seeded.client.get(f"/api/costs?{RANGE}&group_by={by}")).json()
    assert first["source"]["scanned_days"] == 3 and first["group_by"] == by
    second = (await seeded.client.get(f"/api/costs?{RANGE}&group_by={by}")).json()
    assert second["source"]["rollup_days"] == 3
    for body in (first, second):
        got = {g[by]: g for g in body["groups"]}
        assert set(got) == set(want)
        for name, (calls, spend, baseline) in want.items():
            g = got[name]
            assert g["calls"] == calls, name
            assert g["total_spend_usd"] == pytest.approx(spend, abs=CENT), name
            assert g["baseline_usd"] == pytest.approx(baseline, abs=CENT), name
            assert g["savings_usd"] == pytest.approx(baseline - spend, abs=CENT), name
        assert sum(g["calls"] for g in body["groups"]) == body["totals"]["calls"] == 10
    assert {k: v for k, v in first.items() if k != "source"} == {
        k: v for k, v in second.items() if k != "source"
    }


async def test_group_by_rejects_other_values_naming_the_parameter(seeded: Harness):
    r = await seeded.client.get(f"/api/costs?{RANGE}&group_by=callers")
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("group_by: must be one of")
    assert "caller, team" in r.json()["error"]["message"]


async def test_cli_by_caller_and_team(seeded: Harness):
    done = cli(seeded.settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--by", "caller")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    calls, spend, _ = expected("caller")["alice"]
    assert lines["caller"].split()[:2] == ["caller", "calls"]
    assert lines["alice"].split()[1] == str(calls) and f"${spend:,.6f}" in lines["alice"]
    done = cli(
        seeded.settings, "report", "--from", "2025-03-01", "--to", "2025-03-03", "--by", "team", "--json"
    )
    assert done.returncode == 0, done.stderr
    import json

    groups = {g["team"]: g for g in json.loads(done.stdout)["groups"]}
    assert groups["research"]["total_spend_usd"] == pytest.approx(expected("team")["research"][1], abs=CENT)


async def test_dashboard_tables_show_spend_and_savings_per_caller_and_team(seeded: Harness):
    from datetime import date

    period = Period(date(2025, 3, 1), date(2025, 3, 3))
    table = await seeded.runtime.table(seeded.settings.COSTS_TABLE)
    cube, sources = await load_cube(table, None, period)
    html = render(cube, period, sources.to_dict())
    for by, section in (("caller", 'id="by-caller"'), ("team", 'id="by-team"')):
        part = html[html.index(section) :].split("</section>")[0]
        for name, (calls, spend, baseline) in expected(by).items():
            row = part[part.index(f"<tr><td>{name}</td>") :].split("</tr>")[0]
            assert f"<td>{calls:,}</td>" in row
            assert f"${spend:.4f}" in row or f"${spend:,.2f}" in row, (name, row)
            saved = baseline - spend
            assert f"${saved:.4f}" in row or f"${saved:,.2f}" in row, (name, row)
    r = await seeded.client.get("/api/dashboard?from=2025-03-01&to=2025-03-03")
    assert r.status_code == 200 and 'id="by-caller"' in r.text and "<td>carol</td>" in r.text


async def test_end_to_end_under_router_keys_the_report_groups_by_the_key_s_caller(harness_factory: Any):
    h: Harness = await harness_factory(AUTH_MODE="keys", CALLERS_TABLE=unique("callers"))
    h.simulator.script("dep-small", *[Reply(content="ok", prompt_tokens=1000, completion_tokens=1000)] * 3)
    alice, bob = create(h.settings, "alice", "--team", "t1"), create(h.settings, "bob", "--team", "t1")
    for key in (alice, alice, bob):
        assert (
            await h.client.post("/api/route", json={"query": "hi"}, headers={"api-key": key})
        ).status_code == 200
    await h.costs()
    body = (await h.client.get("/api/costs?group_by=caller", headers={"api-key": alice})).json()
    got = {g["caller"]: (g["calls"], g["spend_usd"]) for g in body["groups"]}
    # $0.00015 + $0.0006 per call on "small"
    assert got == {
        "alice": (2, pytest.approx(0.0015, abs=1e-9)),
        "bob": (1, pytest.approx(0.00075, abs=1e-9)),
    }
    team = (await h.client.get("/api/costs?group_by=team", headers={"api-key": bob})).json()["groups"]
    assert [(g["team"], g["calls"]) for g in team] == [("t1", 3)]
