"""The judge band follows the scorer: the judge's 0..1 answer is read on the configured scorer's
calibrated scale (``JUDGE_SCALE``), so a mid-band request lands where that scale says, not on the
priciest model. End to end: real Azurite, the real openai SDK to the simulator (which plays the judge
by a scripted reply), the shipped catalogue and the default settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.classifiers import get_scorer
from router.classifiers.base import routed
from router.dev.simulator import Reply
from router.errors import SettingsError
from router.evaluation.calibration import Band, judge_band, judge_band_for_each, judge_scale
from router.evaluation.data import load_training_jsonl
from router.models.config import load_file
from router.pipeline.judge import on_scale
from router.settings import Settings, load_settings

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "routing-data"
DEFAULTS = {k: Settings.model_fields[k].default for k in ("JUDGE_LOW", "JUDGE_HIGH", "JUDGE_SCALE")}
CATALOGUE = [m for m in load_file(ROOT / "models.sample.json") if m.enabled]
MID_BAND = "Solve the N-queens problem for n = 12 and count solutions."  # learned-v2: 0.1940


def test_on_scale_interpolates_the_points_and_identity_keeps_the_answer() -> None:
    assert on_scale(0.37, (0.0, 1.0)) == pytest.approx(0.37)
    assert on_scale(0.25, (0.1, 0.2, 0.4)) == pytest.approx(0.15)
    assert on_scale(0.75, (0.1, 0.2, 0.4)) == pytest.approx(0.3)
    assert (on_scale(0.0, (0.1, 0.2, 0.4)), on_scale(1.0, (0.1, 0.2, 0.4))) == (0.1, 0.4)
    with pytest.raises(ValueError, match="two points"):
        on_scale(0.5, (0.3,))


@given(st.floats(0, 1), st.floats(0, 1))
def test_the_shipped_scale_is_monotone_and_stays_in_the_band(a: float, b: float) -> None:
    scale = DEFAULTS["JUDGE_SCALE"]
    lo, hi = sorted((a, b))
    assert on_scale(lo, scale) <= on_scale(hi, scale)
    assert DEFAULTS["JUDGE_LOW"] <= on_scale(a, scale) <= DEFAULTS["JUDGE_HIGH"]


def test_the_shipped_scale_puts_a_judge_answer_of_half_just_below_the_cut_in_front_of_the_priciest() -> None:
    """0.5 is the routed (4-decimal) score at or below the cut, less than 0.0001 under it: a cheaper
    model answers, and any answer above 0.5 that moves the routed score sends it to the priciest."""
    top_cut = sorted(CATALOGUE, key=lambda m: m.cost_per_1k_tokens)[-2].max_complexity
    half = on_scale(0.5, DEFAULTS["JUDGE_SCALE"])
    assert routed(half) == half <= top_cut < half + 1e-4
    assert routed(on_scale(0.55, DEFAULTS["JUDGE_SCALE"])) > top_cut


def test_a_cut_between_two_routed_scores_puts_the_scale_midpoint_on_the_lower_one() -> None:
    """Calibrated cuts are midpoints of routed scores (0.19695): rounding the cut itself would go
    either way by the float's last bit, so the midpoint is the lower routed score."""
    scores = [0.1950, 0.1951, 0.1952, 0.1953, 0.1954, 0.1955, 0.1956]
    scale = judge_scale(scores, Band(0.1950, 0.1956, 1.0), 0.19535, points=5)
    assert scale[2] == 0.1953 and scale[1] <= 0.1953 < scale[3]
    assert list(scale) == sorted(scale)


def test_judge_scale_is_the_quantiles_on_each_side_of_the_cut() -> None:
    scores = [i / 100 for i in range(101)]
    band = Band(0.40, 0.60, 21 / 101)
    assert judge_scale(scores, band, 0.50, points=5) == pytest.approx((0.40, 0.45, 0.50, 0.55, 0.60))
    # Most of the band's requests sit just above the cut: the upper half of the scale follows them.
    skewed = [0.30, 0.40] + [0.50 + i / 1000 for i in range(20)] + [0.60]
    scale = judge_scale(skewed, Band(0.30, 0.60, 1.0), 0.45, points=5)
    assert scale[:3] == pytest.approx((0.30, 0.35, 0.45)) and scale[4] == 0.60
    assert 0.50 < scale[3] < 0.52
    assert judge_scale([0.9], Band(0.1, 0.2, 0.0), 0.15, points=3) == (0.1, 0.15, 0.2)  # empty band
    with pytest.raises(ValueError, match="odd"):
        judge_scale(scores, band, 0.5, points=4)


def test_the_band_holds_at_most_its_share_of_every_file() -> None:
    spread = [i / 100 for i in range(100)]
    crowded = [0.49 + i / 10_000 for i in range(200)] + [0.0] * 800  # 20% of it within 0.49..0.51
    pooled = judge_band(spread + crowded, 0.5, 0.15)
    assert sum(pooled.low <= v <= pooled.high for v in crowded) / len(crowded) > 0.15
    band = judge_band_for_each([spread, crowded], 0.5, 0.15)
    for data in (spread, crowded):
        assert sum(band.low <= v <= band.high for v in data) <= 0.15 * len(data)
    assert band.low <= 0.5 <= band.high
    assert band.fraction == max(
        sum(band.low <= v <= band.high for v in d) / len(d) for d in (spread, crowded)
    )


def test_judge_scale_setting_is_a_comma_list_validated_by_name() -> None:
    base = {"TABLES_CONNECTION_STRING": "x"}
    for text in ("0, 0.5,1", "[0, 0.5, 1]", "(0.0, 0.5, 1.0)"):
        assert load_settings({**base, "JUDGE_SCALE": text}).JUDGE_SCALE == (0.0, 0.5, 1.0)
    assert DEFAULTS["JUDGE_SCALE"] == load_settings(base).JUDGE_SCALE
    for bad, why in (("0.5", "two points"), ("0.4,0.2", "non-decreasing"), ("0,1.5", r"\[0, 1\]")):
        with pytest.raises(SettingsError, match=f"JUDGE_SCALE.*{why}"):
            load_settings({**base, "JUDGE_SCALE": bad})


@pytest.mark.parametrize(
    ("reply", "model"),
    [
        ("0", "gpt-4o-mini"),  # the band's easiest score, 0.1912
        ("0.3", "gpt-4o-mini"),  # 0.1945
        ("0.45", "gpt-4.1-mini"),  # 0.1962: above gpt-4o-mini's cut (0.19495), below gpt-4.1-mini's (0.19695)
        ("0.5", "gpt-4.1-mini"),  # 0.1969: the routed score just below the cut, whatever the float's last bit
        ("0.55", "gpt-4.1"),  # 0.1975
        ("0.9", "gpt-4.1"),  # 0.2020
    ],
)
async def test_a_mid_band_request_routes_where_the_scale_says(harness_factory, reply: str, model: str):
    h = await harness_factory(CATALOGUE, CLASSIFIER="learned-v2", CLASSIFIER_TIMEOUT_S=30, **DEFAULTS)
    scored = round(get_scorer("learned-v2").score(MID_BAND), 4)
    assert DEFAULTS["JUDGE_LOW"] <= scored <= DEFAULTS["JUDGE_HIGH"]
    h.simulator.script("gpt-4.1-nano", Reply(content=reply))  # the judge: the cheapest enabled model
    for _ in range(2):  # the answer, then the cached answer: the same mapping
        r = await h.client.post("/api/decide", json={"query": MID_BAND})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["classifier"], body["scorer"], body["model"]) == ("llm", "learned-v2", model)
        assert body["complexity"] == round(on_scale(float(reply), DEFAULTS["JUDGE_SCALE"]), 4)
    assert len(h.simulator.calls_to("gpt-4.1-nano")) == 1


async def test_without_the_scale_a_middling_answer_sends_the_band_to_the_priciest(harness_factory):
    """Why the scale exists: read as it is, "0.3" (easier than moderate) is far above every cheaper
    model's max_complexity (<= 0.19695) and sends the request to gpt-4.1; on the scale it is 4o-mini."""
    h = await harness_factory(
        CATALOGUE, CLASSIFIER="learned-v2", CLASSIFIER_TIMEOUT_S=30, **{**DEFAULTS, "JUDGE_SCALE": (0.0, 1.0)}
    )
    h.simulator.script("gpt-4.1-nano", Reply(content="0.3"))
    body = (await h.client.post("/api/decide", json={"query": MID_BAND})).json()
    assert (body["classifier"], body["model"], body["complexity"]) == ("llm", "gpt-4.1", 0.3)


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/routing-data is not next to the repo")
def test_the_defaults_are_what_the_readme_calibrate_command_suggests() -> None:
    """The shipped JUDGE_LOW/HIGH/SCALE and max_complexity come from `router calibrate` (the README's
    command), and the band holds at most 15% of the requests of each file, calibration data and
    chat logs alike, as the running router scores them (rounded to 4 decimals)."""
    files = [SHARED / f"routerbench_{t}.jsonl" for t in ("arc_challenge", "mbpp", "winogrande")]
    cmd = [sys.executable, "-m", "router", "calibrate", "--classifier", "learned-v2", "--json"]
    cmd += ["--target-quality", "0.9", "--models", str(ROOT / "models.sample.json"), "--data"]
    cmd += [*map(str, files), str(ROOT / "router" / "evaluation" / "data" / "synthetic_train.jsonl")]
    extra = [
        SHARED / "extra" / f"{n}.jsonl" for n in ("oasst_qlora", "llmrouter_tasks", "routerarena_cached")
    ]
    cmd += ["--judge-data", *map(str, extra)]
    for m in ("gpt-4.1-nano=mistral-7b-chat", "gpt-4o-mini=mixtral-8x7b-chat"):
        cmd += ["--map", m]
    cmd += ["--map", "gpt-4.1-mini=gpt-3.5-turbo-1106", "--map", "gpt-4.1=gpt-4-1106-preview"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    doc = json.loads(out)
    judge = doc["judge"]
    assert (judge["JUDGE_LOW"], judge["JUDGE_HIGH"]) == (DEFAULTS["JUDGE_LOW"], DEFAULTS["JUDGE_HIGH"])
    assert tuple(judge["JUDGE_SCALE"]) == DEFAULTS["JUDGE_SCALE"]
    assert judge["share"] <= 0.15
    scorer = get_scorer("learned-v2")
    low, high = DEFAULTS["JUDGE_LOW"], DEFAULTS["JUDGE_HIGH"]
    for path in [*files, *extra]:
        scores = [round(scorer.score(r.question), 4) for r in load_training_jsonl(path)]
        assert sum(low <= v <= high for v in scores) <= 0.15 * len(scores), path.name
    assert {m["name"]: m["max_complexity"]["new"] for m in doc["models"]} == {
        m.name: m.max_complexity for m in CATALOGUE
    }
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert sample["CLASSIFIER"] == "learned-v2"
    assert float(sample["JUDGE_LOW"]) == DEFAULTS["JUDGE_LOW"]
    assert tuple(map(float, sample["JUDGE_SCALE"].split(","))) == DEFAULTS["JUDGE_SCALE"]
