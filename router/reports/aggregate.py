"""Pure aggregation of cost records: mergeable summaries, then the report's numbers. No I/O.

Why the shapes here:

- Money is summed as **integer pico-dollars** (1e-12 USD). Integer sums are exact and associative, so a
  report built from stored daily roll-ups is identical, to the last digit, to one built by scanning every
  record, whatever the order or grouping of the merge.
- Latency percentiles come from a **fixed log-bucket histogram** (the DDSketch mapping): a value ``x`` falls
  in bucket ``ceil(log_gamma(x))`` and the bucket is reported as ``2·gamma^i / (gamma + 1)``, which is within
  ``ALPHA`` (1%) of every value in the bucket. Histograms merge by adding counts, so p50/p95 over a month
  of roll-ups needs no raw rows. Percentiles are **nearest-rank** (the ``ceil(q·n)``-th smallest) over
  **ok calls only** (a failed call's latency is the time to fail, not to answer), so the reported value is
  within 1% of the exact nearest-rank latency.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, timedelta
from typing import Any, Literal, NamedTuple

PICO = 10**12
ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_LOG_GAMMA = math.log(GAMMA)
MIN_LATENCY_MS = 0.01  # anything faster is counted as this (the bucket index stays bounded)

GroupBy = Literal["model", "day", "classifier", "scorer", "caller", "team", "deployment"]
GROUP_BY: tuple[GroupBy, ...] = ("model", "day", "classifier", "scorer", "caller", "team", "deployment")
ANONYMOUS = "anonymous"  # the caller and team of records made before callers existed, or under function keys

# The only columns a report reads (the Table query selects exactly these).
COLUMNS = (
    "model",
    "classifier",
    "scorer",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cache_savings_usd",
    "classifier_model",
    "classifier_prompt_tokens",
    "classifier_completion_tokens",
    "classifier_cost_usd",
    "baseline_cost_usd",
    "latency_ms",
    "fallbacks",
    "caller",
    "team",
    "deployment",
    "endpoint",
    "provisioned",
)

METHOD = {
    "money": "sums of per-call USD, exact to 1e-12 USD; total spend = answering models + judge overhead",
    "savings": "baseline (same tokens on the most capable model) minus total spend; % of baseline",
    "tokens": "prompt tokens include cached_tokens (billed at the cached input price); completion tokens "
    "include reasoning_tokens (billed as output); cache_savings: cached tokens at input minus cached price",
    "latency": "nearest-rank p50/p95 over ok calls, from 1%-relative log buckets (within 1% of exact)",
}


def latency_bucket(ms: float) -> int:
    return math.ceil(math.log(max(ms, MIN_LATENCY_MS)) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    return 2 * GAMMA**index / (GAMMA + 1)


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """Nearest-rank percentile (0 < q <= 1) of a bucket histogram; None when it is empty."""
    n = sum(histogram.values())
    if n == 0:
        return None
    rank = max(1, math.ceil(q * n))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bucket_value(index)
    raise AssertionError("unreachable: rank <= n")


def to_pico(value: Any) -> int:
    """A stored USD amount as integer pico-dollars (exact sums); anything unreadable counts 0."""
    try:
        usd = float(value)
    except (TypeError, ValueError):
        return 0
    return round(usd * PICO) if math.isfinite(usd) else 0


def to_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass(slots=True)
class Summary:
    """Additive counters for a set of calls; ``merge`` is exact, so any grouping can be re-summed."""

    calls: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, from the prompt cache (0 in records before they were read)
    reasoning_tokens: int = 0  # of completion_tokens
    judge_calls: int = 0
    judge_prompt_tokens: int = 0
    judge_completion_tokens: int = 0
    fallbacks: int = 0
    calls_with_fallbacks: int = 0
    spend: int = 0  # pico-USD, answering models
    overhead: int = 0  # pico-USD, judge calls
    baseline: int = 0  # pico-USD, same tokens on the most capable model
    cache_savings: int = 0  # pico-USD, what the prompt cache saved on the answering models
    latency: dict[int, int] = field(default_factory=dict)  # bucket -> ok calls

    def add(self, e: Mapping[str, Any]) -> None:
        """Count one cost-record entity (tolerant of old rows: a missing number counts as 0)."""
        self.calls += 1
        ok = e.get("status", "ok") == "ok"
        if not ok:
            self.errors += 1
        self.prompt_tokens += to_int(e.get("prompt_tokens"))
        self.completion_tokens += to_int(e.get("completion_tokens"))
        self.cached_tokens += to_int(e.get("cached_tokens"))
        self.reasoning_tokens += to_int(e.get("reasoning_tokens"))
        if e.get("classifier_model"):
            self.judge_calls += 1
        self.judge_prompt_tokens += to_int(e.get("classifier_prompt_tokens"))
        self.judge_completion_tokens += to_int(e.get("classifier_completion_tokens"))
        fallbacks = to_int(e.get("fallbacks"))
        self.fallbacks += fallbacks
        self.calls_with_fallbacks += fallbacks > 0
        self.spend += to_pico(e.get("cost_usd"))
        self.overhead += to_pico(e.get("classifier_cost_usd"))
        self.baseline += to_pico(e.get("baseline_cost_usd"))
        self.cache_savings += to_pico(e.get("cache_savings_usd"))
        if ok:
            try:
                latency = float(e.get("latency_ms", 0.0))
            except (TypeError, ValueError):
                latency = 0.0
            if math.isfinite(latency):
                bucket = latency_bucket(latency)
                self.latency[bucket] = self.latency.get(bucket, 0) + 1

    def merge(self, other: Summary) -> None:
        for f in _COUNTERS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        for bucket, count in other.latency.items():
            self.latency[bucket] = self.latency.get(bucket, 0) + count

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f: getattr(self, f) for f in _COUNTERS}
        out["latency"] = {str(k): v for k, v in sorted(self.latency.items())}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        s = cls()
        for f in _COUNTERS:
            setattr(s, f, int(data.get(f, 0)))
        s.latency = {int(k): int(v) for k, v in dict(data.get("latency", {})).items()}
        return s


_COUNTERS = tuple(f.name for f in fields(Summary) if f.name != "latency")


class GroupKey(NamedTuple):
    day: str  # YYYY-MM-DD
    model: str
    classifier: str
    scorer: str = "?"  # "?" for records made before cost records named their scorer
    caller: str = ANONYMOUS  # who made the call (router.callers)
    team: str = ANONYMOUS
    # The backend that answered ("?" endpoint in records made before backends existed).
    deployment: str = "?"
    endpoint: str = "?"
    provisioned: bool = False


Cube = dict[GroupKey, Summary]


def summarize(day: str, entities: Iterable[Mapping[str, Any]], cube: Cube | None = None) -> Cube:
    """Fold one day's entities into a cube keyed by (day, model, classifier, scorer, caller, team)."""
    cube = {} if cube is None else cube
    for e in entities:
        key = GroupKey(
            day, str(e.get("model") or "?"), str(e.get("classifier") or "?"), str(e.get("scorer") or "?"),
            str(e.get("caller") or ANONYMOUS), str(e.get("team") or ANONYMOUS),
            str(e.get("deployment") or "?"), str(e.get("endpoint") or "?"), e.get("provisioned") is True,
        )  # fmt: skip
        s = cube.get(key)
        if s is None:
            s = cube[key] = Summary()
        s.add(e)
    return cube


def merge_cubes(cubes: Iterable[Cube]) -> Cube:
    out: Cube = {}
    for cube in cubes:
        for key, s in cube.items():
            if key not in out:
                out[key] = Summary()
            out[key].merge(s)
    return out


def days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def usd(pico: int) -> float:
    return round(pico / PICO, 9)


def figures(s: Summary, all_calls: int | None = None) -> dict[str, Any]:
    """The report's numbers for one summary (a group or the totals)."""
    total = s.spend + s.overhead
    savings = s.baseline - total
    p50, p95 = percentile(s.latency, 0.50), percentile(s.latency, 0.95)
    out: dict[str, Any] = {
        "calls": s.calls,
        "ok": s.calls - s.errors,
        "errors": s.errors,
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "cached_tokens": s.cached_tokens,
        "reasoning_tokens": s.reasoning_tokens,
        "judge_calls": s.judge_calls,
        "judge_prompt_tokens": s.judge_prompt_tokens,
        "judge_completion_tokens": s.judge_completion_tokens,
        "fallbacks": s.fallbacks,
        "calls_with_fallbacks": s.calls_with_fallbacks,
        "spend_usd": usd(s.spend),
        "overhead_usd": usd(s.overhead),
        "total_spend_usd": usd(total),
        "baseline_usd": usd(s.baseline),
        "savings_usd": usd(savings),
        "savings_pct": round(100 * savings / s.baseline, 4) if s.baseline else None,
        "cache_savings_usd": usd(s.cache_savings),
        "latency_p50_ms": None if p50 is None else round(p50, 1),
        "latency_p95_ms": None if p95 is None else round(p95, 1),
    }
    if all_calls is not None:
        out["share_of_calls"] = round(s.calls / all_calls, 6) if all_calls else 0.0
    return out


def rollup(cube: Cube, key: Callable[[GroupKey], Any]) -> dict[Any, Summary]:
    """Re-sum a cube by ``key(GroupKey)``."""
    out: dict[Any, Summary] = {}
    for k, s in cube.items():
        g = key(k)
        if g not in out:
            out[g] = Summary()
        out[g].merge(s)
    return out


def total(cube: Cube) -> Summary:
    return rollup(cube, lambda _: None).get(None, Summary())


def build_report(cube: Cube, start: date, end: date, group_by: GroupBy | None) -> dict[str, Any]:
    """Totals, optional groups and the share of calls per model over ``start..end`` (inclusive)."""
    lo, hi = start.isoformat(), end.isoformat()
    cube = {k: s for k, s in cube.items() if lo <= k.day <= hi}
    totals = total(cube)
    by_model = rollup(cube, lambda k: k.model)
    report: dict[str, Any] = {
        "from": lo,
        "to": hi,
        "days": (end - start).days + 1,
        "group_by": group_by,
        "totals": figures(totals),
        "calls_by_model": [
            {"model": m, "calls": s.calls, "share_of_calls": figures(s, totals.calls)["share_of_calls"]}
            for m, s in sorted(by_model.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        ],
        "groups": [],
        "method": METHOD,
    }
    if group_by == "day":
        by_day = rollup(cube, lambda k: k.day)
        report["groups"] = [
            {"day": d.isoformat(), **figures(by_day.get(d.isoformat(), Summary()), totals.calls)}
            for d in days(start, end)
        ]
    elif group_by == "deployment":
        by_backend = rollup(cube, lambda k: (k.deployment, k.endpoint, k.provisioned))
        ordered_backends = sorted(by_backend.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        report["groups"] = [
            {
                "deployment": d,
                "endpoint": None if e == "?" else e,
                "provisioned": p,
                **figures(s, totals.calls),
            }
            for (d, e, p), s in ordered_backends
        ]
    elif group_by is not None:
        groups = by_model if group_by == "model" else rollup(cube, lambda k: getattr(k, group_by))
        ordered = sorted(groups.items(), key=lambda kv: (-kv[1].calls, kv[0]))
        report["groups"] = [{group_by: name, **figures(s, totals.calls)} for name, s in ordered]
    return report


def daily_by_model(cube: Cube, start: date, end: date) -> list[tuple[str, dict[str, Summary]]]:
    """Each day in the range (empty ones included) with its per-model summaries: the dashboard's series."""
    per: dict[str, dict[str, Summary]] = {}
    for (day, model), s in rollup(cube, lambda k: (k.day, k.model)).items():
        per.setdefault(day, {})[model] = s
    return [(d.isoformat(), per.get(d.isoformat(), {})) for d in days(start, end)]
