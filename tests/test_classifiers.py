"""The classifier registry, the seed baseline kept exact, and the shipped learned weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.classifiers import get_scorer, names
from router.classifiers.improved import improved_complexity
from router.classifiers.learned import DEFAULT_WEIGHTS, LearnedScorer, WeightsError, load_weights
from router.classifiers.seed import seed_complexity
from router.classifiers.textstats import _PUNCT, FEATURES, features, split_options, split_words

MATH_Q = "Explain why the derivative of x^2 is 2x, and then prove it step by step."
MC_Q = "Which of these is NOT a mammal?\nA) whale\nB) bat\nC) shark\nD) dog"


def test_registry() -> None:
    assert {"seed", "heuristic", "improved", "learned"} <= set(names())
    assert get_scorer("improved").kind == "heuristic"
    learned = get_scorer("learned")
    assert (learned.name, learned.kind) == ("learned", "learned")
    with pytest.raises(KeyError, match="unknown classifier"):
        get_scorer("nope")


def test_seed_is_the_article_rule() -> None:
    assert seed_complexity("hi") == pytest.approx(0.002)
    text = "Why is the sky blue and then red?"
    assert seed_complexity(text) == pytest.approx(len(text) / 1000 + 0.2 + 0.15)
    assert seed_complexity("x" * 5000 + " explain ```def f(): and then") == pytest.approx(
        0.3 + 0.2 + 0.2 + 0.15
    )


def test_improved_orders_obvious_cases() -> None:
    assert improved_complexity("") < 0.05
    assert improved_complexity("hello") < improved_complexity(MATH_Q)
    code = "Write a function that parses `def f(x): return x[0] == 1;` and returns the AST."
    assert improved_complexity("thanks!") < improved_complexity(code)


def test_shipped_weights_load_and_score_deterministically() -> None:
    raw = load_weights()
    assert raw["features"] == list(FEATURES)
    assert DEFAULT_WEIGHTS.stat().st_size < 10_000  # small enough to ship in the package
    a, b = LearnedScorer(), LearnedScorer()
    # Pinned: any change to the features or the weights file changes these.
    assert a.score("hello") == pytest.approx(2.809681513338269e-06, rel=1e-9)
    assert a.score(MATH_Q) == pytest.approx(0.999000069850347, rel=1e-9)
    assert a.score(MC_Q) == pytest.approx(0.012624690610608003, rel=1e-9)
    assert [a.score(t) for t in (MATH_Q, MC_Q)] == [b.score(t) for t in (MATH_Q, MC_Q)]


def test_learned_matches_the_unfolded_formula() -> None:
    raw = load_weights()
    x = features(MATH_Q)
    lin = sum(c * (xi - m) / s for c, xi, m, s in zip(raw["coef"], x, raw["mean"], raw["scale"], strict=True))
    z = (lin - raw["score_mean"]) / raw["score_sd"]
    assert LearnedScorer().score(MATH_Q) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), rel=1e-12)


def test_weights_from_another_feature_set_are_refused(tmp_path: Path) -> None:
    raw = load_weights()
    raw["features"] = [*raw["features"][:-1], "something_else"]
    path = tmp_path / "w.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(WeightsError, match="different feature set"):
        LearnedScorer(path)
    with pytest.raises(WeightsError, match="format"):
        LearnedScorer({**load_weights(), "format": 99})


def test_split_options() -> None:
    assert split_options("Q?\nA) x\nB) y\n(c) z\nAnswer:") == ("Q?\nAnswer:", ["x", "y", "z"])
    assert split_options("Steps:\n1. only one item\nmore") == ("Steps:\n1. only one item\nmore", [])
    assert split_options("no newline A) b B) c")[1] == []


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=400))
def test_every_scorer_stays_in_0_1(text: str) -> None:
    for name in ("seed", "improved", "learned"):
        s = get_scorer(name).score(text)
        assert math.isfinite(s)
        assert 0.0 <= s <= 1.0
    assert len(features(text)) == len(FEATURES)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=200) | st.text(max_size=80))
def test_the_ascii_fast_path_splits_words_as_the_general_one(text: str) -> None:
    """ASCII text takes a bytes-table translate (about 4x faster); it must give the general path's
    words exactly, or the learned scorers would score what they were not trained on."""
    assert split_words(text) == (text.translate(_PUNCT).split(), text.lower().translate(_PUNCT).split())
