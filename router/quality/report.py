"""The quality report over stored samples, and the quality overhead the savings report subtracts. Pure.

``win_or_tie_rate`` is the share of judged samples (judge errors excluded) where the routed answer was at
least as good as the baseline's, with its Wilson 95% interval. Money is summed in integer pico-dollars,
as in the savings report, so the overhead shown in both reports agrees to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from router.errors import RouterError
from router.quality.verdict import band, wilson
from router.reports.aggregate import days, to_int, to_pico, usd
from router.reports.period import Period

Samples = Sequence[Mapping[str, Any]]  # stored sample entities
QualityBy = Literal["model", "scorer", "band"]
QUALITY_BY: tuple[QualityBy, ...] = ("model", "scorer", "band")
COLUMNS = ("PartitionKey", "routed_model", "scorer", "complexity", "verdict", "shadow_usd", "judge_usd",
           "total_usd", "shadow_prompt_tokens", "shadow_completion_tokens", "judge_prompt_tokens",
           "judge_completion_tokens")  # fmt: skip
OVERHEAD_COLUMNS = ("PartitionKey", "routed_model", "scorer", "total_usd")
METHOD = {
    "win_or_tie_rate": "(wins + ties) / (wins + ties + losses); judge errors excluded",
    "ci95": "Wilson score interval, 95%",
    "verdict": "judge asked twice, answers in both orders; disagreement counts as a tie",
}


@dataclass(slots=True)
class Tally:
    samples: int = 0
    wins: int = 0
    ties: int = 0
    losses: int = 0
    judge_errors: int = 0
    shadow: int = 0  # pico-USD
    judge: int = 0  # pico-USD
    shadow_tokens: int = 0
    judge_tokens: int = 0

    def add(self, e: Mapping[str, Any]) -> None:
        self.samples += 1
        verdict = e.get("verdict")
        if verdict == "win":
            self.wins += 1
        elif verdict == "tie":
            self.ties += 1
        elif verdict == "loss":
            self.losses += 1
        else:
            self.judge_errors += 1
        self.shadow += to_pico(e.get("shadow_usd"))
        self.judge += to_pico(e.get("judge_usd"))
        self.shadow_tokens += to_int(e.get("shadow_prompt_tokens")) + to_int(
            e.get("shadow_completion_tokens")
        )
        self.judge_tokens += to_int(e.get("judge_prompt_tokens")) + to_int(e.get("judge_completion_tokens"))

    @property
    def judged(self) -> int:
        return self.wins + self.ties + self.losses

    def figures(self) -> dict[str, Any]:
        judged, good = self.judged, self.wins + self.ties
        ci = wilson(good, judged)
        return {
            "samples": self.samples, "judged": judged, "wins": self.wins, "ties": self.ties,
            "losses": self.losses, "judge_errors": self.judge_errors,
            "win_or_tie_rate": good / judged if judged else None,
            "ci95": list(ci) if ci is not None else None,
            "overhead_usd": usd(self.shadow + self.judge), "shadow_usd": usd(self.shadow),
            "judge_usd": usd(self.judge), "shadow_tokens": self.shadow_tokens,
            "judge_tokens": self.judge_tokens,
        }  # fmt: skip


def parse_quality_by(value: str | None) -> QualityBy | None:
    """``group_by``, validated like the savings report's (a 400 naming the parameter)."""
    if value is None:
        return None
    for option in QUALITY_BY:
        if value == option:
            return option
    raise RouterError(
        "group_by: must be one of " + ", ".join(QUALITY_BY), code="validation_error", status=400
    )


def _key(by: QualityBy) -> Callable[[Mapping[str, Any]], str]:
    if by == "model":
        return lambda e: str(e.get("routed_model") or "?")
    if by == "scorer":
        return lambda e: str(e.get("scorer") or "?")
    return lambda e: band(float(e.get("complexity") or 0.0))


def tally(entities: Iterable[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]) -> dict[Any, Tally]:
    out: dict[Any, Tally] = {}
    for e in entities:
        out.setdefault(key(e), Tally()).add(e)
    return out


def build_quality_report(
    entities: Iterable[Mapping[str, Any]], period: Period, by: QualityBy | None
) -> dict[str, Any]:
    rows = list(entities)
    totals = tally(rows, lambda _: None).get(None, Tally())
    report: dict[str, Any] = {
        "from": period.start.isoformat(), "to": period.end.isoformat(), "days": period.days,
        "group_by": by, **totals.figures(), "groups": [], "method": METHOD,
    }  # fmt: skip
    if by is not None:
        groups = tally(rows, _key(by))
        report["groups"] = [{by: k, **t.figures()} for k, t in sorted(groups.items())]
    return report


def daily_by_model(
    entities: Iterable[Mapping[str, Any]], period: Period
) -> list[tuple[str, dict[str, Tally]]]:
    """Each day in the range with its per-model tallies (``all`` included): the dashboard's series."""
    per: dict[str, dict[str, Tally]] = {}
    for e in entities:
        day = per.setdefault(str(e.get("PartitionKey")), {})
        day.setdefault("all", Tally()).add(e)
        day.setdefault(str(e.get("routed_model") or "?"), Tally()).add(e)
    return [(d.isoformat(), per.get(d.isoformat(), {})) for d in days(period.start, period.end)]


# -- the savings report's quality_check_usd ----------------------------------------------------------
Spent = dict[tuple[str, str, str], int]  # (day, routed model, scorer) -> pico-USD


def overhead(entities: Iterable[Mapping[str, Any]]) -> Spent:
    """Pico-USD of shadow + judge calls per (day, routed model, scorer)."""
    out: Spent = {}
    for e in entities:
        key = (str(e.get("PartitionKey")), str(e.get("routed_model") or "?"), str(e.get("scorer") or "?"))
        out[key] = out.get(key, 0) + to_pico(e.get("total_usd"))
    return out


def overhead_by_day(entities: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for (day, _, _), pico in overhead(entities).items():
        out[day] = out.get(day, 0) + pico
    return out


def _charge(fig: dict[str, Any], pico: int) -> None:
    """Add the quality overhead to one figures dict: its own line, in total spend, out of savings."""
    q = usd(pico)
    fig["quality_check_usd"] = q
    fig["total_spend_usd"] = round(fig["total_spend_usd"] + q, 9)
    fig["savings_usd"] = round(fig["baseline_usd"] - fig["total_spend_usd"], 9)
    base = fig["baseline_usd"]
    fig["savings_pct"] = round(100 * fig["savings_usd"] / base, 4) if base else None


def charge_report(report: dict[str, Any], spent: Spent) -> dict[str, Any]:
    """The /api/costs report with ``quality_check_usd`` in the totals and in every group (by day, routed
    model or scorer; a classifier, caller or team group carries none: a sample's spend belongs to no such
    row, the samples are the router's own calls)."""
    lo, hi = report["from"], report["to"]
    inside = {k: v for k, v in spent.items() if lo <= k[0] <= hi}
    _charge(report["totals"], sum(inside.values()))
    by = report.get("group_by")
    position = {"day": 0, "model": 1, "scorer": 2}.get(str(by))
    for group in report.get("groups", []):
        key = group.get(str(by)) if position is not None else None
        _charge(group, sum(v for k, v in inside.items() if position is not None and k[position] == key))
    note = "shadow and judge calls of quality sampling (router.quality): in total spend, out of savings"
    report["method"] = {**report.get("method", {}), "quality_check": note}
    return report
