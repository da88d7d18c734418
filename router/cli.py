"""``python -m router``: serve the app, manage the model catalogue, and the offline tools."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router.settings import Settings


def _settings() -> Settings:
    from router.settings import load_settings

    return load_settings()


def configure_logging() -> None:
    """The router's own lines at INFO; the SDKs' per-request HTTP logging only when something is wrong."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for noisy in ("azure", "httpx2", "httpcore2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from router.api import create_app

    configure_logging()
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def run_models_load(args: argparse.Namespace) -> int:
    from router.model_config import load_file
    from router.model_store import upsert_models

    models = load_file(args.file)
    settings = _settings()
    asyncio.run(upsert_models(settings, models))
    print(f"upserted {len(models)} model config(s) into table {settings.MODELS_TABLE!r}")
    return 0


def run_models_list(args: argparse.Namespace) -> int:
    from router.model_store import read_models

    models = asyncio.run(read_models(_settings()))
    if args.json:
        print(json.dumps([m.model_dump() for m in models], indent=2))
        return 0
    row = "{:<24} {:<24} {:>10} {:>10} {:>10} {:>7} {:>6} {}"
    print(row.format("name", "deployment", "$/1k", "in $/1k", "out $/1k", "lat ms", "max_cx", "on"))
    for m in sorted(models, key=lambda m: (m.cost_per_1k_tokens, m.name)):
        print(
            row.format(
                m.name,
                m.deployment,
                f"{m.cost_per_1k_tokens:.6f}",
                f"{m.input_price:.6f}",
                f"{m.output_price:.6f}",
                f"{m.avg_latency_ms:.0f}",
                f"{m.max_complexity:.2f}",
                "y" if m.enabled else "n",
            )
        )
    return 0


def run_dev(args: argparse.Namespace) -> int:
    from router.devrun import run

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

    for module in _PLUGINS:
        try:
            mod = __import__(module, fromlist=["add_commands"])
        except ImportError:
            continue
        mod.add_commands(sub)
    return parser


# Subcommands that live with their feature (evaluation, reports); imported only to build the parser.
_PLUGINS = ("router.evaluation.cli", "router.reports.cli")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from router.settings import SettingsError

    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
