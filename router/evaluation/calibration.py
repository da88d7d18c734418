"""Threshold search: the ``max_complexity`` of each catalogue model that meets a quality target at
the lowest cost on logged data. Pure: scores, qualities and costs in, thresholds out.

Routing (``router.pipeline.route.choose``) sends a query of complexity c to the cheapest enabled model
whose ``max_complexity >= c``. With the models sorted by price and thresholds non-decreasing,
model i therefore takes the queries with t(i-1) < c <= t(i) and the priciest takes the rest, so a
choice of thresholds is a choice of cut points in the queries sorted by score. The search is
exhaustive over cut points (on a quantile grid when there are more than two tiers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from router.classifiers.base import ROUTED_DECIMALS

_MAX_COMBINATIONS = 200_000


@dataclass(frozen=True, slots=True)
class Tier:
    """A catalogue model with its per-query quality and cost on the data (aligned with the scores)."""

    name: str
    quality: Sequence[float]
    cost: Sequence[float]


@dataclass(frozen=True, slots=True)
class Plan:
    thresholds: tuple[float, ...]  # max_complexity per tier, cheapest first; the last is 1.0
    fractions: tuple[float, ...]  # share of queries each tier takes
    quality: float  # mean quality of the plan
    top_quality: float  # mean quality of always using the priciest tier
    cost: float
    top_cost: float
    met: bool  # False: no plan reaches the target, so this is "always the priciest tier"

    @property
    def saving(self) -> float:
        return 1.0 - self.cost / self.top_cost if self.top_cost > 0 else 0.0

    @property
    def strong_fraction(self) -> float:
        return self.fractions[-1]


def _prefix(values: Sequence[float], order: Sequence[int]) -> list[float]:
    out = [0.0]
    for i in order:
        out.append(out[-1] + values[i])
    return out


def _grid(candidates: list[int], tiers: int) -> list[int]:
    """Thin the cut candidates to a quantile grid so the search stays within budget."""
    size = len(candidates)
    while size > 2 and math.comb(size + tiers - 2, tiers - 1) > _MAX_COMBINATIONS:
        size = int(size * 0.8)
    if size >= len(candidates):
        return candidates
    step = (len(candidates) - 1) / (size - 1)
    return sorted({candidates[round(k * step)] for k in range(size)})


def threshold_for_cut(sorted_scores: Sequence[float], cut: int) -> float | None:
    """``max_complexity`` that sends exactly the first ``cut`` queries (by score) to a cheaper tier;
    None when impossible (cut 0 with a zero score: max_complexity cannot go below 0)."""
    n = len(sorted_scores)
    if cut >= n:
        return 1.0
    if cut == 0:
        return sorted_scores[0] / 2 if sorted_scores[0] > 0 else None
    return (sorted_scores[cut - 1] + sorted_scores[cut]) / 2


def calibrate(scores: Sequence[float], tiers: Sequence[Tier], target: float = 0.95) -> Plan:
    """Cheapest thresholds keeping mean quality >= ``target`` x the priciest tier's (``tiers`` cheapest
    first). Ties in cost go to the plan sending fewer queries to pricier tiers."""
    n = len(scores)
    if n == 0 or not tiers:
        raise ValueError("need queries and at least one tier")
    for t in tiers:
        if len(t.quality) != n or len(t.cost) != n:
            raise ValueError(f"tier {t.name!r} needs one quality and one cost per query")
    order = sorted(range(n), key=lambda i: scores[i])
    ss = [scores[i] for i in order]
    pq = [_prefix(t.quality, order) for t in tiers]
    pc = [_prefix(t.cost, order) for t in tiers]
    top_q, top_c = pq[-1][n], pc[-1][n]
    k = len(tiers)
    # Cuts may only fall between distinct scores (a threshold cannot split a tie).
    candidates = [c for c in range(n + 1) if (c in (0, n) or ss[c - 1] != ss[c])]
    candidates = [c for c in candidates if threshold_for_cut(ss, c) is not None]
    if k > 1:
        candidates = _grid(candidates, k)
    need = target * top_q - 1e-9 * max(1.0, abs(top_q))
    best: tuple[float, tuple[int, ...]] | None = None
    for cuts in itertools.combinations_with_replacement(candidates, k - 1):
        bounds = (0, *cuts, n)
        q = c = 0.0
        for i in range(k):
            a, b = bounds[i], bounds[i + 1]
            q += pq[i][b] - pq[i][a]
            c += pc[i][b] - pc[i][a]
        if q >= need and (best is None or c < best[0] - 1e-12):
            best = (c, cuts)
    if best is None:  # nothing meets the target: everything to the priciest tier
        low = threshold_for_cut(ss, 0) or 0.0
        zeros = (0.0,) * (k - 1)
        return Plan((*(low,) * (k - 1), 1.0), (*zeros, 1.0), top_q / n, top_q / n, top_c, top_c, False)
    cuts = best[1]
    bounds = (0, *cuts, n)
    thresholds = (*(threshold_for_cut(ss, c) or 0.0 for c in cuts), 1.0)
    fractions = tuple((bounds[i + 1] - bounds[i]) / n for i in range(k))
    quality = sum(pq[i][bounds[i + 1]] - pq[i][bounds[i]] for i in range(k))
    return Plan(thresholds, fractions, quality / n, top_q / n, best[0], top_c, True)


@dataclass(frozen=True, slots=True)
class Band:
    """A judge band: scores with ``low <= score <= high`` ask the LLM judge."""

    low: float
    high: float
    fraction: float  # share of the queries inside it


def judge_band(scores: Sequence[float], center: float, max_share: float = 0.15) -> Band:
    """The widest band around ``center`` (in rank: as many queries below as above) that holds at
    most ``max_share`` of the queries. The judge then sees the queries nearest the costliest
    routing decision, the cut in front of the priciest model, where a second opinion pays most."""
    n = len(scores)
    if n == 0:
        raise ValueError("need scores")
    ss = sorted(scores)
    budget = math.floor(max_share * n + 1e-9)
    pos = sum(1 for v in ss if v < center)  # ss[pos:] are >= center
    best = Band(center, center, sum(1 for v in ss if v == center) / n)
    if best.fraction > max_share:  # a tie group alone over budget: the narrowest band there is
        return best
    for half in range(1, n + 1):
        lo_i, hi_i = max(0, pos - half), min(n, pos + half)  # candidate members ss[lo_i:hi_i]
        low = ss[lo_i] if lo_i < n else center
        high = ss[hi_i - 1] if hi_i > 0 else center
        low, high = min(low, center), max(high, center)
        inside = sum(1 for v in ss if low <= v <= high)
        if inside > budget:
            break
        best = Band(low, high, inside / n)
        if lo_i == 0 and hi_i == n:
            break
    return best


def judge_band_for_each(
    score_sets: Sequence[Sequence[float]], center: float, max_share: float = 0.15
) -> Band:
    """The widest band around ``center`` that holds at most ``max_share`` of *each* set (one set per
    file: calibration data, chat logs, your traffic), the intersection of their ``judge_band``s. Its
    ``fraction`` is the largest share of any set inside it. Pooled files could hide one kind of traffic
    that crowds the band: a chat log whose scores sit around the cut would call the judge far more often
    than the benchmark mix that set the band."""
    sets = [s for s in score_sets if len(s)]
    if not sets:
        raise ValueError("need scores")
    bands = [judge_band(s, center, max_share) for s in sets]
    low, high = max(b.low for b in bands), min(b.high for b in bands)
    share = max(sum(1 for v in s if low <= v <= high) / len(s) for s in sets)
    return Band(low, high, share)


def _quantiles(values: Sequence[float], points: int) -> list[float]:
    """``points`` evenly spaced quantiles (0 to 1, linear between order statistics) of ``values``."""
    ss = sorted(values)
    last = len(ss) - 1
    out = []
    for k in range(points):
        x = k * last / (points - 1)
        i = min(int(x), max(last - 1, 0))
        out.append(ss[i] + (x - i) * (ss[min(i + 1, last)] - ss[i]))
    return out


def judge_scale(scores: Sequence[float], band: Band, cut: float, points: int = 11) -> tuple[float, ...]:
    """Where the judge's 0..1 answers land on the scorer's scale (``JUDGE_SCALE``, ``points`` odd):
    answers 0..0.5 on the quantiles of the scores in ``[band.low, cut]``, 0.5..1 on those in
    ``[cut, band.high]``. The judge re-ranks the requests in the band on each side of the cut in front of
    the priciest model: 0.5 is the cut itself, above it the priciest model answers. Monotone by
    construction; a side without scores is a straight line between its ends."""
    if points < 3 or points % 2 == 0:
        raise ValueError("need an odd number of points, at least three")
    half = points // 2 + 1
    cut = min(max(cut, band.low), band.high)
    below = [s for s in scores if band.low <= s <= cut] or [band.low, cut]
    above = [s for s in scores if cut <= s <= band.high] or [cut, band.high]
    lower = [band.low, *_quantiles([*below, band.low, cut], half)[1:-1], cut]
    upper = [cut, *_quantiles([*above, cut, band.high], half)[1:-1], band.high]
    # 0.5 reads as the routed score at or below the cut (a cut sits between two routed scores, and
    # rounding the cut itself would go either way by the float's last bit): a cheaper model.
    mid = min(cut, routed_floor(cut))
    return (*(min(v, mid) for v in lower[:-1]), mid, *upper[1:])


def routed_floor(score: float) -> float:
    """The largest routed (``ROUTED_DECIMALS``) value at or below ``score``."""
    unit = float(10**ROUTED_DECIMALS)
    return math.floor(score * unit + 1e-6) / unit
