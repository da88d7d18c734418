"""Router quality metrics (RouteLLM's definitions, arXiv 2406.18665), pure and exact.

A scorer routes a query to the strong model when its score >= a threshold. Sweeping the threshold
over the distinct scores gives one operating point per tie group; queries with equal scores cannot
be told apart, so between two points the curve is the straight line that a random order of the tie
group gives in expectation. Every area and crossing is computed exactly on that piecewise-linear
curve: a constant scorer (one tie group) and the random router both give APGR 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from router.evaluation.data import Pair

_EPS = 1e-9
CURVE_GRID = tuple(i / 10 for i in range(11))


@dataclass(frozen=True, slots=True)
class Point:
    """One operating point: route to strong when score >= ``threshold``. None: no score threshold
    gives it (nothing to strong, a fixed policy, or random routing)."""

    threshold: float | None
    strong_fraction: float
    quality: float  # mean quality per query
    cost: float  # total cost over the data set


@dataclass(frozen=True, slots=True)
class Curve:
    points: tuple[Point, ...]  # strong fraction ascending, from 0 to 1
    weak_quality: float
    strong_quality: float
    weak_cost: float
    strong_cost: float

    def pgr(self, quality: float) -> float | None:
        """Performance gap recovered; None when strong and weak are equally good (no gap to recover)."""
        gap = self.strong_quality - self.weak_quality
        if abs(gap) < _EPS:
            return None
        return (quality - self.weak_quality) / gap

    def quality_at(self, x: float) -> float:
        """Expected quality at strong fraction ``x`` (linear inside a tie group)."""
        pts = self.points
        for a, b in pairwise(pts):
            if x <= b.strong_fraction + _EPS:
                span = b.strong_fraction - a.strong_fraction
                t = 0.0 if span <= 0 else max(0.0, min(1.0, (x - a.strong_fraction) / span))
                return a.quality + t * (b.quality - a.quality)
        return pts[-1].quality


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of one router (a scorer or a baseline) on one data set."""

    name: str
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    at_target: Point | None  # cheapest operating point keeping >= target x strong quality
    saving: float | None  # 1 - cost(at_target) / cost(always strong)


def curve(scores: Sequence[float], data: Pair) -> Curve:
    """The quality/cost curve of ``scores`` (higher = send to strong) on ``data``."""
    n = len(data)
    if n == 0 or len(scores) != n:
        raise ValueError(f"need one score per query ({len(scores)} scores, {n} queries)")
    sq, wq, sc, wc = data.strong_quality, data.weak_quality, data.strong_cost, data.weak_cost
    weak_q, strong_q = sum(wq) / n, sum(sq) / n
    weak_c, strong_c = sum(wc), sum(sc)
    order = sorted(range(n), key=lambda i: -scores[i])
    points = [Point(None, 0.0, weak_q, weak_c)]
    gain = extra = 0.0
    i = 0
    while i < n:
        threshold = scores[order[i]]
        while i < n and scores[order[i]] == threshold:
            j = order[i]
            gain += sq[j] - wq[j]
            extra += sc[j] - wc[j]
            i += 1
        points.append(Point(threshold, i / n, weak_q + gain / n, weak_c + extra))
    # The last point is "always strong": use its exact totals, free of accumulated rounding.
    last = points[-1]
    points[-1] = Point(last.threshold, 1.0, strong_q, strong_c)
    return Curve(tuple(points), weak_q, strong_q, weak_c, strong_c)


def _pgrs(c: Curve) -> list[float] | None:
    g = [c.pgr(p.quality) for p in c.points]
    return None if any(v is None for v in g) else [v for v in g if v is not None]


def apgr(c: Curve) -> float | None:
    """Area under PGR over strong fraction 0..1 (trapezoids are exact on the piecewise-linear curve)."""
    g = _pgrs(c)
    if g is None:
        return None
    xs = [p.strong_fraction for p in c.points]
    segments = zip(pairwise(xs), pairwise(g), strict=True)
    return sum((xb - xa) * (ga + gb) / 2 for (xa, xb), (ga, gb) in segments)


def cpt(c: Curve, p: float) -> float | None:
    """Call-performance threshold: the smallest strong fraction whose PGR reaches ``p``."""
    g = _pgrs(c)
    if g is None:
        return None
    xs = [pt.strong_fraction for pt in c.points]
    if g[0] >= p - _EPS:
        return xs[0]
    for (xa, xb), (ga, gb) in zip(pairwise(xs), pairwise(g), strict=True):
        if gb >= p - _EPS:
            return xa + min(1.0, (p - ga) / (gb - ga)) * (xb - xa)  # ga < p - eps <= gb
    return None


def cheapest_point(c: Curve, target: float) -> Point | None:
    """Cheapest real threshold (a whole tie group at a time) keeping quality >= target x strong."""
    need = target * c.strong_quality - _EPS
    ok = [p for p in c.points if p.quality >= need]
    return min(ok, key=lambda p: (p.cost, p.strong_fraction)) if ok else None


def saving(c: Curve, point: Point | None) -> float | None:
    if point is None or c.strong_cost <= 0:
        return None
    return 1.0 - point.cost / c.strong_cost


def summarise(name: str, c: Curve, target: float = 0.95) -> Summary:
    at = cheapest_point(c, target)
    return Summary(name, apgr(c), cpt(c, 0.5), cpt(c, 0.8), at, saving(c, at))


def pgr_table(c: Curve, grid: Sequence[float] = CURVE_GRID) -> list[tuple[float, float, float | None]]:
    """(strong fraction, quality, PGR) at each grid fraction: the printable quality-vs-calls curve."""
    return [(x, q, c.pgr(q)) for x in grid for q in (c.quality_at(x),)]


# --- baselines -------------------------------------------------------------------------------------


def oracle_scores(data: Pair) -> list[float]:
    """Knows every answer: strong first where it beats weak, last where it loses to it."""
    return [s - w for s, w in zip(data.strong_quality, data.weak_quality, strict=True)]


def always_weak(data: Pair, target: float = 0.95) -> Summary:
    c = curve([0.0] * len(data), data)
    pt = c.points[0]
    ok = pt.quality >= target * c.strong_quality - _EPS
    g = c.pgr(pt.quality)
    return Summary(
        "always-weak",
        None,
        0.0 if g is not None and g >= 0.5 else None,
        None,
        pt if ok else None,
        saving(c, pt) if ok else None,
    )


def always_strong(data: Pair, target: float = 0.95) -> Summary:
    c = curve([0.0] * len(data), data)
    last = c.points[-1]
    pt = Point(None, last.strong_fraction, last.quality, last.cost)
    ok = pt.quality >= target * c.strong_quality - _EPS
    full = 1.0 if c.pgr(pt.quality) is not None else None
    return Summary("always-strong", None, full, full, pt if ok else None, 0.0 if ok else None)


def random_router(data: Pair, target: float = 0.95) -> Summary:
    """Exact expectation of sending each query to strong with probability x, at the cheapest x."""
    c = curve([0.0] * len(data), data)  # one tie group: the straight line random routing gives
    need = target * c.strong_quality
    gap = c.strong_quality - c.weak_quality
    at: Point | None
    if c.weak_quality >= need - _EPS:
        at = c.points[0]
    elif gap > _EPS:
        x = (need - c.weak_quality) / gap
        at = Point(None, x, need, c.weak_cost + x * (c.strong_cost - c.weak_cost))
    else:
        at = None
    return Summary("random", apgr(c), cpt(c, 0.5), cpt(c, 0.8), at, saving(c, at))


def oracle(data: Pair, target: float = 0.95) -> Summary:
    return summarise("oracle", curve(oracle_scores(data), data), target)


def baselines(data: Pair, target: float = 0.95) -> list[Summary]:
    return [
        always_weak(data, target),
        always_strong(data, target),
        random_router(data, target),
        oracle(data, target),
    ]
