"""``python -m router``: serve the app, manage the model catalogue, and the offline tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from router.callers import budget_cli
from router.callers import cli as callers_cli
from router.errors import SettingsError
from router.evaluation import cli as evaluation_cli
from router.logs import configure_logging
from router.models.config import Backend, cheapest_first, load_file
from router.models.store import read_models, upsert_models
from router.quality import cli as quality_cli
from router.reports import cli as reports_cli
from router.settings import Settings, load_settings
from router.terminal import printable


def _settings() -> Settings:
    return load_settings()


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn  # the server and the app's imports are only paid for by `serve`

    from router.api.app import create_app

    configure_logging()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def run_models_load(args: argparse.Namespace) -> int:
    """Refuses the whole file when one entry is invalid, an endpoint outside the policy included: the
    router would skip that entry anyway, so loading it would only hide the mistake."""
    settings = _settings()
    try:
        models = load_file(args.file, settings.endpoint_policy)
    except ValidationError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # not JSON at all
        print(f"error: {args.file}: not valid JSON: {exc}", file=sys.stderr)
        return 2
    asyncio.run(upsert_models(settings, models))
    print(f"upserted {len(models)} model config(s) into table {settings.MODELS_TABLE!r}")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    models = asyncio.run(read_models(_settings()))
    if args.json:
        print(json.dumps([m.model_dump() for m in models], indent=2))
        return 0
    row = "{:<24} {:<24} {:>10} {:>10} {:>10} {:>10} {:>7} {:>6} {:<3} {}"
    head = ("name", "deployment", "$/1k", "in $/1k", "cached $/1k", "out $/1k", "lat ms", "max_cx", "on",
            "reasoning")  # fmt: skip
    print(row.format(*head))
    for m in sorted(models, key=cheapest_first):
        print(
            row.format(
                printable(m.name),
                printable(m.deployment),
                f"{m.cost_per_1k_tokens:.6f}",
                f"{m.input_price:.6f}",
                f"{m.cached_input_price:.6f}",
                f"{m.output_price:.6f}",
                f"{m.avg_latency_ms:.0f}",
                f"{m.max_complexity:.2f}",
                "y" if m.enabled else "n",
                "y" if m.reasoning else "n",
            )
        )
        if m.declares_backends:
            for b in sorted(m.backends, key=lambda b: (b.priority, b.deployment)):
                print(f"    backend {_backend_line(b)}")
    return 0


def _backend_line(b: Backend) -> str:
    parts = [printable(b.deployment), f"priority={b.priority}", f"weight={b.weight:g}"]
    parts.append("provisioned" if b.provisioned else "pay-as-you-go")
    if b.endpoint:
        parts.append(f"endpoint={printable(b.endpoint)}")
    if b.spillover_deployment:
        parts.append(f"spillover={printable(b.spillover_deployment)}")
    if b.tokens_per_minute:
        parts.append(f"tpm={b.tokens_per_minute}")
    return " ".join(parts)


def run_dev(args: argparse.Namespace) -> int:
    from router.dev.run import run  # dev-only: Azurite, the simulator

    return run(host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m router", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API with uvicorn (settings from the environment)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.set_defaults(handler=run_serve)

    dev = sub.add_parser("dev", help="local run: Azurite, sample models, simulator if no endpoint, the API")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=7071)
    dev.set_defaults(handler=run_dev)

    models = sub.add_parser("models", help="the model catalogue in Table Storage")
    msub = models.add_subparsers(dest="models_command", required=True)
    load = msub.add_parser("load", help="upsert model configs from a JSON file")
    load.add_argument("file")
    load.set_defaults(handler=run_models_load)
    lst = msub.add_parser("list", help="list the model configs in the table")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=run_models_list)

    # Subcommands that live with their feature.
    evaluation_cli.add_commands(sub)
    reports_cli.add_commands(sub)
    quality_cli.add_commands(sub)
    callers_cli.add_commands(sub)
    budget_cli.add_commands(sub)  # adds `budget` to the `callers` group (created if absent)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
