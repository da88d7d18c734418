"""Plan: classify the request and route it, giving the model to call and the fallback chain after it.

The one planning step of every endpoint (``/api/route``, ``/api/decide``, ``/api/v1/chat/completions``):
the catalogue's enabled models → classify → ``choose`` → ``fallback_chain``. A pinned model skips the
judge and the chain; a conversation too large for a model's context window leaves that model out. A
follow-up turn of a conversation stays on the conversation's model when that can take it
(``router.pipeline.affinity``); ``Plan.route_reason`` says what decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from router.callers.identity import ANONYMOUS, Caller
from router.errors import RouterError
from router.pipeline.affinity import EarlierTurn, conversation_model, keep
from router.pipeline.capabilities import Needs, capable, missing
from router.pipeline.route import Constraints, Decision, choose, fallback_chain

if TYPE_CHECKING:
    from router.callers.ledger import Reservation
    from router.models.config import ModelConfig
    from router.pipeline.classify import Classification, Classifier
    from router.pipeline.execute import Deadline


@dataclass(frozen=True, slots=True)
class Ask:
    """What a request may use: its budget reservation and rate-limit charge (router.pipeline.admission)."""

    prompt_tokens: int = 0  # an upper bound: the prompt's UTF-8 bytes (+ per message and image)
    output_tokens: int | None = None  # the request's output limit; None: the model's cap
    choices: int = 1
    rate_tokens: int = 0  # charged to tokens-per-minute at admission: prompt estimate + explicit limit


@dataclass(frozen=True, slots=True)
class PlanRequest:
    text: str  # what the classifier reads: the query, or the conversation's routing text
    constraints: Constraints
    allow_outside_constraints: bool = False
    pinned: str | None = None  # a model the caller named instead of "auto"
    context_tokens: int = 0  # tokens the request needs (prompt + output): smaller windows are left out
    needs: Needs = field(
        default_factory=Needs
    )  # capabilities the request needs (tools, images, a JSON schema)
    caller: Caller = ANONYMOUS  # who sent it: attribution in the record, and whose budget it draws on
    # Conversation affinity (router.pipeline.affinity): the earlier user turns, the model an
    # x-router-session hint names, and this turn's digest (its score is remembered for the next turn).
    # Empty/None: no affinity (a first turn, or it is off).
    earlier: tuple[EarlierTurn, ...] = ()
    session_model: str | None = None
    turn_key: bytes | None = None
    ask: Ask = field(default_factory=Ask)  # what it may cost (admission)


@dataclass(frozen=True, slots=True)
class Plan:
    decision: Decision
    chain: list[ModelConfig]  # the decision first, then the fallbacks in order
    models: tuple[ModelConfig, ...]  # every enabled model: larger-context retries and the baseline
    classification: Classification
    constraints: Constraints
    allow_outside_constraints: bool
    routable: tuple[ModelConfig, ...] = ()  # the models execute may retry on (those with the capabilities)
    caller: Caller = ANONYMOUS
    route_reason: str = "classified"  # why the first model: classified, affinity, escalated or pinned
    reservation: Reservation | None = None  # the budget held at admission, settled by the cost record
    budget: str | None = None  # "downgraded": over budget, the cheapest model within it answers


# The request field each capability comes from, named in a 400.
_PARAM_OF = {"tools": "tools", "vision": "messages", "json_schema": "response_format"}


async def make_plan(
    request: PlanRequest, models: tuple[ModelConfig, ...], classifier: Classifier, deadline: Deadline
) -> Plan:
    allow = request.allow_outside_constraints
    if request.pinned is not None:
        pinned = next((m for m in models if m.name == request.pinned), None)
        if pinned is None:
            raise RouterError(f"The model '{request.pinned}' does not exist", code="model_not_found",
                              status=404, param="model")  # fmt: skip
        lacking = missing(pinned, request.needs)
        if lacking:
            message = f"model {pinned.name!r} does not support {lacking[0]}, which the request uses"
            raise RouterError(message, code="capability_unsupported", status=400, param=_PARAM_OF[lacking[0]])
        decision = Decision(pinned, (pinned,), "pinned by the caller")
        return Plan(decision, [pinned], models, classifier.score(request.text), request.constraints, allow,
                    (pinned,), request.caller, "pinned")  # fmt: skip
    routable = capable(models, request.needs)
    needs = request.needs.names()
    if not routable:
        raise RouterError(f"no enabled model supports {' and '.join(needs)}, which the request uses",
                          code="capability_unsupported", status=400, param=_PARAM_OF[needs[0]])  # fmt: skip
    needed = request.context_tokens
    fitting = tuple(m for m in routable if m.context_window is None or m.context_window >= needed)
    if not fitting:
        raise RouterError(
            f"the conversation needs about {needed} tokens; no model's context window is that large",
            code="context_length_exceeded", status=400, param="messages",
        )  # fmt: skip
    classification = await classifier.classify(request.text, fitting, deadline)
    if request.turn_key is not None:
        classifier.remember(request.turn_key, classification)
    complexity = classification.complexity
    classified = choose(fitting, complexity, request.constraints)
    decision, why = _with_affinity(request, fitting, classifier, classified, complexity)
    if needs:
        decision = Decision(decision.model, decision.candidates,
                            f"{decision.reason}; only models that support {' and '.join(needs)}")  # fmt: skip
    chain = fallback_chain(fitting, decision, complexity, request.constraints, allow)
    return Plan(decision, chain, models, classification, request.constraints, allow, routable, request.caller,
                why)  # fmt: skip


def _with_affinity(
    request: PlanRequest,
    fitting: tuple[ModelConfig, ...],
    classifier: Classifier,
    decision: Decision,
    complexity: float,
) -> tuple[Decision, str]:
    """The decision kept on the conversation's model when it can take the turn (router.pipeline.affinity):
    each earlier turn re-scored by the scorer alone (the judge is a paid call), no state read."""
    if not request.earlier and request.session_model is None:
        return decision, "classified"
    earlier = [classifier.earlier_score(turn) for turn in request.earlier]
    held = conversation_model(fitting, earlier, request.constraints, request.session_model)
    return keep(decision, complexity, held)


def downgraded_plan(request: PlanRequest, model: ModelConfig, models: tuple[ModelConfig, ...],
                    classifier: Classifier) -> Plan:  # fmt: skip
    """Over budget with ``on_budget: downgrade``: ``model`` (the cheapest whose worst case fits) alone,
    no judge and no fallbacks, so the request cannot cost more than was reserved."""
    decision = Decision(model, (model,), "downgraded: over budget, the cheapest model within the limits")
    score = classifier.score(request.text)
    classification = replace(score, classifier="downgraded")
    return Plan(decision, [model], models, classification, request.constraints,
                request.allow_outside_constraints, (model,), request.caller, route_reason="downgraded",
                budget="downgraded")  # fmt: skip
