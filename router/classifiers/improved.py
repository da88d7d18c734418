"""A hand-built heuristic: the seed idea (harder queries are longer and ask for reasoning or code),
made graded and broader with generic signals of difficulty for a weaker model.

No weights were fitted: each signal adds a capped share of the score, so no single one (a long
paste, say) can push a query to the top on its own. It keeps the seed's cross-task priors (code,
maths and "explain/compare" requests go up) and adds within-task cues the seed misses.
"""

from __future__ import annotations

import math

from router.classifiers.base import Scorer
from router.classifiers.textstats import FEATURES, features

_I = {name: i for i, name in enumerate(FEATURES)}

# (feature, value at which its share is full, share of the score). Shares sum to 1.
_SIGNALS: tuple[tuple[str, float, float], ...] = (
    ("stem_words", math.log1p(250), 0.12),  # a longer problem statement has more to get right
    ("sentences", math.log1p(8), 0.08),  # more steps or facts to combine
    ("commas_per_sentence", 2.0, 0.08),  # clause density: nested conditions
    ("subordinators", math.log1p(4), 0.05),  # because/although/unless: logical structure
    ("long_word_frac", 2.0, 0.12),  # rare, technical vocabulary (long words are rarer)
    ("numbers", math.log1p(6), 0.09),  # quantities to reason about
    ("math_ops", math.log1p(4), 0.09),  # formulas
    ("code", math.log1p(4), 0.13),  # code to write or read
    ("reasoning", math.log1p(3), 0.10),  # explicit asks to explain, prove, compute
    ("negations", math.log1p(3), 0.05),  # "which is NOT", "except": easy to misread
    ("proper_nouns", math.log1p(5), 0.04),  # entities to keep track of
    ("option_overlap", 1.0, 0.05),  # answer options that share words are hard to tell apart
)


def improved_complexity(text: str) -> float:
    return from_features(features(text))


def from_features(f: list[float]) -> float:
    """The score from an already computed ``features`` vector (``learned-v2`` reuses its own)."""
    score = 0.0
    for name, full, share in _SIGNALS:
        score += share * min(1.0, f[_I[name]] / full)
    return min(max(score, 0.0), 1.0)


class ImprovedScorer(Scorer):
    name = "improved"
    kind = "heuristic"

    def score(self, text: str) -> float:
        return improved_complexity(text)
