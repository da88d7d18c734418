"""The seed article's heuristic, kept exactly as the baseline every other scorer must beat."""

from __future__ import annotations

from router.classifiers.base import Scorer

_COMPLEX_PATTERNS = ("why", "how", "explain", "compare", "analyze")


def seed_complexity(query: str) -> float:
    score = 0.0
    score += min(len(query) / 1000, 0.3)
    lowered = query.lower()
    if any(p in lowered for p in _COMPLEX_PATTERNS):
        score += 0.2
    if "```" in query or "def " in query or "function" in query:
        score += 0.2
    if " and " in lowered or " then " in lowered:
        score += 0.15
    return min(score, 1.0)


class SeedScorer(Scorer):
    name = "seed"
    kind = "heuristic"

    def score(self, text: str) -> float:
        return seed_complexity(text)
