"""Budgets: USD limits per UTC day and month for a caller or a team, and the counter that enforces them.

Pure. A counter holds, for the current UTC day and month, what is *reserved* (admitted requests still
running, at their worst-case cost) and what is *spent* (settled requests, at their recorded cost), in
integer pico-dollars so sums are exact. A request is admitted only if ``spent + reserved + its
reservation`` stays within every limit; on its end the reservation is released and the actual cost
added. A period that has ended is reset when next touched (a new day starts at zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

PICO = 10**12
Scope = Literal["caller", "team"]
Period = Literal["day", "month"]
OnBudget = Literal["reject", "downgrade"]  # over budget: 429, or the cheapest model that fits answers
PERIODS: tuple[Period, ...] = ("day", "month")


def to_pico(usd: float) -> int:
    """USD as pico-dollars, rounded up: a reservation is never smaller than the amount it covers."""
    return math.ceil(round(usd * PICO, 3))


def usd(pico: int) -> float:
    return pico / PICO


@dataclass(frozen=True, slots=True)
class Limits:
    """What one caller or team may use; ``None`` is no limit."""

    daily_usd: float | None = None
    monthly_usd: float | None = None
    tpm: int | None = None  # tokens per minute (callers only)
    on_budget: OnBudget = "reject"  # over budget: 429, or the cheapest model within the limits answers

    @property
    def budgeted(self) -> bool:
        return self.daily_usd is not None or self.monthly_usd is not None

    def limit(self, period: Period) -> float | None:
        return self.daily_usd if period == "day" else self.monthly_usd


NO_LIMITS = Limits()


def day_key(now: datetime) -> str:
    return now.strftime("%Y-%m-%d")


def month_key(now: datetime) -> str:
    return now.strftime("%Y-%m")


def seconds_to_reset(now: datetime, period: Period) -> int:
    """Whole seconds (rounded up, at least 1) to the UTC start of the next day or month."""
    now = now.astimezone(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        reset = start + timedelta(days=1)
    else:
        first = start.replace(day=1)
        reset = (
            first.replace(year=first.year + 1, month=1)
            if first.month == 12
            else first.replace(month=first.month + 1)
        )
    return max(1, math.ceil((reset - now).total_seconds()))


@dataclass(frozen=True, slots=True)
class Exhausted:
    """Why a reservation did not fit: the period whose limit it would pass, and what is left of it."""

    period: Period
    limit_usd: float
    remaining_usd: float


@dataclass(frozen=True, slots=True)
class Counter:
    day: str = ""
    day_reserved: int = 0
    day_spent: int = 0
    month: str = ""
    month_reserved: int = 0
    month_spent: int = 0

    def current(self, now: datetime) -> Counter:
        """This counter with any ended period reset to zero."""
        counter = self
        if counter.day != day_key(now):
            counter = replace(counter, day=day_key(now), day_reserved=0, day_spent=0)
        if counter.month != month_key(now):
            counter = replace(counter, month=month_key(now), month_reserved=0, month_spent=0)
        return counter

    def used(self, period: Period) -> int:
        if period == "day":
            return self.day_reserved + self.day_spent
        return self.month_reserved + self.month_spent

    def spent(self, period: Period) -> int:
        return self.day_spent if period == "day" else self.month_spent

    def exhausted(self, limits: Limits, amount: int) -> Exhausted | None:
        """The first period ``amount`` more would pass, or None when it fits in both."""
        for period in PERIODS:
            limit = limits.limit(period)
            if limit is None:
                continue
            if self.used(period) + amount > to_pico(limit):
                remaining = max(0, to_pico(limit) - self.used(period))
                return Exhausted(period, limit, usd(remaining))
        return None

    def reserve(self, amount: int) -> Counter:
        return replace(self, day_reserved=self.day_reserved + amount,
                       month_reserved=self.month_reserved + amount)  # fmt: skip

    def settle(self, held: Hold, actual: int) -> Counter:
        """Release ``held`` (only from the periods it was taken in: an ended period was reset) and add
        ``actual`` to the current ones. Never below zero, whatever order settlements arrive in."""
        day_reserved = self.day_reserved - held.amount if held.day == self.day else self.day_reserved
        month_reserved = (
            self.month_reserved - held.amount if held.month == self.month else self.month_reserved
        )
        return replace(
            self, day_reserved=max(0, day_reserved), day_spent=self.day_spent + actual,
            month_reserved=max(0, month_reserved), month_spent=self.month_spent + actual,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Hold:
    """One reservation on one counter: how much, and in which day and month it was taken."""

    scope: Scope
    name: str
    amount: int  # pico-USD
    day: str
    month: str
