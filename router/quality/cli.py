"""``python -m router quality report|export`` and ``calibrate --from-quality``: the quality samples in a
terminal, as evaluation data, and as thresholds. Read with your own identity, like ``costs report``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.errors import RouterError
from router.models.config import ModelConfig, load_file
from router.models.store import read_models, upsert_models
from router.quality.calibration import Threshold, export_records, thresholds
from router.quality.report import QUALITY_BY, build_quality_report, parse_quality_by
from router.quality.store import read_period
from router.reports.period import Period, parse_period
from router.settings import Settings, load_settings
from router.tables import open_service
from router.terminal import printable


def add_commands(subparsers: Any) -> None:
    quality = subparsers.add_parser(
        "quality", help="sampled comparisons of routed answers with the baseline's"
    )
    sub = quality.add_subparsers(dest="quality_command", required=True)
    report = sub.add_parser("report", help="wins, ties, losses and the win-or-tie rate over a date range")
    _range_args(report)
    report.add_argument("--by", choices=QUALITY_BY, default="model", help="group samples by (default: model)")
    report.add_argument("--json", action="store_true", help="the /api/quality JSON instead of a table")
    report.set_defaults(handler=run_report)
    export = sub.add_parser(
        "export", help="samples with text as routing-data JSONL (for eval, calibrate, train)"
    )
    _range_args(export)
    export.add_argument("--out", required=True, metavar="FILE.jsonl")
    export.set_defaults(handler=run_export)


def add_calibrate_args(parser: argparse.ArgumentParser) -> None:
    """``calibrate --from-quality [--from … --to …]``: thresholds from the quality table, in one step."""
    parser.add_argument(
        "--from-quality", action="store_true",
        help="calibrate on the quality samples (target = win-or-tie rate to keep) instead of --data",
    )  # fmt: skip
    _range_args(parser)


def or_from_quality(
    run_from_data: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """The ``calibrate`` handler: from the quality samples with ``--from-quality``, else from ``--data``."""

    def handler(args: argparse.Namespace) -> int:
        if args.from_quality:
            return run_calibrate(args)
        if not args.data:
            print("error: give --data FILE.jsonl, or --from-quality", file=sys.stderr)
            return 2
        return run_from_data(args)

    return handler


def _range_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="first day (default: to - 6 days)")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="last day, inclusive (default: today)")


async def load_samples(settings: Settings, period: Period) -> list[dict[str, Any]]:
    async with open_service(settings) as service:
        return await read_period(service.get_table_client(settings.QUALITY_TABLE), period)


def _loaded(args: argparse.Namespace) -> tuple[Settings, Period, list[dict[str, Any]]] | None:
    settings = load_settings()
    try:
        period = parse_period(args.start, args.end, max_days=settings.REPORT_MAX_DAYS)
    except RouterError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None
    return settings, period, asyncio.run(load_samples(settings, period))


def _rate(row: dict[str, Any]) -> str:
    if row["win_or_tie_rate"] is None:
        return f"{'–':>8} {'':>17}"
    lo, hi = row["ci95"]
    return f"{100 * row['win_or_tie_rate']:>7.2f}% [{100 * lo:6.2f}%, {100 * hi:6.2f}%]"


def format_report(r: dict[str, Any]) -> str:
    lines = [
        f"Quality {r['from']} .. {r['to']} ({r['days']} days, UTC)",
        f"samples     {r['samples']:,} ({r['judged']:,} judged, {r['judge_errors']:,} judge errors excluded)",
        f"verdicts    {r['wins']:,} wins / {r['ties']:,} ties / {r['losses']:,} losses (routed vs baseline)",
        f"win or tie  {_rate(r).strip()}  (Wilson 95%)",
        f"overhead    ${r['overhead_usd']:.6f}  (shadow ${r['shadow_usd']:.6f}, judge ${r['judge_usd']:.6f}; "
        f"{r['shadow_tokens']:,} + {r['judge_tokens']:,} tokens)",
    ]
    if r["groups"]:
        by = r["group_by"]
        lines += ["", f"{by:<16} {'samples':>8} {'wins':>6} {'ties':>6} {'losses':>6} {'errors':>6} "
                      f"{'win or tie  95% CI':>35} {'overhead':>12}"]  # fmt: skip
        for g in r["groups"]:
            name = printable(g[by])[:16]
            cost = f"${g['overhead_usd']:.6f}"
            lines.append(f"{name:<16} {g['samples']:>8,} {g['wins']:>6,} {g['ties']:>6,} {g['losses']:>6,} "
                         f"{g['judge_errors']:>6,} {_rate(g):>35} {cost:>12}")  # fmt: skip
    return "\n".join(lines)


def run_report(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    if loaded is None:
        return 2
    _, period, samples = loaded
    report = build_quality_report(samples, period, parse_quality_by(args.by))
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def run_export(args: argparse.Namespace) -> int:
    loaded = _loaded(args)
    if loaded is None:
        return 2
    _, period, samples = loaded
    records = export_records(samples)
    with Path(args.out).open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    skipped = len(samples) - len(records)
    note = f"; {skipped} sample(s) without text or verdict skipped (QUALITY_STORE_TEXT)" if skipped else ""
    print(f"wrote {len(records)} record(s) to {args.out} from {period.start}..{period.end}{note}")
    return 0


def format_thresholds(rows: list[Threshold], target: float) -> str:
    lines = [f"max_complexity for a win-or-tie rate of at least {100 * target:.1f}% (judged quality samples)",
             f"{'model':<24} {'samples':>8} {'win or tie':>10} {'old':>7} {'new':>9} {'kept':>6} "
             f"{'kept rate  95% CI':>30}"]  # fmt: skip
    for t in rows:
        rate = "–" if t.rate is None else f"{100 * t.rate:.1f}%"
        kept = "–" if t.kept_rate is None or t.ci95 is None else (
            f"{100 * t.kept_rate:.1f}% [{100 * t.ci95[0]:.1f}%, {100 * t.ci95[1]:.1f}%]")  # fmt: skip
        name = printable(t.name)[:24]
        lines.append(
            f"{name:<24} {t.samples:>8,} {rate:>10} {t.old:>7.4g} {t.new:>9.6g} {t.kept:>6,} {kept:>30}"
        )
    lines.append("Thresholds are only lowered: samples say nothing about queries a model was never given.")
    return "\n".join(lines)


def run_calibrate(args: argparse.Namespace) -> int:
    """``calibrate --from-quality``: print (and with ``--apply`` write) thresholds from the samples."""
    loaded = _loaded(args)
    if loaded is None:
        return 2
    settings, _, samples = loaded
    models: list[ModelConfig] = load_file(args.models) if args.models else asyncio.run(read_models(settings))
    rows = thresholds(models, samples, args.target_quality)
    if args.json:
        print(
            json.dumps(
                {"target_win_or_tie_rate": args.target_quality, "models": [t.to_dict() for t in rows]},
                indent=2,
            )
        )
    else:
        print(format_thresholds(rows, args.target_quality))
    if not args.apply:
        return 0
    by_name = {m.name: m for m in models}
    changed = [by_name[t.name].model_copy(update={"max_complexity": t.new}) for t in rows if t.new != t.old]
    if changed:
        asyncio.run(upsert_models(settings, changed))
    if not args.json:
        names = ", ".join(m.name for m in changed) or "no model (unchanged)"
        print(f"applied: wrote max_complexity for {names}")
    return 0
