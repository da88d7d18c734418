"""Training the learned scorer (dev-only: needs numpy; the runtime scorer does not).

Design choices, each for generalisation to traffic we have not seen:

* Label: how much more the premium-priced models get right than the cheap ones on a query
  (mean quality of models priced nearer, in log, to ``strong`` than to ``weak``, minus the mean of
  the rest). With only two models in a file it is simply strong minus weak. Averaging over model
  families is much less noisy than one pair and says "this query needs an expensive model".
* Task fixed effects: features and labels are centred within each training file, so the model
  learns what makes a query harder *than others of its kind*, not which benchmark it came from.
* Closed-form ridge regression on standardised features: deterministic, no random seed involved,
  and coefficients are rounded so the shipped file is byte-for-byte reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classifiers import get_scorer
from router.classifiers.learned import FORMAT, LearnedScorer
from router.classifiers.textstats import FEATURES, features
from router.evaluation import metrics
from router.evaluation.data import Record, models_in, pair, resolve_model

DEFAULT_ALPHA = 30.0
Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Task:
    """One training file (one kind of query): its records, under a short name."""

    name: str
    records: Sequence[Record]


def design_matrix(records: Sequence[Record], field: str) -> Matrix:
    """The runtime featuriser applied to every record: train and serve see identical features."""
    return np.array([features(r.text(field)) for r in records], dtype=np.float64)


def mean_cost(records: Sequence[Record], model: str) -> float:
    return sum(r.cost[model] for r in records) / len(records)


def premium_split(records: Sequence[Record], strong: str, weak: str) -> tuple[list[str], list[str]]:
    """(premium, cheap) models: premium if its mean cost is nearer, in log, to strong's than weak's."""
    models = models_in(records)
    s, w = resolve_model(strong, models), resolve_model(weak, models)
    cs, cw = mean_cost(records, s), mean_cost(records, w)
    if cs <= 0 or cw <= 0 or cs <= cw:
        return [s], [w]
    mid = math.sqrt(cs * cw)
    premium = [m for m in models if m == s or (m != w and mean_cost(records, m) >= mid)]
    cheap = [m for m in models if m not in premium]
    return premium, cheap


def labels(records: Sequence[Record], premium: Sequence[str], cheap: Sequence[str]) -> Matrix:
    """Per query: mean quality of the premium models minus that of the cheap ones."""
    return np.array(
        [
            sum(r.scores[m] for m in premium) / len(premium) - sum(r.scores[m] for m in cheap) / len(cheap)
            for r in records
        ],
        dtype=np.float64,
    )


def fit_ridge(xs: Sequence[Matrix], ys: Sequence[Matrix], alpha: float) -> dict[str, list[float]]:
    """Ridge on within-task-centred, standardised features; returns mean/scale/coef lists."""
    pooled = np.vstack(xs)
    mean = pooled.mean(axis=0)
    scale = pooled.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant feature gets weight 0 after centring anyway
    xc = np.vstack([(x - x.mean(axis=0)) / scale for x in xs])
    yc = np.concatenate([y - y.mean() for y in ys])
    gram = xc.T @ xc + alpha * np.eye(xc.shape[1])
    coef = np.linalg.solve(gram, xc.T @ yc)
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": coef.tolist()}


def _round(values: Sequence[float], digits: int = 6) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in values]


def train(
    tasks: Sequence[Task],
    *,
    strong: str,
    weak: str,
    field: str = "question",
    alpha: float = DEFAULT_ALPHA,
) -> dict[str, Any]:
    """The weights document for ``LearnedScorer``, trained on every task given."""
    if not tasks:
        raise ValueError("need at least one training file")
    xs, ys, splits = [], [], {}
    for task in tasks:
        premium, cheap = premium_split(task.records, strong, weak)
        xs.append(design_matrix(task.records, field))
        ys.append(labels(task.records, premium, cheap))
        splits[task.name] = {"premium": premium, "cheap": cheap, "queries": len(task.records)}
    fit = fit_ridge(xs, ys, alpha)
    mean, scale, coef = (_round(fit[k]) for k in ("mean", "scale", "coef"))
    # Standardise the output over the training queries, so the runtime score is a percentile.
    std = np.array(scale)
    z = ((np.vstack(xs) - np.array(mean)) / std) @ np.array(coef)
    return {
        "format": FORMAT,
        "features": list(FEATURES),
        "mean": mean,
        "scale": scale,
        "coef": coef,
        "score_mean": _round([float(z.mean())])[0],
        "score_sd": _round([float(z.std()) or 1.0])[0],
        "trained": {
            "prompt_field": field,
            "alpha": alpha,
            "strong": strong,
            "weak": weak,
            "label": "mean quality of premium-priced models minus cheap ones, centred per task",
            "tasks": splits,
        },
    }


@dataclass(frozen=True, slots=True)
class Fold:
    """One leave-one-task-out result: trained on every other task, measured on ``held_out``."""

    held_out: str
    trained_on: tuple[str, ...]
    summaries: dict[str, Any]  # scorer name -> metrics.Summary on the held-out task


def held_out_folds(
    tasks: Sequence[Task],
    *,
    strong: str,
    weak: str,
    field: str = "question",
    alpha: float = DEFAULT_ALPHA,
    target: float = 0.95,
    compare: Sequence[str] = ("seed", "improved"),
) -> list[Fold]:
    """Leave each task out in turn: no number here comes from data its model was trained on."""
    if len(tasks) < 2:
        raise ValueError("held-out evaluation needs at least two training files")
    folds = []
    for test in tasks:
        train_on = [t for t in tasks if t is not test]
        scorer = LearnedScorer(train(train_on, strong=strong, weak=weak, field=field, alpha=alpha))
        data = pair(test.records, strong, weak)
        texts = [r.text(field) for r in test.records]
        summaries = {}
        for name in compare:
            other = get_scorer(name)
            summaries[name] = metrics.summarise(
                name, metrics.curve([other.score(t) for t in texts], data), target
            )
        curve = metrics.curve([scorer.score(t) for t in texts], data)
        summaries["learned"] = metrics.summarise("learned", curve, target)
        folds.append(Fold(test.name, tuple(t.name for t in train_on), summaries))
    return folds
