"""Router metrics against small hand-computed cases, data loading, and the ``eval`` command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from router.evaluation import metrics as M
from router.evaluation.cli import add_commands
from router.evaluation.data import DataError, Pair, fingerprint, load_jsonl, pair, read_lines, resolve_model

SHARED = Path(__file__).parents[1].parent / "shared" / "routing-data"

# Four queries: strong wins on q0 and q1, both right on q2, both wrong on q3.
# weak quality 0.25, strong quality 0.75, gap 0.5.
STRONG_Q = (1.0, 1.0, 1.0, 0.0)
WEAK_Q = (0.0, 0.0, 1.0, 0.0)
DATA = Pair("s", "w", STRONG_Q, WEAK_Q, (1.0,) * 4, (0.1,) * 4)


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="router")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_perfect_scorer() -> None:
    c = M.curve([4, 3, 2, 1], DATA)
    # PGR at x = 0, .25, .5, .75, 1 is 0, .5, 1, 1, 1.
    assert [p.quality for p in c.points] == [0.25, 0.5, 0.75, 0.75, 0.75]
    assert M.apgr(c) == pytest.approx(0.75)
    assert M.cpt(c, 0.5) == pytest.approx(0.25)
    assert M.cpt(c, 0.8) == pytest.approx(0.4)  # 0.25 + (0.3 / 0.5) * 0.25


def test_reversed_scorer_mirrors_the_perfect_one() -> None:
    c = M.curve([1, 2, 3, 4], DATA)
    assert M.apgr(c) == pytest.approx(0.25)
    assert M.cpt(c, 0.5) == pytest.approx(0.75)
    assert M.cpt(c, 0.8) == pytest.approx(0.9)


def test_constant_scorer_is_exactly_random() -> None:
    c = M.curve([0.3] * 4, DATA)
    assert M.apgr(c) == 0.5
    assert M.cpt(c, 0.5) == pytest.approx(0.5)
    assert M.cpt(c, 0.8) == pytest.approx(0.8)


def test_ties_count_as_random_order() -> None:
    # q0 (a win) tied with q2 (no gain); q1 (a win) tied with q3 (no gain).
    tied = M.apgr(M.curve([2, 1, 2, 1], DATA))
    win_first = M.apgr(M.curve([2.1, 1.1, 2, 1], DATA))
    win_last = M.apgr(M.curve([2, 1, 2.1, 1.1], DATA))
    assert win_first == pytest.approx(0.625)
    assert win_last == pytest.approx(0.375)
    assert tied == pytest.approx((win_first + win_last) / 2) == pytest.approx(0.5)


def test_quality_interpolates_inside_a_tie_group() -> None:
    c = M.curve([2, 1, 2, 1], DATA)
    assert c.quality_at(0.25) == pytest.approx(0.375)  # half of the tie group's gain
    assert c.quality_at(0.5) == pytest.approx(0.5)


def test_cheapest_threshold_and_saving() -> None:
    c = M.curve([4, 3, 2, 1], DATA)
    at = M.cheapest_point(c, 0.95)  # quality >= 0.7125: the first two queries to strong suffice
    assert at is not None
    assert (at.threshold, at.strong_fraction, at.quality) == (3, 0.5, 0.75)
    assert at.cost == pytest.approx(2 * 1.0 + 2 * 0.1)
    assert M.saving(c, at) == pytest.approx(1 - 2.2 / 4)


def test_baselines() -> None:
    weak, strong, rnd, oracle = M.baselines(DATA)
    assert weak.at_target is None  # 0.25 < 0.95 * 0.75
    assert strong.saving == 0.0
    assert strong.cpt50 == 1.0
    assert rnd.apgr == 0.5
    assert rnd.cpt80 == pytest.approx(0.8)
    # Random reaches 0.7125 at x = (0.7125 - 0.25) / 0.5 = 0.925; cost 0.4 + 0.925 * 3.6.
    assert rnd.at_target is not None
    assert rnd.at_target.strong_fraction == pytest.approx(0.925)
    assert rnd.saving == pytest.approx(1 - (0.4 + 0.925 * 3.6) / 4)
    assert oracle.apgr == pytest.approx(0.75)


def test_oracle_is_the_best_possible() -> None:
    data = Pair("s", "w", (1, 0, 1, 1, 0, 1), (0, 1, 1, 0, 0, 0), (1,) * 6, (0,) * 6)
    best = M.apgr(M.curve(M.oracle_scores(data), data))
    assert best is not None
    for scores in ([1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1], [3, 1, 4, 1, 5, 9], [0] * 6):
        other = M.apgr(M.curve(scores, data))
        assert other is not None
        assert other <= best + 1e-12


def test_no_gap_means_no_pgr() -> None:
    data = Pair("s", "w", (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.0, 0.0))
    c = M.curve([1, 0], data)
    assert M.apgr(c) is None
    assert M.cpt(c, 0.5) is None


def test_curve_needs_one_score_per_query() -> None:
    with pytest.raises(ValueError, match="one score per query"):
        M.curve([1.0], DATA)


# --- data ------------------------------------------------------------------------------------------


def row(i: int, question: str, s: float, w: float, **extra: object) -> str:
    obj = {
        "id": f"q{i}",
        "prompt": "few-shot...\n" + question,
        "question": question,
        "scores": {"big": s, "org/small": w},
        "cost": {"big": 0.01, "org/small": 0.001},
        **extra,
    }
    return json.dumps(obj)


def test_read_lines_and_pair() -> None:
    records = read_lines([row(0, "a", 1, 0), "", row(1, "b", 0, 1)])
    assert [r.question for r in records] == ["a", "b"]
    assert records[0].text("prompt").startswith("few-shot")
    p = pair(records, "big", "small")  # "small" resolves to "org/small"
    assert (p.strong_quality, p.weak_quality) == ((1.0, 0.0), (0.0, 1.0))


def test_question_falls_back_to_prompt() -> None:
    (r,) = read_lines([json.dumps({"prompt": "p", "scores": {"a": 1}, "cost": {"a": 0}})])
    assert r.text("question") == "p"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "x:1: invalid JSON"),
        (json.dumps({"scores": {"a": 1}, "cost": {"a": 0}}), "'prompt' or 'question'"),
        (json.dumps({"prompt": "p", "scores": {"a": "yes"}, "cost": {"a": 0}}), "not a number"),
        (json.dumps({"prompt": "p", "scores": {}, "cost": {"a": 0}}), "non-empty object"),
    ],
)
def test_bad_lines_name_the_line(line: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_lines([line], "x")


def test_unknown_model() -> None:
    with pytest.raises(DataError, match="not in the data"):
        resolve_model("gpt-9", ["a", "b"])


# --- the eval command ------------------------------------------------------------------------------


def test_eval_command_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = ["hi", "Why does ice float, and then melt?", "def f(): pass", "What is 2 + 2?"]
    lines = [row(i, q, s, w) for i, (q, s, w) in enumerate(zip(questions, STRONG_Q, WEAK_Q, strict=True))]
    data = tmp_path / "mine.jsonl"
    data.write_text("\n".join(lines) + "\n")
    rc = run_cli(
        ["eval", "--data", str(data), "--classifier", "seed", "--strong", "big", "--weak", "small", "--json"]
    )
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    from router.classifiers.seed import seed_complexity

    expected = M.apgr(
        M.curve([seed_complexity(q) for q in questions], pair(load_jsonl(data), "big", "small"))
    )
    assert doc["classifiers"][0]["apgr"] == pytest.approx(expected)
    assert doc["classifiers"][0]["in_sample"] is False
    assert [b["name"] for b in doc["baselines"]] == ["always-weak", "always-strong", "random", "oracle"]
    assert doc["baselines"][2]["apgr"] == 0.5
    assert fingerprint(data) == fingerprint(data)


def test_eval_command_text_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(row(i, "q" * i, i % 2, 0) for i in range(1, 7)))
    assert run_cli(["eval", "--data", str(data), "--strong", "big", "--weak", "small"]) == 0
    out = capsys.readouterr().out
    for name in ("seed", "improved", "learned", "always-weak", "always-strong", "random", "oracle", "APGR"):
        assert name in out
    assert run_cli(["eval", "--data", str(data), "--strong", "nope", "--weak", "small"]) == 2
    assert "not in the data" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared/routing-data is not next to the repo")
def test_eval_on_the_shared_data(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in SHARED.glob("*.jsonl"))
    assert run_cli(["eval", "--data", *files, "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert len(docs) == len(files)
    for doc in docs:
        by_name = {c["name"]: c for c in doc["classifiers"]}
        assert by_name["learned"]["in_sample"] is True  # the shipped weights were trained on these files
        assert by_name["improved"]["apgr"] > by_name["seed"]["apgr"]
