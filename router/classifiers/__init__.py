"""Name → scorer registry (the ``CLASSIFIER`` setting picks one)."""

from __future__ import annotations

from collections.abc import Callable

from router.classifiers.base import Scorer
from router.classifiers.seed import SeedScorer

# Factories, so a scorer with data files (the learned one) loads only when selected.
_REGISTRY: dict[str, Callable[[], Scorer]] = {
    "seed": SeedScorer,
    "heuristic": SeedScorer,  # alias: the core API calls the seed rule "heuristic"
    # Imported on first use, so an unselected scorer costs nothing at cold start.
    "improved": lambda: __import__("router.classifiers.improved", fromlist=["_"]).ImprovedScorer(),
    "learned": lambda: __import__("router.classifiers.learned", fromlist=["_"]).LearnedScorer(),
    "learned-v2": lambda: __import__("router.classifiers.learned_v2", fromlist=["_"]).LearnedV2Scorer(),
}


def register(name: str, factory: Callable[[], Scorer]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    return sorted(_REGISTRY)


def get_scorer(name: str) -> Scorer:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown classifier {name!r}; choose one of {', '.join(names())}") from None
    return factory()


__all__ = ["Scorer", "get_scorer", "names", "register"]
