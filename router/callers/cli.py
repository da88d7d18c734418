"""``python -m router callers create|list|revoke``: router keys in ``CALLERS_TABLE``, with your own
identity (``DefaultAzureCredential`` against ``TABLES_ENDPOINT``, or Azurite locally).

``create`` prints the new key once, alone on the last line of its output (so ``| tail -n 1`` captures
it); only its salted hash is stored, so a lost key is revoked and created again, never shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from router.callers.store import create_caller, list_callers, revoke_caller
from router.errors import CallerExists, UnknownCaller
from router.settings import Settings, load_settings
from router.tables import ensure_table, open_service
from router.terminal import printable


def add_commands(subparsers: Any) -> None:
    callers = subparsers.add_parser("callers", help="router keys and the callers (and teams) they name")
    sub = callers.add_subparsers(dest="callers_command", required=True)

    create = sub.add_parser("create", help="a new router key for NAME, printed once on the last line")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--team", metavar="T", help="the team its spend counts against (default: NAME)")
    create.set_defaults(handler=run_create)

    lst = sub.add_parser("list", help="callers, their teams and whether they have an active key (no secrets)")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=run_list)

    revoke = sub.add_parser("revoke", help="revoke NAME's key (refused within CALLERS_CACHE_TTL_S)")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(handler=run_revoke)


async def _with_table(settings: Settings, work: Any) -> Any:
    async with open_service(settings) as service:
        return await work(await ensure_table(service, settings.CALLERS_TABLE))


def run_create(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        key = asyncio.run(_with_table(settings, lambda t: create_caller(t, args.name, args.team)))
    except (CallerExists, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    team = args.team or args.name
    print(f"created caller {args.name!r} (team {team!r}) in table {settings.CALLERS_TABLE!r}.")
    print("Its key follows, shown this once (only a salted hash is stored):")
    print(key)
    return 0


def run_list(args: argparse.Namespace) -> int:
    rows = asyncio.run(_with_table(load_settings(), list_callers))
    if args.json:
        print(json.dumps([{"name": r.name, "team": r.team, "active": r.active, "created": r.created,
                           "revoked_at": r.revoked_at or None} for r in rows], indent=2))  # fmt: skip
        return 0
    line = "{:<32} {:<32} {:<8} {:<26} {}"
    print(line.format("name", "team", "key", "created", "revoked"))
    for r in rows:
        state = "active" if r.active else "revoked"
        print(line.format(printable(r.name), printable(r.team), state, printable(r.created),
                          printable(r.revoked_at)))  # fmt: skip
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        asyncio.run(_with_table(settings, lambda t: revoke_caller(t, args.name)))
    except (UnknownCaller, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"revoked the key of {args.name!r}; every instance refuses it within "
        f"{settings.CALLERS_CACHE_TTL_S:g} s (CALLERS_CACHE_TTL_S)"
    )
    return 0
