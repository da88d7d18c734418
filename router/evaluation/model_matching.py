"""Matching a model catalogue to the models measured in a data file, for calibration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from router.errors import DataError
from router.evaluation.calibration import Tier
from router.evaluation.data import Record, resolve_model
from router.models.config import ModelConfig, cheapest_first
from router.pipeline.route import most_capable


@dataclass(frozen=True, slots=True)
class Matching:
    mapping: dict[str, str]  # catalogue model name -> data model
    unmapped: list[str]  # enabled catalogue models with no data: they cannot be calibrated
    notes: list[str]


def parse_map(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, data_model = item.partition("=")
        if not sep or not name or not data_model:
            raise DataError(f"--map {item!r}: expected CATALOGUE_MODEL=DATA_MODEL")
        out[name] = data_model
    return out


def match(
    models: Sequence[ModelConfig],
    data_models: Sequence[str],
    explicit: Mapping[str, str],
    strong: str,
    weak: str,
) -> Matching:
    """Explicit ``--map`` first, then same name or deployment; if that leaves fewer than two models,
    the cheapest enabled model stands for ``weak`` and the most capable for ``strong``."""
    enabled = [m for m in models if m.enabled]
    known = {m.name for m in models}
    for name in explicit:
        if name not in known:
            raise DataError(f"--map: no model {name!r} in the catalogue")
    mapping: dict[str, str] = {}
    notes: list[str] = []
    for m in enabled:
        if m.name in explicit:
            mapping[m.name] = resolve_model(explicit[m.name], data_models)
            continue
        for candidate in (m.name, m.deployment):
            try:
                mapping[m.name] = resolve_model(candidate, data_models)
                break
            except DataError:
                pass
    if len(mapping) < 2 and len(enabled) >= 2:
        cheapest = min(enabled, key=cheapest_first)
        top = most_capable(enabled)
        if cheapest.name != top.name:
            for m, data_model in ((cheapest, weak), (top, strong)):
                if m.name not in mapping:
                    mapping[m.name] = resolve_model(data_model, data_models)
                    notes.append(f"{m.name} stands for {mapping[m.name]} (no --map given for it)")
    unmapped = [m.name for m in enabled if m.name not in mapping]
    return Matching(mapping, unmapped, notes)


def cost_source(mapping: Mapping[str, str], choice: str) -> str:
    """'data' when the catalogue names are the data's own models (your logged traffic)."""
    if choice != "auto":
        return choice
    return "data" if all(k == v for k, v in mapping.items()) else "catalogue"


def tiers(
    models: Sequence[ModelConfig], mapping: Mapping[str, str], records: Sequence[Record], costs: str
) -> list[Tier]:
    """One tier per mapped model, cheapest first. With catalogue costs, a query's cost on a model
    is its price times the query's size, taken from the priciest tier's measured cost on it."""
    chosen = sorted((m for m in models if m.name in mapping), key=cheapest_first)
    out = []
    size_model = mapping[chosen[-1].name] if chosen else ""
    for m in chosen:
        dm = mapping[m.name]
        quality = [r.scores[dm] for r in records]
        if costs == "data":
            cost = [r.cost[dm] for r in records]
        else:
            cost = [m.cost_per_1k_tokens * r.cost[size_model] for r in records]
        out.append(Tier(m.name, quality, cost))
    return out
