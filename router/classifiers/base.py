"""The scorer interface: text in, complexity 0..1 out (1 = needs the most capable model)."""

from __future__ import annotations

from abc import ABC, abstractmethod

ROUTED_DECIMALS = 4


def routed(score: float) -> float:
    """The score as the router reads it: reported, recorded and routed on, and what ``router
    calibrate`` places its cuts and judge band between (a cut between two 6-decimal scores that
    round alike would otherwise split them one way in calibration and the other in routing)."""
    return round(score, ROUTED_DECIMALS)


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
