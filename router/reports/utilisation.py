"""Utilisation of provisioned backends in ``/api/costs?group_by=deployment``: the tokens they answered as
a share of what they could have answered (their catalogue ``tokens_per_minute`` over the period's minutes
so far). A PTU deployment is paid for whether used or not, so this is the number that says whether the
router spent its capacity first."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from router.models.config import ModelConfig
    from router.reports.period import Period


def budgets(models: Iterable[ModelConfig], default_endpoint: str | None) -> dict[tuple[str, str], int]:
    """(deployment, endpoint) → tokens per minute, for provisioned backends that declare it."""
    out: dict[tuple[str, str], int] = {}
    for m in models:
        for b in m.backends:
            endpoint = (b.endpoint or m.endpoint or default_endpoint or "").rstrip("/")
            if b.provisioned and b.tokens_per_minute:
                out[(b.deployment, endpoint)] = b.tokens_per_minute
    return out


def period_minutes(period: Period, now: datetime) -> float:
    start = datetime.combine(period.start, time(), UTC)
    end = min(datetime.combine(period.end + timedelta(days=1), time(), UTC), now)
    return max(0.0, (end - start).total_seconds() / 60)


def add_budget_shares(groups: list[dict[str, Any]], tpm: dict[tuple[str, str], int], minutes: float) -> None:
    """Each provisioned group with a known budget gains ``budget_tokens`` and ``budget_share``."""
    for g in groups:
        per_minute = tpm.get((str(g.get("deployment")), str(g.get("endpoint") or "")))
        if not g.get("provisioned") or per_minute is None:
            continue
        budget = per_minute * minutes
        used = int(g.get("prompt_tokens", 0)) + int(g.get("completion_tokens", 0))
        g["budget_tokens"] = round(budget)
        g["budget_share"] = round(used / budget, 6) if budget else None
