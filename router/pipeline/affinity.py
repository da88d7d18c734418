"""Conversation affinity: a follow-up turn stays on the model that answered the conversation so far, so
its prompt cache keeps paying, and moves only up (escalates) when the new turn needs more. Pure.

Why it is derived from the conversation, not looked up: the next turn may land on any Function
instance, and a shared store (Table, Redis) would put a read on every turn's path and a write after it.
The caller sends the whole conversation with every turn and the scorer is deterministic and in-process
(~70 µs for ``learned-v2``), so any instance can re-score each earlier user turn (the conversation up to
it, as it was routed then) and know, with no state, where each went: the most capable of those models
is the one that answered last (affinity never moves down, so the latest model is the most capable).
Candidates are today's ``fitting`` models (enabled, capable of what the turn needs, large enough a
window), so a model since disabled or unable to take the turn is never held.

What re-scoring cannot see, the judge (a paid call, not repeated) or a fallback, the ``x-router-session``
hint carries: the router returns it with every chat answer, naming the model that actually answered.
It is an untrusted hint, not a credential (so there is no secret to configure): it counts only when it
names a model that could take the turn anyway (one of the turn's candidates: enabled, capable, fits,
within the caller's limits, ``max_complexity`` at least the turn's complexity), so a forged value can
neither route below the classifier's choice nor outside the caller's limits.

``route_reason`` (in the cost record, ``x-router-route-reason`` and ``/api/decide``):

- ``classified``: the classifier's choice (a first turn, affinity off, or the conversation's model is
  the classifier's choice anyway, or is outside this turn's limits);
- ``affinity``: the conversation's model, kept instead of the classifier's (cheaper) choice;
- ``escalated``: the conversation's model cannot take this turn; the classifier's more capable choice;
- ``pinned``: the caller named the model;
- ``fallback``: the planned model failed and another one answered (set from the outcome);
- ``downgraded``: over budget with ``on_budget: downgrade``, the cheapest model within it
  (``router.pipeline.plan.downgraded_plan``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router.pipeline.route import Constraints, Decision, choose, most_capable

if TYPE_CHECKING:
    from router.models.config import ModelConfig

ROUTE_REASONS = ("classified", "affinity", "escalated", "pinned", "fallback")


@dataclass(frozen=True, slots=True)
class EarlierTurn:
    """One earlier user turn of a conversation."""

    key: bytes  # a digest of the conversation up to and including it: what its score is remembered by
    text: Callable[[], str]  # its routing text, as the classifier read it then (built only when needed)


def conversation_model(
    models: Sequence[ModelConfig],
    earlier: Sequence[float],
    constraints: Constraints,
    hinted: str | None = None,
) -> ModelConfig | None:
    """The model the conversation so far was answered by: the most capable of where each earlier turn's
    complexity routes among ``models`` and, when it is one of them, the ``hinted`` model. The hardest
    earlier turn decides: the cheapest model that takes a harder query is never less capable (it also
    took the easier one, and the easier one's pick was no dearer), so one ``choose`` is enough."""
    enabled = [m for m in models if m.enabled]
    if not enabled:
        return None
    held = [choose(enabled, max(earlier), constraints).model] if earlier else []
    held += [m for m in enabled if m.name == hinted]
    return most_capable(held) if held else None


def keep(decision: Decision, complexity: float, held: ModelConfig | None) -> tuple[Decision, str]:
    """The turn's decision with the conversation's model ``held`` applied, and its route reason."""
    if held is None or held.name == decision.model.name:
        return decision, "classified"
    if any(m.name == held.name for m in decision.candidates):
        reason = (
            f"affinity: the conversation is on {held.name}, which can take complexity {complexity:.3f}"
            f" within the constraints; kept for its prompt cache (the classifier's choice: "
            f"{decision.model.name})"
        )
        return Decision(held, decision.candidates, reason), "affinity"
    if held.max_complexity < complexity:
        reason = (
            f"escalated: the conversation was on {held.name} (max_complexity {held.max_complexity}), "
            f"this turn needs {complexity:.3f}; {decision.reason}"
        )
        return Decision(decision.model, decision.candidates, reason), "escalated"
    reason = f"{decision.reason}; the conversation's model {held.name} is outside the constraints"
    return Decision(decision.model, decision.candidates, reason), "classified"


def route_reason(planned: str, first: str, answered: str) -> str:
    """What the record says: the plan's reason, or ``fallback`` when another model than planned answered."""
    return planned if answered == first else "fallback"
