"""``python -m router costs report|rollup|replay``: the savings report in a terminal, read straight from
the table with your own identity (``DefaultAzureCredential`` against ``TABLES_ENDPOINT``, or Azurite
locally); ``replay`` stores the records a log holds in full (``router.costs.replay``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

from router.costs import replay
from router.errors import RouterError
from router.quality import report as quality_report
from router.quality.cli import load_samples
from router.reports.aggregate import GROUP_BY, build_report
from router.reports.period import Period, parse_period
from router.reports.store import Sources, load_cube
from router.settings import Settings, load_settings
from router.tables import ensure_table, open_service
from router.terminal import printable


def add_commands(subparsers: Any) -> None:
    costs = subparsers.add_parser("costs", help="cost and savings reports over the cost records")
    sub = costs.add_subparsers(dest="costs_command", required=True)

    report = sub.add_parser("report", help="spend, baseline and savings over a date range (UTC days)")
    _range_args(report)
    report.add_argument("--by", choices=GROUP_BY, default="model", help="group rows by (default: model)")
    report.add_argument("--json", action="store_true", help="the /api/costs JSON instead of a table")
    report.add_argument(
        "--no-rollups", action="store_true", help="scan every record; neither read nor write roll-ups"
    )
    report.set_defaults(handler=run_report)

    rollup = sub.add_parser("rollup", help="store daily roll-ups for the closed days in a range")
    _range_args(rollup)
    rollup.add_argument("--rebuild", action="store_true", help="recompute days that already have one")
    rollup.set_defaults(handler=run_rollup)

    replay.add_command(sub)


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: to - 6 days)")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, inclusive (default: today)")


def _period(args: argparse.Namespace, settings: Settings) -> Period:
    return parse_period(args.start, args.end, max_days=settings.REPORT_MAX_DAYS)


async def _load(settings: Settings, period: Period, *, use_rollups: bool, store: bool) -> tuple[Any, Sources]:
    """A short-lived client with the caller's identity. Storing roll-ups is best effort: a reader without
    write rights still gets an exact report (from a live scan)."""
    from azure.core.exceptions import HttpResponseError

    async with open_service(settings) as service:
        rollups = service.get_table_client(settings.COSTS_ROLLUP_TABLE)
        if store:
            try:
                rollups = await ensure_table(service, settings.COSTS_ROLLUP_TABLE)
            except HttpResponseError:
                store = False
        return await load_cube(
            service.get_table_client(settings.COSTS_TABLE),
            rollups,
            period,
            delay=timedelta(minutes=settings.REPORT_ROLLUP_DELAY_MINUTES),
            use_rollups=use_rollups,
            store_rollups=store,
        )


def _settings_and_period(args: argparse.Namespace) -> tuple[Settings, Period] | None:
    """Settings from the environment and the validated ``--from``/``--to``; None after printing why not."""
    settings = load_settings()
    try:
        return settings, _period(args, settings)
    except RouterError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None


def run_report(args: argparse.Namespace) -> int:
    loaded = _settings_and_period(args)
    if loaded is None:
        return 2
    settings, period = loaded
    use = not args.no_rollups
    cube, sources = asyncio.run(_load(settings, period, use_rollups=use, store=use))
    spent = quality_report.overhead(asyncio.run(load_samples(settings, period)))  # as /api/costs does
    report = quality_report.charge_report(build_report(cube, period.start, period.end, args.by), spent)
    report["source"] = sources.to_dict()
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def run_rollup(args: argparse.Namespace) -> int:
    loaded = _settings_and_period(args)
    if loaded is None:
        return 2
    settings, period = loaded
    _, sources = asyncio.run(_load(settings, period, use_rollups=not args.rebuild, store=True))
    print(
        f"{period.start}..{period.end}: stored {sources.stored_days} day roll-up(s), "
        f"{sources.rollup_days} already stored, "
        f"{sources.scanned_days - sources.stored_days} day(s) still open"
    )
    return 0


def _usd(v: float) -> str:
    return f"-${-v:,.6f}" if v < 0 else f"${v:,.6f}"


def _opt(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def format_report(report: dict[str, Any]) -> str:
    """The report as a terminal table (dollars to the micro-dollar, latency in ms)."""
    t = report["totals"]
    src = report.get("source", {})
    lines = [
        f"Cost and savings {report['from']} .. {report['to']} ({report['days']} days, UTC)",
        f"source: {src.get('rollup_days', 0)} day(s) from roll-ups, {src.get('scanned_days', 0)} scanned "
        f"({src.get('rows_scanned', 0):,} records)",
        "",
        f"calls           {t['calls']:,} (ok {t['ok']:,}, errors {t['errors']:,}; "
        f"{t['fallbacks']:,} fallbacks on {t['calls_with_fallbacks']:,} calls)",
        f"tokens          {t['prompt_tokens']:,} prompt ({t['cached_tokens']:,} cached) / "
        f"{t['completion_tokens']:,} completion ({t['reasoning_tokens']:,} reasoning)",
        f"judge calls     {t['judge_calls']:,} ({t['judge_prompt_tokens']:,} prompt / "
        f"{t['judge_completion_tokens']:,} completion tokens)",
        f"spend           {_usd(t['spend_usd'])}  answering models",
        f"judge overhead  {_usd(t['overhead_usd'])}",
        *([f"quality checks  {_usd(t['quality_check_usd'])}"] if t.get("quality_check_usd") else []),
        f"total spend     {_usd(t['total_spend_usd'])}",
        f"baseline        {_usd(t['baseline_usd'])}  same tokens on the most capable model",
        f"savings         {_usd(t['savings_usd'])}  ({_opt(t['savings_pct'], '.2f')}% of baseline)",
        f"prompt cache    {_usd(t['cache_savings_usd'])}  saved: cached tokens at the cached input price",
        f"latency         p50 {_opt(t['latency_p50_ms'], ',.1f')} ms  "
        f"p95 {_opt(t['latency_p95_ms'], ',.1f')} ms  (ok calls, nearest-rank, within 1%)",
    ]
    by = report["group_by"]
    if by and report["groups"]:
        lines.append("")
        lines.extend(_group_table(by, report["groups"]))
    return "\n".join(lines)


def _group_table(by: str, groups: list[dict[str, Any]]) -> list[str]:
    cols = [
        (by, "<"),
        ("calls", ">"),
        ("share", ">"),
        ("errors", ">"),
        ("fallbacks", ">"),
        ("cached tok", ">"),
        ("spend", ">"),
        ("judge", ">"),
        ("total", ">"),
        ("baseline", ">"),
        ("savings", ">"),
        ("sav%", ">"),
        ("p50 ms", ">"),
        ("p95 ms", ">"),
    ]
    rows = [
        [
            printable(g[by]),  # table-sourced: a model name, an api, a day
            f"{g['calls']:,}",
            f"{g['share_of_calls'] * 100:.1f}%",
            f"{g['errors']:,}",
            f"{g['fallbacks']:,}",
            f"{g['cached_tokens']:,}",
            _usd(g["spend_usd"]),
            _usd(g["overhead_usd"]),
            _usd(g["total_spend_usd"]),
            _usd(g["baseline_usd"]),
            _usd(g["savings_usd"]),
            _opt(g["savings_pct"], ".2f"),
            _opt(g["latency_p50_ms"], ",.1f"),
            _opt(g["latency_p95_ms"], ",.1f"),
        ]
        for g in groups
    ]
    widths = [max(len(name), *(len(r[i]) for r in rows)) for i, (name, _) in enumerate(cols)]
    lines = ["  ".join(f"{name:{a}{w}}" for (name, a), w in zip(cols, widths, strict=True))]
    for r in rows:
        lines.append("  ".join(f"{v:{a}{w}}" for v, (_, a), w in zip(r, cols, widths, strict=True)))
    return lines
