"""``learned-v2``: semantic token signal from a distilled sentence encoder plus text statistics.

The model is linear over (a) the weighted mean of static token vectors distilled from
all-MiniLM-L6-v2 (model2vec-style, ``router/evaluation/distil.py``) and (b) the 23 text statistics
of ``textstats``. A linear head over a mean of vectors is a mean of per-token scalars, so training
folds the vectors into one number per vocabulary token: at run time a query costs a WordPiece
tokenisation (cached per word) and a weighted average, in pure Python, with no numpy and no model.

Three such linear heads share the features: the difficulty model ``p`` (Platt-calibrated on
RouterBench: the estimated probability that a GPT-4-class model answers better than a
Mixtral-class one) and two logistic gates on the kind of request, trivial and clearly hard, read
together as one three-way choice (``kind_shares``: a softmax of their logits and 0 for "neither"):

    score = (P(neither) + P(hard kind)) * p + P(hard kind) * (1 - p) * boost

so a greeting scores near 0 and a proof about ``boost`` or more, while inside a benchmark (both gates
near 0) the order is ``p``'s. With one gate silent this is ``(1 - P(trivial)) * p`` or
``p + (1 - p) * boost * P(hard kind)``. Both can fire on a short imperative, which is as plain as a
trivial request ("Design a distributed consensus protocol.", but also "Write a packing list."), and
there the more confident gate (the larger logit) decides: both probabilities are 1.0 to many
decimals, their logits are not. ``p``'s logit also carries a
fixed share of the hand-built ``improved`` score (its ``prior``): a prior with no fitted weights that
orders problems of one kind by how much there is to get right (length, quantities, formulas), where
the fitted heads see mostly topic. The data file is written by ``python -m router classifier train
--scorer learned-v2``; the README says what the numbers mean.
"""

from __future__ import annotations

import json
import math
import operator
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from router.classifiers.base import Scorer
from router.classifiers.improved import from_features as improved_from_features
from router.classifiers.textstats import FEATURES, features

DEFAULT_DATA = Path(__file__).parent / "data" / "learned_v2.json"
FORMAT = 1
_MAX_WORD = 100  # BERT's limit: a longer "word" is [UNK]
# Only the start of a long request is tokenised (about 700 words, BERT's own 512-token window): the
# kind of request shows there, and a hostile megabyte of junk words costs milliseconds, not seconds.
# The text statistics still see the whole text.
MAX_CHARS = 4096
_CACHE_LIMIT = 50_000

# BERT's basic tokeniser: words, and every punctuation or symbol character on its own.
_SPLIT = re.compile(r"[^\W_]+|[^\s\w]|_", re.UNICODE)
_CJK = re.compile(
    "([\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff\U00020000-\U0002a6df\U0002a700-\U0002ceaf\U0002f800-\U0002fa1f])"
)  # BERT's "Chinese character" blocks (not kana or hangul)


class WeightsError(ValueError):
    """The data file does not match this version's format or feature set."""


def normalise(text: str) -> str:
    """Lower-case, accents stripped, CJK characters split apart: BERT-uncased's normalisation."""
    text = text.lower()
    if not text.isascii():
        text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        text = _CJK.sub(r" \1 ", text)
    return text


def longest_piece(vocab: Mapping[str, int]) -> int:
    """Length of the longest vocabulary piece (without "##"): no longer match is worth trying."""
    return max(len(t) - 2 if t.startswith("##") else len(t) for t in vocab)


def wordpiece(word: str, vocab: Mapping[str, int], unk: int, longest: int = _MAX_WORD) -> list[int]:
    """Greedy longest-match-first WordPiece, as BERT does; ``[unk]`` when a piece is missing.
    Matches longer than ``longest`` are not tried: same result, linear instead of quadratic."""
    if len(word) > _MAX_WORD:
        return [unk]
    ids: list[int] = []
    start, n = 0, len(word)
    while start < n:
        end = min(n, start + longest)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            tid = vocab.get(piece)
            if tid is not None:
                ids.append(tid)
                break
            end -= 1
        else:
            return [unk]
        start = end
    return ids


def words(text: str) -> list[str]:
    """The basic tokeniser's words of the first ``MAX_CHARS`` of ``text`` (then WordPiece)."""
    return _SPLIT.findall(normalise(text[:MAX_CHARS]))


def token_ids(text: str, vocab: Mapping[str, int], longest: int = _MAX_WORD) -> list[int]:
    """Every WordPiece token id of ``text``: what training pools over (run time caches per word)."""
    unk = vocab["[UNK]"]
    return [tid for word in words(text) for tid in wordpiece(word, vocab, unk, longest)]


def check(raw: Mapping[str, Any]) -> None:
    if raw.get("format") != FORMAT:
        raise WeightsError(f"learned-v2 data format {raw.get('format')!r}, expected {FORMAT}")
    if list(raw.get("features", ())) != list(FEATURES):
        raise WeightsError("learned-v2 data was trained on a different feature set; retrain it")
    vocab, weight, value = raw.get("vocab"), raw.get("token_weight"), raw.get("token_value")
    if not (isinstance(vocab, list) and isinstance(weight, list) and isinstance(value, list)):
        raise WeightsError("learned-v2 data needs lists 'vocab', 'token_weight', 'token_value'")
    if not len(vocab) == len(weight) == len(value) > 0:
        raise WeightsError("learned-v2 data: 'vocab', 'token_weight', 'token_value' differ in length")
    if len(raw.get("stat_coef", ())) != len(FEATURES):
        raise WeightsError(f"learned-v2 data: 'stat_coef' must have {len(FEATURES)} numbers")
    prior = raw.get("prior")
    if prior is not None and not (
        isinstance(prior, Mapping)
        and prior.get("scorer") == "improved"
        and {"weight", "center"} <= set(prior)
    ):
        raise WeightsError("learned-v2 data: 'prior' needs scorer 'improved', 'weight' and 'center'")
    for key in ("gate", "hard_gate"):
        gate = raw.get(key)
        if gate is None:
            continue
        if not isinstance(gate, Mapping) or len(gate.get("token_value", ())) != len(vocab):
            raise WeightsError(f"learned-v2 data: {key!r} needs one 'token_value' per vocabulary token")
        if len(gate.get("stat_coef", ())) != len(FEATURES) or "intercept" not in gate:
            raise WeightsError(f"learned-v2 data: {key!r} needs 'stat_coef' and 'intercept'")


def load(path: str | Path = DEFAULT_DATA) -> dict[str, Any]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    check(raw)
    return raw


class LearnedV2Scorer(Scorer):
    name = "learned-v2"
    kind = "learned"

    def __init__(self, data: str | Path | Mapping[str, Any] = DEFAULT_DATA) -> None:
        raw = data if isinstance(data, Mapping) else load(data)
        check(raw)
        vocab = raw["vocab"]
        self._vocab: dict[str, int] = dict(zip(vocab, range(len(vocab)), strict=True))
        self._weight: list[float] = raw["token_weight"]
        # Stored as weight x value, so pooling is two sums (map/mul: C speed, it runs at cold start).
        self._wvalue: list[float] = list(map(operator.mul, self._weight, raw["token_value"]))
        self._unk = self._vocab["[UNK]"]
        self._longest = longest_piece(self._vocab)
        self._a = [float(c) for c in raw["stat_coef"]]
        self._b = float(raw["intercept"])
        self._slope = float(raw["calibration"]["slope"])
        self._offset = float(raw["calibration"]["offset"])
        prior = raw.get("prior") or {"weight": 0.0, "center": 0.0}
        self._prior_w, self._prior_c = float(prior["weight"]), float(prior["center"])
        # Two gates on the kind of request: trivial (score -> 0) and clearly hard (score raised).
        self._gates = [_Gate.load(raw.get(k), raw["token_weight"]) for k in ("gate", "hard_gate")]
        hard = raw.get("hard_gate")
        self._boost = float(hard.get("boost", 0.0)) if isinstance(hard, Mapping) else 0.0
        self._cache: dict[str, tuple[float, float, float, float]] = {}
        trained = raw.get("trained", {})
        files = trained.get("files", {}) if isinstance(trained, Mapping) else {}
        self.trained_on: dict[str, str] = {str(k): str(v) for k, v in files.items()}

    def _word(self, word: str) -> tuple[float, float, float, float]:
        """Sums over one word's WordPiece tokens: weight, and weight x value for the difficulty
        part and the two gates."""
        hit = self._cache.get(word)
        if hit is not None:
            return hit
        w = wv = wt = wh = 0.0
        trivial, hard = (g.wvalue if g else None for g in self._gates)
        for tid in wordpiece(word, self._vocab, self._unk, self._longest):
            w += self._weight[tid]
            wv += self._wvalue[tid]
            if trivial is not None:
                wt += trivial[tid]
            if hard is not None:
                wh += hard[tid]
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # bounded: hostile input cannot grow it without limit
        self._cache[word] = hit = (w, wv, wt, wh)
        return hit

    def semantic(self, text: str) -> tuple[float, float, float]:
        """The token parts of the three linear scores (difficulty, trivial gate, hard gate):
        weighted means of the folded token values."""
        total_w = total_v = total_t = total_h = 0.0
        get = self._cache.get  # the common case inline: a word seen before
        for word in words(text):
            w, wv, wt, wh = get(word) or self._word(word)
            total_w += w
            total_v += wv
            total_t += wt
            total_h += wh
        if total_w <= 0:
            return 0.0, 0.0, 0.0
        return total_v / total_w, total_t / total_w, total_h / total_w

    def logits(self, text: str) -> tuple[float, float | None, float | None]:
        """(P(strong better) from the difficulty model, the trivial gate's logit, the hard gate's
        logit); None for a gate the data file does not have."""
        sem, tsem, hsem = self.semantic(text)
        f = features(text)
        linear = sem + sum(map(float.__mul__, self._a, f), self._b)
        prior = self._prior_w * (improved_from_features(f) - self._prior_c) if self._prior_w else 0.0
        p = _sigmoid(self._slope * linear + self._offset + prior)
        trivial, hard = self._gates
        return p, trivial.logit(tsem, f) if trivial else None, hard.logit(hsem, f) if hard else None

    def parts(self, text: str) -> tuple[float, float, float]:
        """(P(strong better) from the difficulty model, P(trivial kind), P(hard kind)), each gate on
        its own."""
        p, trivial, hard = self.logits(text)
        return p, 0.0 if trivial is None else _sigmoid(trivial), 0.0 if hard is None else _sigmoid(hard)

    def z(self, text: str) -> float:
        """Linear difficulty score (before calibration and the gates)."""
        return self.semantic(text)[0] + sum(map(float.__mul__, self._a, features(text)), self._b)

    def score(self, text: str) -> float:
        p, trivial, hard = self.logits(text)
        p_hard, p_neither = kind_shares(trivial, hard)
        return (p_neither + p_hard) * p + p_hard * (1.0 - p) * self._boost


def kind_shares(trivial: float | None, hard: float | None) -> tuple[float, float]:
    """(P(hard kind), P(neither)) from the two gates' logits (None: no such gate), as one choice among
    trivial, hard and neither (logit 0). Where one gate is silent the other reads as its own sigmoid;
    where both fire, the larger logit wins instead of whichever the formula favours."""
    lt = -math.inf if trivial is None else trivial
    lh = -math.inf if hard is None else hard
    top = max(0.0, lt, lh)
    e_neither, e_trivial, e_hard = math.exp(-top), math.exp(lt - top), math.exp(lh - top)
    total = e_neither + e_trivial + e_hard
    return e_hard / total, e_neither / total


class _Gate:
    """A logistic gate over the same features (token part folded per token like the main model)."""

    __slots__ = ("a", "b", "wvalue")

    def __init__(self, wvalue: list[float], a: list[float], b: float) -> None:
        self.wvalue, self.a, self.b = wvalue, a, b

    @classmethod
    def load(cls, raw: Any, weights: list[float]) -> _Gate | None:
        if not isinstance(raw, Mapping):
            return None
        wvalue = list(map(operator.mul, weights, raw["token_value"]))
        return cls(wvalue, [float(c) for c in raw["stat_coef"]], float(raw["intercept"]))

    def logit(self, token_part: float, f: list[float]) -> float:
        return token_part + sum(map(float.__mul__, self.a, f), self.b)


def _sigmoid(t: float) -> float:
    if t >= 0:
        return 1.0 / (1.0 + math.exp(-t))
    e = math.exp(t)
    return e / (1.0 + e)
