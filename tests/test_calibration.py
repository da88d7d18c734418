"""Threshold search: hand-computed plans, agreement with the real routing rule, and the command."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from router.evaluation.calibration import Tier, calibrate, judge_band, threshold_for_cut
from router.evaluation.cli import add_commands
from router.models.config import ModelConfig
from router.pipeline.route import Constraints, choose


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="router")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_two_tiers_hand_computed() -> None:
    scores = [0.1, 0.2, 0.3, 0.4]
    weak = Tier("weak", [1, 1, 0, 0], [1, 1, 1, 1])
    strong = Tier("strong", [1, 1, 1, 1], [10, 10, 10, 10])
    plan = calibrate(scores, [weak, strong], 0.95)
    # The two hardest must go to strong; the two easiest are free to go to weak.
    assert plan.met
    assert plan.thresholds == (pytest.approx(0.25), 1.0)
    assert plan.fractions == (0.5, 0.5)
    assert plan.quality == 1.0
    assert plan.cost == 22
    assert plan.saving == pytest.approx(1 - 22 / 40)
    assert plan.strong_fraction == 0.5


def test_a_lower_target_sends_more_to_the_cheap_tier() -> None:
    scores = [0.1, 0.2, 0.3, 0.4]
    tiers = [Tier("weak", [1, 1, 0, 0], [1] * 4), Tier("strong", [1] * 4, [10] * 4)]
    plan = calibrate(scores, tiers, 0.75)
    assert plan.fractions == (0.75, 0.25)  # one miss of four is allowed
    assert plan.thresholds[0] == pytest.approx(0.35)


def test_ties_are_never_split() -> None:
    scores = [0.1, 0.2, 0.2, 0.4]  # the weak model fails only query 2, tied with query 1
    tiers = [Tier("weak", [1, 1, 0, 1], [1] * 4), Tier("strong", [1] * 4, [10] * 4)]
    plan = calibrate(scores, tiers, 1.0)
    assert plan.fractions == (0.25, 0.75)
    assert plan.thresholds[0] == pytest.approx(0.15)


def test_unreachable_target_falls_back_to_the_priciest_tier() -> None:
    # A score of exactly 0 always goes to the cheapest tier (max_complexity cannot be below 0),
    # and the cheap tier fails that query, so 100% of strong quality is out of reach.
    tiers = [Tier("weak", [0, 1], [1, 1]), Tier("strong", [1, 1], [10, 10])]
    plan = calibrate([0.0, 0.5], tiers, 1.0)
    assert not plan.met
    assert plan.fractions == (0.0, 1.0)
    assert threshold_for_cut([0.0, 0.5], 0) is None


def routed(models: list[ModelConfig], scores: list[float], tiers: list[Tier]) -> tuple[float, float]:
    """Quality and cost when the real router (router.pipeline.route.choose) routes every query."""
    index = {t.name: t for t in tiers}
    quality = cost = 0.0
    for i, s in enumerate(scores):
        tier = index[choose(models, s, Constraints()).model.name]
        quality += tier.quality[i]
        cost += tier.cost[i]
    return quality / len(scores), cost


def brute_force(scores: list[float], tiers: list[Tier], target: float) -> float:
    """The cheapest cost over every threshold choice, by trying them all through the router."""
    distinct = sorted(set(scores))
    grid = sorted({0.0, 1.0, distinct[0] / 2, *((a + b) / 2 for a, b in itertools.pairwise(distinct))})
    top_q = sum(tiers[-1].quality) / len(scores)
    best = float("inf")
    for ts in itertools.combinations_with_replacement(grid, len(tiers) - 1):
        models = [config(t.name, i, th) for i, (t, th) in enumerate(zip(tiers, (*ts, 1.0), strict=True))]
        q, c = routed(models, scores, tiers)
        if q >= target * top_q - 1e-9:
            best = min(best, c)
    return best


def config(name: str, price_rank: int, max_complexity: float) -> ModelConfig:
    return ModelConfig(
        name=name,
        deployment=name,
        cost_per_1k_tokens=0.001 * (price_rank + 1),
        avg_latency_ms=100,
        max_complexity=max_complexity,
    )


@pytest.mark.parametrize("seed", range(12))
def test_plan_is_optimal_and_agrees_with_the_router(seed: int) -> None:
    rng = random.Random(seed)
    n, k = rng.randint(3, 9), rng.choice([2, 3])
    scores = [round(rng.random(), 1) for _ in range(n)]  # rounding makes ties
    tiers = [
        Tier(
            f"m{j}",
            [float(rng.random() < 0.4 + 0.25 * j) for _ in range(n)],
            [rng.uniform(1, 2) * 4**j for _ in range(n)],
        )
        for j in range(k)
    ]
    target = rng.choice([0.8, 0.9, 1.0])
    plan = calibrate(scores, tiers, target)
    if plan.met:
        models = [config(t.name, j, th) for j, (t, th) in enumerate(zip(tiers, plan.thresholds, strict=True))]
        q, c = routed(models, scores, tiers)
        assert q == pytest.approx(plan.quality)
        assert c == pytest.approx(plan.cost)
        assert c == pytest.approx(brute_force(scores, tiers, target))


# --- the calibrate command -------------------------------------------------------------------------


def write_data(path: Path) -> None:
    rows = []
    for i, (q, big, small) in enumerate(
        [("hi", 1, 1), ("hello there", 1, 1), ("x" * 400, 1, 0), ("y" * 600, 1, 0)]
    ):
        rows.append(
            json.dumps(
                {
                    "id": str(i),
                    "prompt": q,
                    "scores": {"big": big, "small": small},
                    "cost": {"big": 0.01, "small": 0.001},
                }
            )
        )
    path.write_text("\n".join(rows) + "\n")


CATALOGUE = [
    {
        "name": "small",
        "deployment": "d-small",
        "cost_per_1k_tokens": 0.001,
        "avg_latency_ms": 100,
        "max_complexity": 0.5,
    },
    {
        "name": "big",
        "deployment": "d-big",
        "cost_per_1k_tokens": 0.01,
        "avg_latency_ms": 900,
        "max_complexity": 1.0,
    },
]


def test_calibrate_command_with_a_models_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, models = tmp_path / "d.jsonl", tmp_path / "models.json"
    write_data(data)
    models.write_text(json.dumps({"models": CATALOGUE}))
    argv = ["calibrate", "--data", str(data), "--models", str(models), "--classifier", "seed", "--json"]
    assert run_cli(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    # seed scores: len/1000 -> 0.002, 0.011, 0.3 (capped), 0.3: the two long ones (a tie) go to big.
    assert doc["costs"] == "data"  # catalogue names are the data's own models
    assert doc["met"] is True
    assert [m["name"] for m in doc["models"]] == ["small", "big"]
    assert doc["models"][0]["max_complexity"]["new"] == pytest.approx((0.011 + 0.3) / 2)
    assert doc["strong_fraction"] == 0.5
    assert doc["saving"] == pytest.approx(1 - (0.002 + 0.02) / 0.04)
    assert doc["not_calibrated"] == []


def test_calibrate_maps_unknown_names_and_reports_unmapped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, models = tmp_path / "d.jsonl", tmp_path / "models.json"
    write_data(data)
    extra = {**CATALOGUE[0], "name": "middle", "cost_per_1k_tokens": 0.004, "max_complexity": 0.7}
    renamed = [{**CATALOGUE[0], "name": "nano"}, extra, {**CATALOGUE[1], "name": "large"}]
    models.write_text(json.dumps(renamed))
    argv = ["calibrate", "--data", str(data), "--models", str(models), "--classifier", "seed"]
    assert run_cli([*argv, "--strong", "big", "--weak", "small"]) == 0
    out = capsys.readouterr().out
    assert "nano stands for small" in out
    assert "not calibrated" in out
    assert "middle" in out
    assert run_cli([*argv, "--map", "nope=big"]) == 2
    assert "no model 'nope'" in capsys.readouterr().err


def test_calibrate_apply_writes_the_models_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], azurite: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.models import store as model_store
    from router.settings import load_settings

    table = "calib" + uuid.uuid4().hex[:10]
    monkeypatch.setenv("TABLES_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("MODELS_TABLE", table)
    monkeypatch.setenv("CLASSIFIER", "seed")
    settings = load_settings()
    asyncio.run(model_store.upsert_models(settings, [ModelConfig(**m) for m in CATALOGUE]))
    data = tmp_path / "d.jsonl"
    write_data(data)
    assert (
        run_cli(["calibrate", "--data", str(data), "--apply"]) == 0
    )  # catalogue and classifier from settings
    assert "applied" in capsys.readouterr().out
    stored = {m.name: m for m in asyncio.run(model_store.read_models(settings))}
    assert stored["small"].max_complexity == pytest.approx(round((0.011 + 0.3) / 2, 6))
    assert stored["big"].max_complexity == 1.0
    assert stored["big"].deployment == "d-big"  # everything else is kept


def test_judge_band_is_centred_on_the_cut_and_within_budget() -> None:
    scores = [i / 100 for i in range(100)]  # 0.00 .. 0.99, one query each
    band = judge_band(scores, 0.5, 0.15)
    # 14 queries fit in 15% of 100 with as many below the cut as above it (7 + 7): 0.43 .. 0.56.
    assert (band.low, band.high) == (0.43, 0.56)
    assert band.fraction == pytest.approx(0.14)
    assert sum(band.low <= s <= band.high for s in scores) <= 15
    # At the edge of the data the band is cut short rather than shifted.
    edge = judge_band(scores, 0.0, 0.15)
    assert edge.low == 0.0 and edge.high < 0.15
    # A tie group larger than the budget: the band cannot split it, so it is that group alone.
    tied = judge_band([0.2] * 50 + [0.9] * 50, 0.2, 0.15)
    assert (tied.low, tied.high, tied.fraction) == (0.2, 0.2, 0.5)


@pytest.mark.parametrize("seed", range(20))
def test_judge_band_never_exceeds_its_share(seed: int) -> None:
    rng = random.Random(seed)
    scores = [round(rng.random(), 2) for _ in range(rng.randint(1, 300))]
    share = rng.choice([0.05, 0.15, 0.3])
    band = judge_band(scores, rng.random(), share)
    inside = sum(band.low <= s <= band.high for s in scores)
    assert inside == round(band.fraction * len(scores))
    assert band.low <= band.high
    assert inside <= max(share * len(scores), max(scores.count(s) for s in scores))


def test_calibrate_takes_several_files_and_suggests_a_judge_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, models = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "models.json"
    write_data(a)
    write_data(b)
    models.write_text(json.dumps({"models": CATALOGUE}))
    argv = ["calibrate", "--data", str(a), str(b), "--models", str(models), "--classifier", "seed"]
    assert run_cli([*argv, "--json", "--judge-share", "0.5"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["queries"] == 8 and doc["data"] == "a.jsonl, b.jsonl"
    judge = doc["judge"]
    # The cut in front of "big" falls between 0.011 and 0.3; half of the 8 queries fit around it.
    assert judge["JUDGE_LOW"] <= doc["models"][0]["max_complexity"]["new"] <= judge["JUDGE_HIGH"]
    assert judge["share"] <= 0.5
    assert run_cli(argv) == 0
    assert "judge band: JUDGE_LOW=" in capsys.readouterr().out
