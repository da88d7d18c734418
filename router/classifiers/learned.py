"""The learned scorer: a linear model over generic text statistics, trained offline.

Inference is a 23-term dot product in pure Python (no numpy, no scikit-learn), so cold start and
package size stay small. The weights file is written by ``python -m router classifier train``.
The output is a percentile: ``Φ(z)`` of the standardised linear score, so 0.7 means "harder than
about 70% of the training queries" and thresholds read the same way across retrainings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from router.classifiers.base import Scorer
from router.classifiers.textstats import FEATURES, features
from router.errors import WeightsError

DEFAULT_WEIGHTS = Path(__file__).parent / "data" / "learned.json"
FORMAT = 1


def check_weights(raw: Mapping[str, Any]) -> None:
    if raw.get("format") != FORMAT:
        raise WeightsError(f"weights format {raw.get('format')!r}, expected {FORMAT}")
    if list(raw.get("features", ())) != list(FEATURES):
        raise WeightsError("weights were trained on a different feature set; retrain them")
    n = len(FEATURES)
    for key in ("mean", "scale", "coef"):
        values = raw.get(key)
        if not isinstance(values, list) or len(values) != n:
            raise WeightsError(f"weights field {key!r} must be a list of {n} numbers")
    if not float(raw.get("score_sd", 0)) > 0:
        raise WeightsError("weights field 'score_sd' must be > 0")


def fold(raw: Mapping[str, Any]) -> tuple[tuple[float, ...], float]:
    """Fold standardisation into the coefficients: z = sum(a_j * x_j) + b."""
    check_weights(raw)
    sd = float(raw["score_sd"])
    a = [float(c) / float(s) / sd for c, s in zip(raw["coef"], raw["scale"], strict=True)]
    b = -(sum(aj * float(m) for aj, m in zip(a, raw["mean"], strict=True)) + float(raw["score_mean"]) / sd)
    return tuple(a), b


def load_weights(path: str | Path = DEFAULT_WEIGHTS) -> dict[str, Any]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    check_weights(raw)
    return raw


def linear_score(a: Sequence[float], b: float, x: Sequence[float]) -> float:
    return sum(map(float.__mul__, a, x), b)


class LearnedScorer(Scorer):
    name = "learned"
    kind = "learned"

    def __init__(self, weights: str | Path | Mapping[str, Any] = DEFAULT_WEIGHTS) -> None:
        raw = weights if isinstance(weights, Mapping) else load_weights(weights)
        self._a, self._b = fold(raw)
        trained = raw.get("trained", {})
        files = trained.get("files", {}) if isinstance(trained, Mapping) else {}
        # sha256 prefixes of the training files, so an evaluation can flag in-sample numbers.
        self.trained_on: dict[str, str] = {str(k): str(v) for k, v in files.items()}

    def z(self, text: str) -> float:
        """Standardised linear score (0 = an average training query)."""
        return linear_score(self._a, self._b, features(text))

    def score(self, text: str) -> float:
        return 0.5 * (1.0 + math.erf(self.z(text) / math.sqrt(2.0)))
