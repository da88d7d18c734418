"""``python -m router callers budget NAME``: set, clear and show a caller's or team's budget and rate limit.

::

    callers budget alice --daily 50 --monthly 800      set (other fields keep their value)
    callers budget alice --tpm 20000                   tokens per minute (callers only)
    callers budget alice --on-budget downgrade         over budget: the cheapest model within it answers
    callers budget alice --daily none                  remove one limit
    callers budget ml-team --team --monthly 2000       a team's budget (every member's spend counts)
    callers budget alice --clear                       remove every limit (spend counters are kept)
    callers budget alice                               show limits and this day's and month's spend

Instances see a change within ``BUDGET_LIMITS_TTL_S`` (their limits cache).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from router.callers.budget_store import BudgetStore
from router.callers.budgets import NO_LIMITS, PERIODS, Counter, Limits, Scope, seconds_to_reset, usd
from router.settings import Settings, load_settings
from router.tables import ensure_table, open_service
from router.terminal import printable

_UNSET = "none"


def _usd(text: str) -> float | str:
    if text.lower() == _UNSET:
        return _UNSET
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a USD amount: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("a budget is a USD amount >= 0 (or 'none')")
    return value


def _tpm(text: str) -> int | str:
    if text.lower() == _UNSET:
        return _UNSET
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of tokens: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("--tpm is at least 1 (or 'none')")
    return value


def add_commands(subparsers: Any) -> None:
    """Add ``budget`` to the ``callers`` group, creating the group if no other module has."""
    callers = subparsers.choices.get("callers")
    if callers is None:
        callers = subparsers.add_parser("callers", help="callers and teams: identities, budgets, rate limits")
        callers.add_subparsers(dest="callers_command", required=True)
    group = next(a for a in callers._actions if isinstance(a, argparse._SubParsersAction))
    budget = group.add_parser("budget", help="set, clear or show a caller's or team's budget and rate limit")
    budget.add_argument(
        "name", help="the caller id (router key name, Entra app/object id) or, with --team, a team"
    )
    budget.add_argument(
        "--team", action="store_true", help="NAME is a team: its members' spend counts together"
    )
    budget.add_argument("--daily", type=_usd, metavar="USD", help="USD per UTC day ('none' removes it)")
    budget.add_argument("--monthly", type=_usd, metavar="USD", help="USD per UTC month ('none' removes it)")
    budget.add_argument("--tpm", type=_tpm, metavar="TOKENS", help="tokens per minute ('none' removes it)")
    budget.add_argument(
        "--on-budget", choices=("reject", "downgrade"), help="over budget: 429 or the cheapest model"
    )
    budget.add_argument("--clear", action="store_true", help="remove every limit (spend counters are kept)")
    budget.set_defaults(handler=run_budget)


def _changed(current: Limits, args: argparse.Namespace) -> Limits:
    values: dict[str, Any] = {}
    for field, given in (("daily_usd", args.daily), ("monthly_usd", args.monthly), ("tpm", args.tpm)):
        if given is not None:
            values[field] = None if given == _UNSET else given
    if args.on_budget is not None:
        values["on_budget"] = args.on_budget
    return replace(current, **values)


def run_budget(args: argparse.Namespace) -> int:
    scope: Scope = "team" if args.team else "caller"
    if args.team and args.tpm not in (None, _UNSET):
        print("error: --tpm is a per-caller limit; a team has none", file=sys.stderr)
        return 2
    editing = any(v is not None for v in (args.daily, args.monthly, args.tpm, args.on_budget))
    if args.clear and editing:
        print("error: --clear removes every limit; give it alone", file=sys.stderr)
        return 2
    print(asyncio.run(_budget(load_settings(), scope, args.name, args, editing)))
    return 0


async def _budget(
    settings: Settings, scope: Scope, name: str, args: argparse.Namespace, editing: bool
) -> str:
    async with open_service(settings) as service:
        table = await ensure_table(service, settings.BUDGETS_TABLE)

        async def get_table() -> Any:
            return table

        store = BudgetStore(get_table)
        limits = await store.read_limits(scope, name)
        if args.clear:
            if limits is not None:
                await store.delete_limits(scope, name)
            limits = None
        elif editing:
            limits = _changed(limits or NO_LIMITS, args)
            await store.write_limits(scope, name, limits)
        counter, _ = await store.read_counter(scope, name)
        return describe(scope, name, limits, counter, datetime.now(UTC))


def _money(limit: float | None) -> str:
    return "none" if limit is None else f"${limit:,.2f}"


def describe(scope: Scope, name: str, limits: Limits | None, counter: Counter, now: datetime) -> str:
    """Limits and this day's and month's spend, as the CLI prints them."""
    label = f"{scope} {printable(name)}"
    if limits is None:
        lines = [f"{label}: no budget or rate limit"]
    else:
        tpm = "none" if limits.tpm is None else f"{limits.tpm:,}"
        lines = [f"{label}: daily {_money(limits.daily_usd)}, monthly {_money(limits.monthly_usd)}, "
                 f"tpm {tpm}, on budget: {limits.on_budget}"]  # fmt: skip
    counter = counter.current(now)
    for period, title, key in zip(
        PERIODS, ("today", "this month"), (counter.day, counter.month), strict=True
    ):
        spent, reserved = counter.spent(period), counter.used(period) - counter.spent(period)
        line = f"  {title} ({key}): spent ${usd(spent):.6f}, reserved ${usd(reserved):.6f}"
        limit = limits.limit(period) if limits is not None else None
        if limit is not None:
            left = max(0.0, limit - usd(counter.used(period)))
            line += f", left ${left:.6f} (resets in {seconds_to_reset(now, period)} s)"
        lines.append(line)
    return "\n".join(lines)
