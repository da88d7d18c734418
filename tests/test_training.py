"""Training the learned scorer: labels, the premium/cheap split, task fixed effects, and the
``classifier train`` command end to end on a small hand-made slice."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

np = pytest.importorskip("numpy", reason="training needs the dev-only numpy")

from router.classifiers.learned import LearnedScorer  # noqa: E402
from router.classifiers.textstats import FEATURES  # noqa: E402
from router.errors import DataError  # noqa: E402
from router.evaluation import training  # noqa: E402
from router.evaluation.cli import add_commands  # noqa: E402
from router.evaluation.data import read_lines  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COSTS = {"strong": 0.01, "mid": 0.004, "cheap": 0.0005, "weak": 0.0001}


def record_line(i: int, question: str, scores: dict[str, float], source: str = "t") -> str:
    return json.dumps(
        {
            "id": f"{source}{i}",
            "source": source,
            "prompt": question,
            "question": question,
            "scores": scores,
            "cost": COSTS,
        }
    )


def test_premium_split_uses_log_price_midpoint() -> None:
    records = read_lines([record_line(0, "q", dict.fromkeys(COSTS, 1.0))])
    # sqrt(0.01 * 0.0001) = 0.001: "mid" (0.004) is premium, "cheap" (0.0005) is not.
    assert training.premium_split(records, "strong", "weak") == (["mid", "strong"], ["cheap", "weak"])


def test_labels_are_premium_minus_cheap() -> None:
    records = read_lines([record_line(0, "q", {"strong": 1, "mid": 0, "cheap": 1, "weak": 0})])
    assert training.labels(records, ["mid", "strong"], ["cheap", "weak"]).tolist() == [0.0]
    records = read_lines([record_line(0, "q", {"strong": 1, "mid": 1, "cheap": 0, "weak": 0})])
    assert training.labels(records, ["mid", "strong"], ["cheap", "weak"]).tolist() == [1.0]


def test_ridge_learns_a_planted_direction_and_ignores_task_identity() -> None:
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for shift in (0.0, 5.0):  # the second task differs by a constant in feature 1 and in base rate
        x = rng.normal(size=(200, 3))
        x[:, 1] = shift
        y = 2.0 * x[:, 0] + shift + rng.normal(scale=0.1, size=200)
        xs.append(x)
        ys.append(y)
    fit = training.fit_ridge(xs, ys, alpha=1.0)
    coef = fit["coef"]
    assert coef[0] > 0.5  # the within-task effect is found
    assert abs(coef[1]) < 1e-9  # a feature that only identifies the task gets no weight
    assert abs(coef[2]) < 0.1


def make_task(path: Path, source: str, n: int, seed: int) -> None:
    """Longer, number-heavy questions are the ones only the premium models get right."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        hard = rng.random() < 0.5
        words = rng.randint(25, 60) if hard else rng.randint(3, 10)
        q = " ".join(
            rng.choice(["compute", "the", "value", "of", str(rng.randint(10, 999)), "apples"])
            for _ in range(words)
        )
        win = 1.0 if hard and rng.random() < 0.8 else 0.0
        scores = {"strong": 1.0, "mid": 1.0, "cheap": 1.0 - win, "weak": 1.0 - win}
        lines.append(record_line(i, q + "?", scores, source))
    path.write_text("\n".join(lines) + "\n")


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="router")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def test_train_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    make_task(a, "a", 60, 1)
    make_task(b, "b", 50, 2)
    out = tmp_path / "w.json"
    argv = [
        "classifier",
        "train",
        "--data",
        str(a),
        str(b),
        "--out",
        str(out),
        "--strong",
        "strong",
        "--weak",
        "weak",
    ]
    assert run_cli([*argv, "--held-out"]) == 0
    text = capsys.readouterr().out
    assert "held out" in text
    assert "mean held-out APGR" in text
    raw = json.loads(out.read_text())
    assert raw["features"] == list(FEATURES)
    assert set(raw["trained"]["files"]) == {"a.jsonl", "b.jsonl"}
    scorer = LearnedScorer(out)
    assert scorer.score("compute the value of 12 apples " * 8) > scorer.score("hi?")
    first = out.read_bytes()
    assert run_cli(argv) == 0  # reproducible: the same bytes again
    assert out.read_bytes() == first


def test_held_out_folds_never_train_on_the_test_task(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    make_task(a, "a", 40, 3)
    make_task(b, "b", 40, 4)
    from router.evaluation.data import load_jsonl

    tasks = [training.Task("a", load_jsonl(a)), training.Task("b", load_jsonl(b))]
    folds = training.held_out_folds(tasks, strong="strong", weak="weak")
    assert [(f.held_out, f.trained_on) for f in folds] == [("a", ("b",)), ("b", ("a",))]
    for f in folds:
        learned = f.summaries["learned"]
        assert learned.apgr is not None
        assert learned.apgr > 0.6  # the planted signal carries across tasks
    with pytest.raises(ValueError, match="at least two"):
        training.held_out_folds(tasks[:1], strong="strong", weak="weak")


def test_train_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    assert run_cli(["classifier", "train", "--data", str(bad), "--out", str(tmp_path / "o.json")]) == 2
    assert "invalid JSON" in capsys.readouterr().err


# --- learned-v2 --------------------------------------------------------------------------------------


def tiny_vectors(path: Path) -> Path:
    """A made-up 8-dimensional vocabulary: what the trainer needs, without the distilled model."""
    from router.evaluation.training_v2 import Vectors

    vocab = ["[PAD]", "[UNK]", "compute", "the", "value", "of", "apples", "?", "hi", "thanks"]
    vocab += [str(d) for d in range(10)] + [f"##{d}" for d in range(10)]
    rng = np.random.default_rng(7)
    vecs = Vectors(vocab, rng.normal(size=(len(vocab), 8)))
    np.savez_compressed(path, vectors=vecs.vectors.astype(np.float16), vocab=np.array(vocab))
    return path


def test_train_learned_v2_command_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from router.classifiers.learned_v2 import LearnedV2Scorer

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    make_task(a, "a", 60, 1)
    make_task(b, "b", 50, 2)
    vectors = tiny_vectors(tmp_path / "v.npz")
    out = tmp_path / "v2.json"
    argv = ["classifier", "train", "--scorer", "learned-v2", "--vectors", str(vectors)]
    argv += ["--data", str(a), str(b), "--out", str(out), "--strong", "strong", "--weak", "weak"]
    assert run_cli([*argv, "--held-out"]) == 0
    text = capsys.readouterr().out
    assert "learned-v2" in text and "mean held-out APGR" in text
    raw = json.loads(out.read_text())
    assert raw["vocab"][:3] == ["[PAD]", "[UNK]", "compute"]
    assert set(raw["trained"]["files"]) == {"a.jsonl", "b.jsonl"}
    assert raw["gate"] is None  # no labelled trivial requests given: no gate
    scorer = LearnedV2Scorer(out)
    assert scorer.score("compute the value of 12 apples " * 8) > scorer.score("hi?")
    first = out.read_bytes()
    assert run_cli(argv) == 0  # reproducible: the same bytes again
    assert out.read_bytes() == first
    # eval and calibrate take the file with --weights
    assert run_cli(["eval", "--data", str(a), "--classifier", "learned-v2", "--weights", str(out),
                    "--strong", "strong", "--weak", "weak"]) == 0  # fmt: skip
    assert "learned-v2" in capsys.readouterr().out


def test_platt_slope_is_fitted_within_tasks() -> None:
    from router.evaluation.training_v2 import platt

    rng = np.random.default_rng(3)
    z, y, groups = [], [], []
    # Within each task a higher z means more wins, but the task with the higher z overall wins less.
    for shift, base in ((0.0, 0.0), (5.0, -3.0)):
        zz = rng.normal(size=2000)
        p = 1 / (1 + np.exp(-(1.5 * zz + base)))
        z.append(zz + shift)
        y.append((rng.random(2000) < p).astype(float))
        groups += [str(shift)] * 2000
    zs, ys = np.concatenate(z), np.concatenate(y)
    pooled_slope, _ = platt(zs, ys)
    slope, offset = platt(zs, ys, groups)
    assert pooled_slope < 0  # the between-task confound would invert the score ...
    assert slope == pytest.approx(1.5, abs=0.2)  # ... the within-task fit does not
    p = 1 / (1 + np.exp(-(slope * zs + offset)))
    assert p.mean() == pytest.approx(ys.mean(), abs=1e-6)  # the offset matches the base rate


def test_gates_learn_trivial_and_hard_kinds(tmp_path: Path) -> None:
    from router.classifiers.learned_v2 import LearnedV2Scorer
    from router.evaluation import training_v2 as tv2
    from router.evaluation.data import load_jsonl

    bench = tmp_path / "bench.jsonl"
    make_task(bench, "b", 80, 5)
    labelled = tmp_path / "labelled.jsonl"
    lines = []
    for i in range(40):
        trivial = i % 2 == 0
        q = "hi thanks" if trivial else "compute the value of 12 apples " * 3
        lines.append(
            record_line(i, q, {"strong": 1.0, "mid": 1.0, "cheap": float(trivial), "weak": float(trivial)})
        )
    labelled.write_text("\n".join(lines) + "\n")
    vectors = tv2.load_vectors(tiny_vectors(tmp_path / "v.npz"))
    recipe = tv2.Recipe(("strong",), ("weak",), "strong", "weak", gate="negative")
    gate_recipe = tv2.Recipe(
        ("strong",), ("weak",), "strong", "weak", item_level=True, within=False, gate="label"
    )
    tasks = [
        tv2.Task("bench", load_jsonl(bench), recipe, group="g"),
        tv2.Task("labelled", load_jsonl(labelled), gate_recipe, group="g"),
    ]
    doc = tv2.train(tasks, vectors)
    assert doc["gate"] is not None and doc["hard_gate"] is not None
    scorer = LearnedV2Scorer(doc)
    _, trivial, hard = scorer.parts("hi thanks")
    assert trivial > 0.9 and hard < 0.1
    _, trivial, hard = scorer.parts("compute the value of 12 apples compute the value")
    assert trivial < 0.1 and hard > 0.9
    assert scorer.score("hi thanks") < 0.05


def test_gate_weights_balance_labels_and_then_sources() -> None:
    """Half the weight on each label, and within a label each source (benchmarks, synthetic requests,
    word problems) the same share: 1,000 benchmark negatives do not drown 10 short hard requests."""
    from router.evaluation.training_v2 import _gate_weights

    y = np.array([1.0] * 20 + [0.0] * 1000 + [0.0] * 10 + [0.0] * 30)
    group = np.array([1.0] * 20 + [0.0] * 1000 + [1.0] * 10 + [2.0] * 30)
    w = _gate_weights(y, group)
    assert w.sum() == pytest.approx(len(y))
    assert w[y > 0].sum() == pytest.approx(w[y == 0].sum())
    for g in (0.0, 1.0, 2.0):
        assert w[(y == 0) & (group == g)].sum() == pytest.approx(len(y) / 6)
    assert w[20] * 1000 == pytest.approx(w[1020] * 10)  # per row: 100x for the small source


def test_training_and_calibration_never_read_the_held_out_sets(tmp_path: Path) -> None:
    """MT-Bench, GSM8K and MMLU rows are dropped by source, whatever file carries them (RouterArena
    has two MMLU ones); data sets that only share a prefix (MMLU-Pro, ArcMMLU) stay, and `router
    eval` still reads everything."""
    from router.evaluation.data import load_jsonl, load_training_jsonl

    sources = [
        "routerarena/MMLU",
        "x/gsm8k",
        "lmsys/mt_bench",
        "routerarena/MMLUPro",
        "routerarena/ArcMMLU",
        "rb/arc",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(record_line(i, "q", {"strong": 1.0, "weak": 0.0}, s) for i, s in enumerate(sources))
    )
    assert [r.source for r in load_training_jsonl(path)] == sources[3:]
    assert len(load_jsonl(path)) == len(sources)
    only = tmp_path / "only.jsonl"
    only.write_text(record_line(0, "q", {"strong": 1.0, "weak": 0.0}, "openai/gsm8k"))
    with pytest.raises(DataError, match="held-out"):
        load_training_jsonl(only)
    arena = ROOT.parent / "shared" / "routing-data" / "extra" / "routerarena_cached.jsonl"
    if arena.exists():
        assert len(load_jsonl(arena)) - len(load_training_jsonl(arena)) == 2
