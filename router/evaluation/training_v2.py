"""Training ``learned-v2`` (dev-only: numpy, and the distilled vectors of ``distil.py``).

Choices, each for generalisation to traffic none of the files holds (the README has the numbers):

* Features: the SIF-weighted mean of static MiniLM token vectors (what a query is *about*: code,
  proofs, chit-chat, translation) plus the 23 text statistics (how long and dense it is).
* Label, per query: mean quality of the file's premium models minus its cheap ones (``RECIPES``
  names them per file: price alone misleads where a big model is a poor one), so 1 = "only the
  expensive models get this right", 0 = "all do equally".
* Within-task difficulty comes from the statistics: ridge with task fixed effects on the files
  marked ``within`` (RouterBench's GPT-4 vs Mixtral pair).
* Between-task signal comes from the token vectors: ridge against each benchmark task's *mean* gain
  (so "maths and code need the big model" is learned from RouterBench's 3, LLMRouter's 11 and
  RouterArena's 38 tasks, without the topic noise inside one benchmark) and each chat or synthetic
  item's own label, centred per group of files sharing one model set (what differs between the
  groups' model pairs is not learned), with a small weight in the sum.
* Two logistic gates (trivial request; clearly hard request) from the synthetic set against
  benchmark questions, each source weighing the same within a label, steepened so they stay out of
  the way inside a benchmark.
* Platt scaling of "the strong model is better" on RouterBench's outcomes, its slope fitted within
  tasks: the score is that estimated probability. The fixed ``improved`` prior is added to the logit
  before a second Platt fit, so the score stays that probability with the prior in it. Everything
  is closed-form or Newton, with no random seed, and rounded, so the shipped file is reproducible
  byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classifiers import get_scorer
from router.classifiers.improved import from_features as improved_from_features
from router.classifiers.learned_v2 import FORMAT, LearnedV2Scorer, longest_piece, token_ids
from router.classifiers.textstats import FEATURES, features
from router.evaluation import metrics
from router.evaluation.data import DEFAULT_STRONG, DEFAULT_WEAK, Record, models_in, pair, resolve_model
from router.evaluation.distil import DEFAULT_OUT
from router.evaluation.training import premium_split

VECTORS = DEFAULT_OUT  # the distilled token vectors, as shipped

Matrix = npt.NDArray[np.float64]
DEFAULT_ALPHA = 30.0
DEFAULT_EMB_ALPHA = 100.0
DEFAULT_GATE_ALPHA = 30.0
DEFAULT_GATE_SHARPNESS = 3.0
# A request of a clearly hard kind (a proof, a system design) is taken to be at least this likely
# to be answered better by the strong model: score = p + (1 - p) x boost x P(hard kind).
DEFAULT_HARD_BOOST = 0.5
DEFAULT_EMB_WEIGHT = 0.2  # by leave-one-file-out APGR: more helps between kinds, hurts within a task
# The hand-built ``improved`` score's share of p's logit, per standard deviation of it over the
# training queries. Not fitted: a fitted weight follows RouterBench's within-task noise.
DEFAULT_PRIOR_WEIGHT = 0.2
SIF_A = 1e-3
GATES_ONLY = 1e-9  # a file's weight in the difficulty model when only the gates learn from it


@dataclass(frozen=True, slots=True)
class Recipe:
    """Which models of a file are premium / cheap (the label) and the pair its APGR is reported on."""

    premium: tuple[str, ...]
    cheap: tuple[str, ...]
    strong: str
    weak: str
    item_level: bool = False  # each query is its own kind of request (chat logs), not one benchmark
    # Role in training the trivial-request gate: "negative" (benchmark questions: none is trivial),
    # "label" (trivial where nothing is gained, the synthetic set), "not-trivial" (negatives for the
    # trivial gate only, no role in the hard-kind gate) or "skip" (mixed chat logs).
    gate: str = "skip"
    weight: float = 1.0  # total weight of the file's group, relative to the others
    within: bool = True  # its within-task difficulty trains the text-statistics part

    @property
    def gates_only(self) -> bool:
        """Only the gates learn from it (its labels are an assumption, not a measurement): it has no
        weight in the difficulty model and no leave-one-file-out APGR of its own."""
        return self.weight <= GATES_ONLY


_RB = Recipe(
    ("gpt-4-1106-preview", "claude-v2", "claude-v1"),
    (
        "mistralai/mixtral-8x7b-chat",
        "mistralai/mistral-7b-chat",
        "WizardLM/WizardLM-13B-V1.2",
        "meta/llama-2-70b-chat",
        "zero-one-ai/Yi-34B-Chat",
        "gpt-3.5-turbo-1106",
        "claude-instant-v1",
        "meta/code-llama-instruct-34b-chat",
    ),
    DEFAULT_STRONG,
    DEFAULT_WEAK,
    gate="negative",
)
_SYNTHETIC = Recipe(
    _RB.premium,
    _RB.cheap,
    DEFAULT_STRONG,
    DEFAULT_WEAK,
    item_level=True,
    within=False,
    gate="label",
    weight=20.0,
)
RECIPES: dict[str, Recipe] = {
    "routerbench_arc_challenge": _RB,
    "routerbench_mbpp": _RB,
    "routerbench_winogrande": _RB,
    "oasst_qlora": Recipe(
        ("gpt-4",),
        ("gpt-3.5", "vicuna-13b", "guanaco-7b", "guanaco-13b", "guanaco-33b", "guanaco-65b"),
        "gpt-4",
        "gpt-3.5",
        item_level=True,
        within=False,
    ),
    # The 70B ChatQA model is priced as premium but scores below the 7B models: not "premium".
    "llmrouter_tasks": Recipe(
        ("llama-3.1-nemotron-51b-instruct", "llama-3.3-nemotron-super-49b-v1"),
        ("qwen2.5-7b-instruct", "llama-3.1-8b-instruct", "gemma-2-9b-it", "mistral-7b-instruct-v0.3"),
        "llama-3.1-nemotron-51b-instruct",
        "mistral-7b-instruct-v0.3",
        within=False,
        gate="negative",
    ),
    # gemini is the better (and cheaper) model here: the label is where it beats claude-3-haiku.
    "routerarena_cached": Recipe(
        ("gemini-2.0-flash-001",),
        ("claude-3-haiku-20240307",),
        "gemini-2.0-flash-001",
        "claude-3-haiku-20240307",
        within=False,
        gate="negative",
    ),
    # The project's own labelled easy/hard requests, with RouterBench's models (make_synthetic.py):
    # about 1,100 templated requests against ~3,000 per real group, weighted up so that what kind of
    # request it is (a greeting, a proof) is learned at all; chosen by the development set.
    "synthetic_train": _SYNTHETIC,
    # Everyday multi-step word problems (make_wordproblems.py): only "not trivial", so that plain
    # words ("buys", "how much is left") with several quantities do not close the trivial gate.
    # No weight in the difficulty heads' fits (their label is an assumption, not a measurement).
    "wordproblems_train": replace(_SYNTHETIC, gate="not-trivial", weight=GATES_ONLY),
    # Short hard imperatives ("Write a B-tree index."): hard for both gates, nothing else. As plain
    # as a greeting, so one word's vector decided them before; as rows of the synthetic set they
    # also moved the difficulty model inside MBPP ("Write a function ..."), hence gates only.
    "imperatives_train": replace(_SYNTHETIC, weight=GATES_ONLY),
}


def recipe_for(name: str, records: Sequence[Record], strong: str, weak: str) -> Recipe:
    """The file's recipe, else strong/weak with the premium split of the learned (v1) trainer."""
    if name in RECIPES:
        return RECIPES[name]
    premium, cheap = premium_split(records, strong, weak)
    return Recipe(tuple(premium), tuple(cheap), strong, weak)


@dataclass(slots=True)
class Task:
    """One training file: records, a recipe, and the group (files sharing one model set)."""

    name: str
    records: Sequence[Record]
    recipe: Recipe
    group: str = ""
    cache: dict[str, Any] = field(default_factory=dict)


def make_task(
    name: str, records: Sequence[Record], strong: str = DEFAULT_STRONG, weak: str = DEFAULT_WEAK
) -> Task:
    recipe = recipe_for(name, records, strong, weak)
    return Task(name, records, recipe, group=",".join(models_in(records)))


def labels(task: Task) -> Matrix:
    models = models_in(task.records)
    premium = [resolve_model(m, models) for m in task.recipe.premium]
    cheap = [resolve_model(m, models) for m in task.recipe.cheap]
    return np.array(
        [
            sum(r.scores[m] for m in premium) / len(premium) - sum(r.scores[m] for m in cheap) / len(cheap)
            for r in task.records
        ],
        dtype=np.float64,
    )


@dataclass(frozen=True, slots=True)
class Vectors:
    vocab: list[str]
    vectors: Matrix  # (vocab, dims)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}


def load_vectors(path: str | Path = VECTORS) -> Vectors:
    with np.load(path) as z:
        return Vectors([str(t) for t in z["vocab"]], z["vectors"].astype(np.float64))


def tokenise(task: Task, vocab: Mapping[str, int], field_name: str) -> list[list[int]]:
    key = f"ids:{field_name}"
    if key not in task.cache:
        longest = longest_piece(vocab)
        task.cache[key] = [token_ids(r.text(field_name), vocab, longest) for r in task.records]
    ids: list[list[int]] = task.cache[key]
    return ids


def stats(task: Task, field_name: str) -> Matrix:
    key = f"stats:{field_name}"
    if key not in task.cache:
        task.cache[key] = np.array([features(r.text(field_name)) for r in task.records], dtype=np.float64)
    out: Matrix = task.cache[key]
    return out


def sif_weights(docs: Sequence[Sequence[int]], vocab_size: int) -> Matrix:
    """Smooth inverse frequency, a / (a + p(token)), with p counted on the training queries:
    frequent tokens ("the", "?") weigh little, content tokens about 1."""
    counts = np.zeros(vocab_size, dtype=np.float64)
    for ids in docs:
        np.add.at(counts, ids, 1.0)
    p = counts / max(1.0, counts.sum())
    out: Matrix = SIF_A / (SIF_A + p)
    return out


def pool(docs: Sequence[Sequence[int]], vectors: Matrix, weights: Matrix) -> Matrix:
    out = np.zeros((len(docs), vectors.shape[1]), dtype=np.float64)
    for i, ids in enumerate(docs):
        if ids:
            w = weights[ids]
            out[i] = w @ vectors[ids] / w.sum()
    return out


def _ridge(
    x: Matrix, y: Matrix, w: Matrix, units: Sequence[str], alpha: float
) -> tuple[Matrix, Matrix, Matrix]:
    """Weighted ridge on standardised features, x and y centred within each unit (fixed effects).
    Returns (coef on standardised features, mean, scale)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    members: dict[str, list[int]] = {}
    for i, u in enumerate(units):
        members.setdefault(u, []).append(i)
    xc = np.empty_like(x)
    yc = np.empty_like(y)
    for rows in members.values():
        idx = np.array(rows)
        xc[idx] = (x[idx] - np.average(x[idx], axis=0, weights=w[idx])) / scale
        yc[idx] = y[idx] - np.average(y[idx], weights=w[idx])
    wn = w / w.mean()
    gram = xc.T @ (xc * wn[:, None]) + alpha * np.eye(x.shape[1])
    coef: Matrix = np.linalg.solve(gram, xc.T @ (wn * yc))
    return coef, mean, scale


def _train_gate(
    tasks: Sequence[Task],
    x: Matrix,
    ys: Sequence[Matrix],
    alpha: float,
    sharpness: float = 1.0,
    target: str = "trivial",
) -> tuple[Matrix, float] | None:
    """Logistic regression: is this a trivial request (a synthetic one where no model gains)
    rather than a benchmark question or a hard request? Positives and negatives weigh the same, and
    within each every source does (``_gate_weights``).
    Returns raw-feature coefficients and intercept, or None without both kinds of example."""
    rows, labels_, groups = [], [], []
    offset = 0
    for t, y in zip(tasks, ys, strict=True):
        n = len(t.records)
        if t.recipe.gate == "negative":
            # "trivial": only questions the premium models do better on (a benchmark question that
            # every model gets right, or wrong, says nothing against trivial). "hard": all of them,
            # so that the hard-kind gate fires on proofs and designs, never inside a benchmark.
            keep = np.flatnonzero(y > 0) if target == "trivial" else np.arange(n)
            rows.append(offset + keep)
            labels_.append(np.zeros(len(keep)))
            groups.append(np.zeros(len(keep)))
        elif t.recipe.gate == "label":
            rows.append(np.arange(offset, offset + n))
            labels_.append((y <= 0 if target == "trivial" else y > 0).astype(np.float64))
            groups.append(np.ones(n))
        elif t.recipe.gate == "not-trivial" and target == "trivial":
            rows.append(np.arange(offset, offset + n))
            labels_.append(np.zeros(n))
            groups.append(np.full(n, 2.0))
        offset += n
    if not rows:
        return None
    idx = np.concatenate(rows)
    y = np.concatenate(labels_)
    if y.min() == y.max():
        return None
    w = _gate_weights(y, np.concatenate(groups))
    mean = x[idx].mean(axis=0)
    scale = x[idx].std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = np.hstack([(x[idx] - mean) / scale, np.ones((len(idx), 1))])
    beta = np.zeros(xs.shape[1])
    ridge = alpha * np.eye(xs.shape[1])
    ridge[-1, -1] = 0.0  # the intercept is not shrunk
    for _ in range(30):
        p = _sigmoid(xs @ beta)
        grad = xs.T @ (w * (p - y)) + ridge @ beta
        hess = xs.T @ (xs * (w * p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    coef = beta[:-1] / scale
    # Steeper than fitted: the gate either fires (a trivial request) or stays near 0, so that its
    # small values on benchmark questions do not reorder the queries of one task.
    return sharpness * coef, sharpness * float(beta[-1] - coef @ mean)


def _gate_weights(y: Matrix, group: Matrix) -> Matrix:
    """Positives and negatives weigh half each, and within each half every source (benchmarks,
    synthetic requests, word problems) weighs the same: thousands of long benchmark questions
    would otherwise teach the trivial gate that every short request is trivial, whatever it asks
    ("Write a memory allocator.": P(trivial) 1.0)."""
    w = np.zeros(len(y))
    for label in (0.0, 1.0):
        kinds = np.unique(group[y == label])
        for g in kinds:
            m = (y == label) & (group == g)
            w[m] = 0.5 / len(kinds) / m.sum()
    out: Matrix = w * len(y)
    return out


def _sigmoid(t: Matrix) -> Matrix:
    out: Matrix = 0.5 * (1.0 + np.tanh(0.5 * t))
    return out


def _newton_logit(x: Matrix, y: Matrix, iterations: int = 50) -> Matrix:
    """Maximum-likelihood logistic coefficients (Newton; a tiny ridge keeps it defined)."""
    beta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = _sigmoid(x @ beta)
        grad = x.T @ (p - y)
        hess = x.T @ (x * (p * (1 - p))[:, None]) + 1e-6 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if float(np.abs(step).max()) < 1e-10:
            break
    return beta


def platt(z: Matrix, y: Matrix, groups: Sequence[str] | None = None) -> tuple[float, float]:
    """Slope and offset of P(y=1) = sigmoid(slope * z + offset).

    With ``groups`` (the task of each row), the slope is fitted with one intercept per task, so it
    measures how well z ranks queries *within* a task; a between-task difference of z that the
    outcomes do not share (code "looks harder" than WinoGrande but GPT-4 gains more on WinoGrande)
    cannot turn it negative. The offset is then fitted on all rows with that slope."""
    if groups is None:
        a, b = _newton_logit(np.stack([z, np.ones_like(z)], axis=1), y)
        return float(a), float(b)
    names = sorted(set(groups))
    dummies = np.array([[1.0 if g == n else 0.0 for n in names] for g in groups])
    slope = float(_newton_logit(np.hstack([z[:, None], dummies]), y)[0])
    b = 0.0
    for _ in range(50):
        p = _sigmoid(slope * z + b)
        step = float((p - y).sum() / max(1e-12, float((p * (1 - p)).sum())))
        b -= step
        if abs(step) < 1e-12:
            break
    return slope, b


def _round(values: Any, digits: int = 5) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in np.asarray(values, dtype=np.float64).ravel()]


@dataclass(frozen=True, slots=True)
class _Pooled:
    """Every training query's features, labels and bookkeeping, stacked over the tasks."""

    sif: Matrix  # per-token SIF weight
    emb: Matrix  # pooled token vectors
    stats: Matrix  # text statistics
    ys: list[Matrix]  # labels, per task
    y: Matrix  # labels, stacked
    w: Matrix  # row weights: each group sums to its files' weight
    group_of: list[str]  # the model-set group of each row
    source_of: list[str]  # group|task of each row (the unit of within-task centring)
    names_of: list[str]  # the file of each row


def _pool_tasks(
    tasks: Sequence[Task],
    vectors: Vectors,
    field_name: str,
    group_weight: Mapping[str, float] | None,
) -> _Pooled:
    index = vectors.index
    docs = [tokenise(t, index, field_name) for t in tasks]
    weights = sif_weights([ids for d in docs for ids in d], len(vectors.vocab))
    xs = [
        np.hstack([pool(d, vectors.vectors, weights), stats(t, field_name)])
        for t, d in zip(tasks, docs, strict=True)
    ]
    ys = [labels(t) for t in tasks]
    dims = vectors.vectors.shape[1]
    group_of = [t.group for t in tasks for _ in t.records]
    gsize: dict[str, int] = {}
    for g in group_of:
        gsize[g] = gsize.get(g, 0) + 1
    w_all = np.array(
        [(group_weight or {}).get(t.name, t.recipe.weight) / gsize[t.group] for t in tasks for _ in t.records]
    )
    return _Pooled(
        sif=weights,
        emb=np.vstack([x[:, :dims] for x in xs]),
        stats=np.vstack([x[:, dims:] for x in xs]),
        ys=ys,
        y=np.concatenate(ys),
        w=w_all,
        group_of=group_of,
        source_of=[t.group + "|" + r.source for t in tasks for r in t.records],
        names_of=[t.name for t in tasks for _ in t.records],
    )


def _fit_within_stats(tasks: Sequence[Task], data: _Pooled, alpha: float) -> tuple[Matrix, Matrix, Matrix]:
    """Stage 1, within-task difficulty: text statistics, features and labels centred per task, on
    the benchmark files only (in chat logs and the synthetic set, length says little by itself)."""
    bench = np.array([1.0 if t.recipe.within else 0.0 for t in tasks for _ in t.records])
    keep = bench > 0 if bench.any() else np.ones(len(bench), dtype=bool)
    return _ridge(
        data.stats[keep],
        data.y[keep],
        data.w[keep],
        [u for u, k in zip(data.source_of, keep, strict=True) if k],
        alpha,
    )


def _between_task_target(
    tasks: Sequence[Task], data: _Pooled, stats_fit: tuple[Matrix, Matrix, Matrix], residual: bool
) -> Matrix:
    """Stage 2's target, what kind of request it is: each task's mean gain (between-task only:
    within one benchmark the embedding picks up topic noise that does not transfer), except for
    files of mixed everyday requests (chat, synthetic), whose items each are a kind."""
    item_level = {t.name for t in tasks if t.recipe.item_level}
    target = data.y.copy()
    by_source: dict[str, list[int]] = {}
    for i, src in enumerate(data.source_of):
        by_source.setdefault(src, []).append(i)
    for members in by_source.values():
        idx = np.array(members)
        if data.names_of[members[0]] not in item_level:
            target[idx] = np.average(data.y[idx], weights=data.w[idx])
    if not residual:
        return target
    # What the statistics part already says about a query's kind (its level is a by-product of
    # within-task fitting: a long everyday paste looks "hard") is taken out of the target, so
    # the embedding learns to correct it.
    # A benchmark task's rows have one target, so they lose the task's mean statistics score
    # (not each row's, which would teach the embedding to undo the within-task signal).
    coef_s, mean_s, scale_s = stats_fit
    stats_z = ((data.stats - mean_s) / scale_s) @ coef_s
    for members in by_source.values():
        idx = np.array(members)
        if data.names_of[members[0]] not in item_level:
            stats_z[idx] = np.average(stats_z[idx], weights=data.w[idx])
    out: Matrix = target - stats_z
    return out


def _calibration(tasks: Sequence[Task], z_all: Matrix) -> tuple[float, float]:
    """Platt slope and offset on RouterBench's own pair when present: P(GPT-4 correct and Mixtral
    wrong); without a RouterBench file, a percentile-like scale over the training queries."""
    cal_z: list[Matrix] = []
    cal_y: list[Matrix] = []
    cal_g: list[str] = []
    offset = 0
    for t in tasks:
        n = len(t.records)
        if t.recipe.strong == DEFAULT_STRONG and not t.recipe.item_level:
            s, wk = t.recipe.strong, t.recipe.weak
            cal_z.append(z_all[offset : offset + n])
            cal_g.extend(r.source for r in t.records)
            cal_y.append(
                np.array(
                    [
                        float(r.scores[s] > r.scores[resolve_model(wk, models_in(t.records))])
                        for r in t.records
                    ]
                )
            )
        offset += n
    if cal_z:
        return platt(np.concatenate(cal_z), np.concatenate(cal_y), cal_g)
    sd = float(z_all.std() or 1.0)
    return 1.0 / sd, -float(z_all.mean()) / sd


def _gate_doc(gate: tuple[Matrix, float] | None, vectors: Vectors, **extra: float) -> dict[str, Any] | None:
    if gate is None:
        return None
    dims = vectors.vectors.shape[1]
    return {
        "token_value": _round(vectors.vectors @ gate[0][:dims], 5),
        "stat_coef": _round(gate[0][dims:], 6),
        "intercept": _round([gate[1]], 8)[0],
        **extra,
    }


def train(
    tasks: Sequence[Task],
    vectors: Vectors,
    *,
    field_name: str = "question",
    alpha: float = DEFAULT_ALPHA,
    group_weight: Mapping[str, float] | None = None,
    emb_alpha: float = DEFAULT_EMB_ALPHA,
    emb_weight: float = DEFAULT_EMB_WEIGHT,
    residual: bool = True,
    gate_alpha: float = DEFAULT_GATE_ALPHA,
    gate_sharpness: float = DEFAULT_GATE_SHARPNESS,
    hard_boost: float = DEFAULT_HARD_BOOST,
    prior_weight: float = DEFAULT_PRIOR_WEIGHT,
) -> dict[str, Any]:
    """The data document for ``LearnedV2Scorer``, trained on every task given."""
    if not tasks:
        raise ValueError("need at least one training file")
    data = _pool_tasks(tasks, vectors, field_name, group_weight)
    stats_fit = _fit_within_stats(tasks, data, alpha)
    target = _between_task_target(tasks, data, stats_fit, residual)
    coef_e, mean_e, scale_e = _ridge(data.emb, target, data.w, data.group_of, emb_alpha)
    coef_s, mean_s, scale_s = stats_fit
    coef = np.concatenate([emb_weight * coef_e, coef_s])
    mean = np.concatenate([mean_e, mean_s])
    scale = np.concatenate([scale_e, scale_s])
    pooled = np.hstack([data.emb, data.stats])
    a = coef / scale  # raw-feature coefficients
    intercept = -float(a @ mean)
    z = pooled @ a + intercept
    slope, off = _calibration(tasks, z)
    prior, (slope, off) = _with_prior(tasks, data.stats, slope * z + off, (slope, off), prior_weight)
    gate = _train_gate(tasks, pooled, data.ys, gate_alpha, gate_sharpness, "trivial")
    hard = _train_gate(tasks, pooled, data.ys, gate_alpha, gate_sharpness, "hard")
    return _document(tasks, vectors, data.sif, a, intercept, (slope, off), field_name, alpha) | {
        "gate": _gate_doc(gate, vectors),
        "hard_gate": _gate_doc(hard, vectors, boost=hard_boost),
        "prior": prior,
    }


def _with_prior(
    tasks: Sequence[Task], stats_rows: Matrix, logit: Matrix, calibration: tuple[float, float], weight: float
) -> tuple[dict[str, Any] | None, tuple[float, float]]:
    """The ``improved`` prior (``weight`` per standard deviation) added to the calibrated logit, then
    Platt-refitted on the same outcomes: returns the prior's document and the final slope/offset."""
    if weight <= 0:
        return None, calibration
    u = np.array([improved_from_features(list(row)) for row in stats_rows])
    center, sd = float(u.mean()), float(u.std() or 1.0)
    k, b = _calibration(tasks, logit + weight * (u - center) / sd)
    slope, off = calibration
    doc = {"scorer": "improved", "weight": _round([k * weight / sd], 8)[0], "center": _round([center], 8)[0]}
    return doc, (k * slope, k * off + b)


def _document(
    tasks: Sequence[Task],
    vectors: Vectors,
    sif: Matrix,
    a: Matrix,
    intercept: float,
    calibration: tuple[float, float],
    field_name: str,
    alpha: float,
) -> dict[str, Any]:
    """The shipped data document, its numbers rounded so that retraining gives the same bytes."""
    dims = vectors.vectors.shape[1]
    return {
        "format": FORMAT,
        "features": list(FEATURES),
        "vocab": vectors.vocab,
        "token_weight": _round(sif, 4),
        "token_value": _round(vectors.vectors @ a[:dims], 5),
        "stat_coef": _round(a[dims:], 6),
        "intercept": _round([intercept], 8)[0],
        "calibration": {
            "slope": _round([calibration[0]], 8)[0],
            "offset": _round([calibration[1]], 8)[0],
            "meaning": "P(strong strictly better), RouterBench gpt-4-1106-preview vs mixtral-8x7b-chat",
        },
        "trained": {
            "prompt_field": field_name,
            "alpha": alpha,
            "dims": dims,
            "tasks": {
                t.name: {
                    "queries": len(t.records),
                    "premium": list(t.recipe.premium),
                    "cheap": list(t.recipe.cheap),
                }
                for t in tasks
            },
        },
    }


@dataclass(frozen=True, slots=True)
class Fold:
    held_out: str
    trained_on: tuple[str, ...]
    summaries: dict[str, Any]


def held_out_folds(
    tasks: Sequence[Task],
    vectors: Vectors,
    *,
    field_name: str = "question",
    alpha: float = DEFAULT_ALPHA,
    target: float = 0.95,
    compare: Sequence[str] = ("seed", "improved", "learned"),
    evaluate: Sequence[str] | None = None,
    group_weight: Mapping[str, float] | None = None,
    emb_alpha: float = DEFAULT_EMB_ALPHA,
    emb_weight: float = DEFAULT_EMB_WEIGHT,
) -> list[Fold]:
    """Leave each file out in turn (``evaluate``: which ones; default all) and score it with a model
    trained on the others; the file's own recipe pair gives the APGR."""
    folds = []
    others = {name: get_scorer(name) for name in compare}
    for test in tasks:
        if evaluate is not None and test.name not in evaluate:
            continue
        if test.recipe.gates_only:
            continue  # its labels are assumed, not measured
        train_on = [t for t in tasks if t is not test]
        scorer = LearnedV2Scorer(
            train(
                train_on,
                vectors,
                field_name=field_name,
                alpha=alpha,
                group_weight=group_weight,
                emb_alpha=emb_alpha,
                emb_weight=emb_weight,
            )
        )
        data = pair(test.records, test.recipe.strong, test.recipe.weak)
        texts = [r.text(field_name) for r in test.records]
        summaries = {
            name: metrics.summarise(name, metrics.curve([s.score(t) for t in texts], data), target)
            for name, s in others.items()
        }
        summaries["learned-v2"] = metrics.summarise(
            "learned-v2", metrics.curve([scorer.score(t) for t in texts], data), target
        )
        folds.append(Fold(test.name, tuple(t.name for t in train_on), summaries))
    return folds


@dataclass(frozen=True, slots=True)
class DevItem:
    text: str
    hard: bool
    kind: str


DEV_SET = Path(__file__).parent / "data" / "everyday_dev.jsonl"


def load_dev(path: str | Path = DEV_SET) -> list[DevItem]:
    """The everyday development set: ``{"text", "label": "easy"|"hard", "kind"}`` per line."""
    import json

    items = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            items.append(DevItem(str(obj["text"]), obj["label"] == "hard", str(obj.get("kind", ""))))
    return items


def auroc(scores: Sequence[float], hard: Sequence[bool]) -> float:
    """P(score of a hard item > score of an easy one), ties counting half."""
    pos = [s for s, h in zip(scores, hard, strict=True) if h]
    neg = [s for s, h in zip(scores, hard, strict=True) if not h]
    if not pos or not neg:
        raise ValueError("need both hard and easy items")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def sigmoid(t: float) -> float:
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))
