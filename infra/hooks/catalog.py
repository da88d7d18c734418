"""Build the router's model catalogue from the Azure OpenAI deployments that were provisioned.

Input: the ``deployments`` parameter of infra/main.bicep as JSON (azd exposes it to hooks as the
``AZURE_OPENAI_DEPLOYMENTS`` output) and the price table infra/hooks/model-prices.json, keyed by model.
Output: ``{"models": [...]}`` in the format of models.sample.json, one entry per catalogue model, ready for
``python -m router models load FILE``. A deployment's catalogue name is its own name unless it sets
``catalogModel``; deployments sharing one become that model's ``backends`` (``priority``: 1 for a
provisioned sku, 2 otherwise, unless set; ``weight``; ``provisioned`` from the sku; a standard one's
``tokens_per_minute`` from its capacity; ``spilloverDeployment``). A model with one plain deployment gets
no ``backends`` field (the schema before backends).

Standard library only, so it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("model-prices.json")
ROUTING_FIELDS = (
    "input_cost_per_1k",
    "cached_input_cost_per_1k",
    "output_cost_per_1k",
    "avg_latency_ms",
    "max_complexity",
)
# Copied when the price table has them: an unknown context window is not checked; reasoning defaults
# false; the capability fields default to permissive (router.models.config.ModelConfig).
OPTIONAL_FIELDS = (
    "context_window",
    "reasoning",
    "supports_tools",
    "supports_vision",
    "supports_json_schema",
    "max_output_tokens",
)


class CatalogError(ValueError):
    """The deployments and the price table do not line up."""


def blended_cost(input_cost: float, output_cost: float) -> float:
    """Routing price per 1k tokens: a 3:1 input:output blend."""
    return round((3 * input_cost + output_cost) / 4, 12)


def backend_of(deployment: Mapping[str, Any]) -> dict[str, Any]:
    provisioned = "Provisioned" in str(deployment.get("sku", ""))
    backend: dict[str, Any] = {
        "deployment": deployment["name"],
        "priority": int(deployment.get("priority", 1 if provisioned else 2)),
        "weight": int(deployment.get("weight", 1)),
        "provisioned": provisioned,
    }
    if not provisioned and isinstance(deployment.get("capacity"), int):
        backend["tokens_per_minute"] = deployment["capacity"] * 1000
    if deployment.get("spilloverDeployment"):
        backend["spillover_deployment"] = deployment["spilloverDeployment"]
    return backend


def _plain(deployment: Mapping[str, Any]) -> bool:
    keys = ("catalogModel", "priority", "weight", "spilloverDeployment")
    return not any(deployment.get(k) for k in keys) and "Provisioned" not in str(deployment.get("sku", ""))


def build_catalog(
    deployments: Sequence[Mapping[str, Any]], prices: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """One catalogue entry per catalogue model; raises CatalogError naming every problem."""
    entries = _entries(deployments, prices)
    groups: dict[str, list[tuple[Mapping[str, Any], dict[str, Any]]]] = {}
    for deployment, entry in entries:
        groups.setdefault(entry["name"], []).append((deployment, entry))
    models: list[dict[str, Any]] = []
    for name, members in groups.items():
        entry = dict(members[0][1])
        if len(members) > 1 or not _plain(members[0][0]):
            if len({m[0]["model"] for m in members}) > 1:
                raise CatalogError(f"catalogue model {name!r} is served by deployments of different models")
            backends = sorted((backend_of(d) for d, _ in members), key=lambda b: b["priority"])
            entry["backends"] = backends
            entry["deployment"] = backends[0]["deployment"]
        models.append(entry)
    return {"models": models}


def _entries(
    deployments: Sequence[Mapping[str, Any]], prices: Mapping[str, Mapping[str, Any]]
) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
    problems: list[str] = []
    models: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
    seen: set[str] = set()
    for index, deployment in enumerate(deployments):
        name = deployment.get("name")
        model = deployment.get("model")
        if not isinstance(name, str) or not name or not isinstance(model, str) or not model:
            problems.append(f"deployment #{index} needs a non-empty name and model: {dict(deployment)!r}")
            continue
        if name in seen:
            problems.append(f"deployment name {name!r} is used twice")
            continue
        seen.add(name)
        price = prices.get(model)
        if price is None:
            problems.append(f"model {model!r} (deployment {name!r}) has no entry in {PRICES_FILE.name}")
            continue
        missing = [field for field in ROUTING_FIELDS if field not in price]
        if missing:
            problems.append(f"{PRICES_FILE.name}: model {model!r} lacks {', '.join(missing)}")
            continue
        entry: dict[str, Any] = {"name": deployment.get("catalogModel") or name, "deployment": name}
        entry["cost_per_1k_tokens"] = blended_cost(price["input_cost_per_1k"], price["output_cost_per_1k"])
        entry.update({field: price[field] for field in ROUTING_FIELDS})
        entry.update({field: price[field] for field in OPTIONAL_FIELDS if field in price})
        models.append((deployment, entry))
    if problems:
        raise CatalogError("; ".join(problems))
    if not models:
        raise CatalogError("no deployments")
    return models


def load_prices(path: Path = PRICES_FILE) -> dict[str, dict[str, Any]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    models: dict[str, dict[str, Any]] = raw["models"]
    return models


def parse_deployments(text: str) -> list[dict[str, Any]]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CatalogError("deployments must be a JSON array of objects")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--deployments",
        help="deployments as JSON, or @FILE (default: $AZURE_OPENAI_DEPLOYMENTS)",
    )
    parser.add_argument("--prices", type=Path, default=PRICES_FILE, help="price table (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write the catalogue here (default: stdout)")
    args = parser.parse_args(argv)

    text = (
        args.deployments if args.deployments is not None else os.environ.get("AZURE_OPENAI_DEPLOYMENTS", "")
    )
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    if not text.strip():
        print("catalog: no deployments (set AZURE_OPENAI_DEPLOYMENTS or pass --deployments)", file=sys.stderr)
        return 2
    try:
        catalog = build_catalog(parse_deployments(text), load_prices(args.prices))
    except (CatalogError, json.JSONDecodeError, KeyError) as exc:
        print(f"catalog: {exc}", file=sys.stderr)
        return 1
    rendered = json.dumps(catalog, indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(rendered)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(rendered, encoding="utf-8")
        print(f"catalog: wrote {len(catalog['models'])} models to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
