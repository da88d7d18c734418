"""From samples to data and thresholds: the evaluation JSONL export, and ``max_complexity`` per model for a
target win-or-tie rate. Pure functions of the stored sample entities.

Export: one routing-data record per judged sample that has its text (``QUALITY_STORE_TEXT=true``):
``scores`` gives the routed model 1 / 0.5 / 0 for win / tie / loss and the baseline the complement, and
``cost`` the two calls' USD, so ``router eval``, ``router calibrate`` and ``router classifier train`` read
a team's own traffic in the format of ``shared/routing-data``.

Thresholds: a model's samples only say how it did on the queries it was given (complexity up to its
current ``max_complexity``). So a threshold is only ever *lowered*, to the highest sample complexity at
which the model's win-or-tie rate over every sample at or below it still meets the target; a model that
meets the target over all its samples keeps its threshold (nothing says it would do as well on harder
queries), and one that meets it nowhere is lowered below its easiest sample. The most capable model is
the baseline and is not moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.models.config import ModelConfig, cheapest_first
from router.pipeline.route import most_capable
from router.quality.verdict import wilson

SCORE = {"win": 1.0, "tie": 0.5, "loss": 0.0}


def export_records(entities: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Routing-data records for the judged samples with text (others cannot be evaluated)."""
    out = []
    for e in entities:
        score = SCORE.get(str(e.get("verdict")))
        prompt = e.get("prompt")
        routed, baseline = str(e.get("routed_model") or ""), str(e.get("baseline_model") or "")
        if score is None or not isinstance(prompt, str) or not prompt or not routed or routed == baseline:
            continue
        out.append({
            "id": f"{e.get('PartitionKey')}/{e.get('RowKey')}", "source": f"quality:{e.get('api', '')}",
            "prompt": prompt, "question": prompt,
            "scores": {routed: score, baseline: 1.0 - score},
            "cost": {routed: float(e.get("routed_cost_usd") or 0.0),
                     baseline: float(e.get("shadow_usd") or 0.0)},
            "complexity": float(e.get("complexity") or 0.0), "verdict": e.get("verdict"),
            "request_id": e.get("request_id"),
        })  # fmt: skip
    return out


@dataclass(frozen=True, slots=True)
class Threshold:
    name: str
    old: float
    new: float
    samples: int  # judged samples routed to this model
    rate: float | None  # win-or-tie rate over all of them
    kept: int  # samples at or below the new threshold
    kept_rate: float | None  # win-or-tie rate over those
    ci95: tuple[float, float] | None  # Wilson interval of kept_rate

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "max_complexity": {"old": self.old, "new": self.new},
                "samples": self.samples, "win_or_tie_rate": self.rate, "kept_samples": self.kept,
                "kept_win_or_tie_rate": self.kept_rate,
                "kept_ci95": list(self.ci95) if self.ci95 else None}  # fmt: skip


def _lowered(points: Sequence[tuple[float, bool]], old: float, target: float) -> tuple[float, int, int]:
    """(threshold, kept samples, kept good) for one model's (complexity, good) points, sorted."""
    good = sum(g for _, g in points)
    if good >= target * len(points):
        return old, len(points), good
    best: tuple[float, int, int] | None = None
    seen = hits = 0
    for i, (c, g) in enumerate(points):
        seen, hits = seen + 1, hits + g
        last_of_value = i + 1 == len(points) or points[i + 1][0] > c
        if last_of_value and hits >= target * seen:
            best = (c, seen, hits)
    if best is None:
        below = points[0][0] - 1e-6 if points else 0.0
        return round(max(0.0, below), 6), 0, 0
    return round(best[0], 6), best[1], best[2]


def thresholds(
    models: Sequence[ModelConfig], entities: Iterable[Mapping[str, Any]], target: float
) -> list[Threshold]:
    """New ``max_complexity`` for every enabled model but the most capable (cheapest first)."""
    enabled = [m for m in models if m.enabled]
    if not enabled:
        return []
    top = most_capable(enabled)
    points: dict[str, list[tuple[float, bool]]] = {}
    for e in entities:
        verdict = e.get("verdict")
        if verdict in SCORE:
            good = verdict != "loss"
            points.setdefault(str(e.get("routed_model")), []).append(
                (float(e.get("complexity") or 0.0), good)
            )
    out = []
    for m in sorted(enabled, key=cheapest_first):
        if m.name == top.name:
            continue
        mine = sorted(points.get(m.name, []))
        new, kept, hits = _lowered(mine, m.max_complexity, target) if mine else (m.max_complexity, 0, 0)
        good = sum(g for _, g in mine)
        out.append(Threshold(m.name, m.max_complexity, new, len(mine), good / len(mine) if mine else None,
                             kept, hits / kept if kept else None, wilson(hits, kept)))  # fmt: skip
    return out
