"""Classify: how hard is this request? The scorer on every request; the LLM judge only in its band.

The scorer is pure and in-process (``router.classifiers``). A score strictly inside
``JUDGE_LOW``..``JUDGE_HIGH`` asks the judge model for one number (``router.pipeline.judge``) in 0..1,
read on the scorer's scale through ``JUDGE_SCALE`` (both calibrated by ``router calibrate``), which may
move the score by at most ``JUDGE_MAX_SHIFT``; a judge that fails, times out or answers anything but a
bare number leaves the scorer's score in place.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from router.classifiers.base import routed
from router.models.config import cheapest_first
from router.pipeline import pricing
from router.pipeline.capabilities import translate
from router.pipeline.judge import ScoreCache, bounded, judge_messages, on_scale, parse_score
from router.upstream.endpoints import endpoint_for
from router.upstream.errors import error_kind

if TYPE_CHECKING:
    from router.classifiers import Scorer
    from router.health import SharedHealth
    from router.models.config import ModelConfig
    from router.pipeline.affinity import EarlierTurn
    from router.pipeline.execute import Deadline
    from router.settings import Settings
    from router.upstream import UpstreamClient

log = logging.getLogger("router")


@dataclass(frozen=True, slots=True)
class Classification:
    complexity: float
    classifier: str  # scorer kind ("heuristic"/"learned"), "llm", "heuristic-fallback" or "pinned"
    scorer: str = ""  # the scorer's registry name (e.g. "learned-v2"): which model of difficulty decided
    judge_model: str | None = None
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    judge_cost_usd: float = 0.0
    judge_usage_estimated: bool = False


# Scorer scores of recent routing texts, by hash: conversation affinity re-scores a conversation's
# earlier turns, which were this instance's turns before (router.pipeline.affinity). Off without affinity.
TURN_SCORES_SIZE = 4096

# One number, deterministically (a reasoning judge gets max_completion_tokens and no temperature).
JUDGE_PARAMS = {"max_tokens": 8, "temperature": 0}


class Classifier:
    def __init__(
        self, settings: Settings, scorer: Scorer, upstream: UpstreamClient, health: SharedHealth
    ) -> None:
        self.settings = settings
        self.scorer = scorer
        self.upstream = upstream
        self.health = health
        self.judge_cache = ScoreCache(settings.JUDGE_CACHE_SIZE)
        self.turn_scores = ScoreCache(TURN_SCORES_SIZE if settings.CONVERSATION_AFFINITY else 0)

    def score(self, text: str) -> Classification:
        """The scorer alone (a pinned model needs no judge)."""
        return Classification(routed(self.scorer.score(text)), "pinned", self.scorer.name)

    def earlier_score(self, turn: EarlierTurn) -> float:
        """The scorer's score of an earlier turn (no judge: a paid call), remembered by the digest of the
        conversation up to it: on the conversation's own instance every earlier turn was scored before,
        so its routing text is not even rebuilt."""
        score = self.turn_scores.get_key(turn.key)
        if score is None:
            score = routed(self.scorer.score(turn.text()))
            self.turn_scores.put_key(turn.key, score)
        return score

    def remember(self, key: bytes, classification: Classification) -> None:
        """Keep this turn's scorer score for the next turn's ``earlier_score`` (a judged score is not
        the scorer's, which every instance can re-derive, so it is left out)."""
        if classification.classifier != "llm":
            self.turn_scores.put_key(key, classification.complexity)

    async def classify(
        self, query: str, models: tuple[ModelConfig, ...], deadline: Deadline | None = None
    ) -> Classification:
        score = routed(self.scorer.score(query))
        s = self.settings
        name = self.scorer.name
        if not s.JUDGE_ENABLED or not (s.JUDGE_LOW <= score <= s.JUDGE_HIGH):
            return Classification(score, self.scorer.kind, name)
        cached = self.judge_cache.get(query)
        if cached is not None:
            return Classification(self._judged(cached, score), "llm", name)
        judge = self._judge_model(models)
        if judge is None or not self.health.try_acquire(judge.name):
            return Classification(score, "heuristic-fallback", name)
        timeout = s.CLASSIFIER_TIMEOUT_S
        if deadline is not None:
            timeout = min(timeout, max(deadline.remaining() / 2, 0.001))
        return await self._ask_judge(query, score, judge, timeout)

    async def _ask_judge(
        self, query: str, score: float, judge: ModelConfig, timeout_s: float
    ) -> Classification:
        try:
            reply = await asyncio.wait_for(
                self.upstream.chat(
                    endpoint_for(judge, self.settings),
                    judge.deployment,
                    judge_messages(query),
                    timeout_s=timeout_s,
                    **translate(JUDGE_PARAMS, judge, pinned=False).body,
                ),
                timeout=timeout_s,
            )
        except Exception as exc:  # timeout, HTTP error, anything: the heuristic still answers
            code, _, retry_after = error_kind(exc)
            if code != "content_filter":
                self.health.on_failure(judge.name, code, retry_after)
            log.warning("judge failed (%s); using the heuristic score", code)
            return Classification(score, "heuristic-fallback", self.scorer.name, judge_model=judge.name)
        self.health.on_success(judge.name)
        parsed = parse_score(reply.text)
        if parsed is None:
            log.warning("judge reply was not a bare number in [0, 1]; using the heuristic score")
        else:
            parsed = routed(parsed)
            self.judge_cache.put(query, parsed)
        return Classification(
            complexity=score if parsed is None else self._judged(parsed, score),
            classifier="heuristic-fallback" if parsed is None else "llm",
            scorer=self.scorer.name,
            judge_model=judge.name,
            judge_prompt_tokens=reply.prompt_tokens,
            judge_completion_tokens=reply.completion_tokens,
            judge_cost_usd=pricing.call_cost(
                judge, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens
            ),
            judge_usage_estimated=reply.usage_estimated,
        )

    def _judged(self, answer: float, score: float) -> float:
        """The judge's answer (0..1, as cached) on the scorer's scale, within the shift allowed."""
        s = self.settings
        return routed(bounded(on_scale(answer, s.JUDGE_SCALE), score, s.JUDGE_MAX_SHIFT))

    def judge_model(self, models: tuple[ModelConfig, ...]) -> ModelConfig | None:
        """The model the judge would ask (its worst case is part of a budget reservation)."""
        return self._judge_model(models) if self.settings.JUDGE_ENABLED else None

    def _judge_model(self, models: tuple[ModelConfig, ...]) -> ModelConfig | None:
        name = self.settings.CLASSIFIER_MODEL
        if name is None:
            return min(models, key=cheapest_first)
        for m in models:
            if m.name == name:
                return m
        log.warning("CLASSIFIER_MODEL %r is not an enabled model", name)
        return None
