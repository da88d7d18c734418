"""The scorer interface: text in, complexity 0..1 out (1 = needs the most capable model)."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Scorer(ABC):
    """A synchronous, pure complexity scorer; cheap enough to run on every request.

    ``kind`` is what the API reports as ``classifier`` when this scorer's score is final
    (``"heuristic"`` for hand-written rules, ``"learned"`` for trained models).
    """

    name: str = ""
    kind: str = "heuristic"

    @abstractmethod
    def score(self, text: str) -> float:
        """Complexity of ``text`` in [0, 1]."""
