"""Backend choice per attempt: which of a model's deployments gets this call.

Pure rules over a health view (no I/O; the rng is injectable so tests pin every draw):

- the lowest ``priority`` group that has a usable backend wins (PTU = 1 before pay-as-you-go = 2);
- within it, a weighted random draw over the usable backends (``weight``);
- usable = not cooling down or behind an open circuit (``available``), not already tried by this request,
  and not out of capacity by its last response's ``x-ratelimit-remaining-*`` (``has_capacity``): fewer
  remaining tokens than this request's estimate (prompt + max output) or no remaining requests, until
  that window resets;
- when every healthy backend of the model is skipped for capacity alone, one attempt goes to the one with
  the most tokens left (``fullest_backend``) before the model chain moves on: the hint is a forecast
  (Azure sends no reset time, so the window is assumed), a different model is a different answer.

Health is kept per backend under ``backend_key``: a model's name when it has one backend (so a legacy
catalogue, the judge and the quality sampler keep their keys), else ``model|deployment@host``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from router.models.config import Backend
from router.upstream.ratelimit import SPILLOVER_HEADER, RateLimits, read_limits

if TYPE_CHECKING:
    from router.models.config import ModelConfig


class HealthView(Protocol):
    def available(self, name: str) -> bool: ...

    def has_capacity(self, name: str, demand_tokens: int) -> bool: ...

    def hint_tokens(self, name: str) -> float: ...


def backend_key(model: ModelConfig, backend: Backend) -> str:
    if len(model.backends) == 1:
        return model.name
    host = urlsplit(backend.endpoint).netloc if backend.endpoint else "default"
    return f"{model.name}|{backend.deployment}@{host}"  # no / \\ # ?: a valid Table RowKey


def choose_backend(
    model: ModelConfig,
    health: HealthView,
    demand_tokens: int,
    *,
    exclude: set[str] | frozenset[str] = frozenset(),
    rng: random.Random | None = None,
) -> Backend | None:
    """The backend for the next attempt at ``model``, or None when none is usable."""
    for group in _prepared(model).groups:
        usable = [
            b for b, key in group if key not in exclude and health.available(key)
            and health.has_capacity(key, demand_tokens)
        ]  # fmt: skip
        if usable:
            return _weighted(usable, rng or _RNG)
    return None


@dataclass(slots=True)
class _Prepared:
    """What the per-attempt choice needs of a model, computed once per catalogue model: its backends by
    priority with their health keys, and each backend's view of the model (per default endpoint)."""

    model: ModelConfig
    groups: list[list[tuple[Backend, str]]]
    keys: dict[int, str]  # id(backend) -> its health key
    views: dict[tuple[int, str | None], ModelConfig] = field(default_factory=dict)


_PREPARED: dict[int, _Prepared] = {}
_PREPARED_MAX = 4096  # catalogue refreshes make new model objects: the cache is bounded, then rebuilt


def _prepared(model: ModelConfig) -> _Prepared:
    entry = _PREPARED.get(id(model))
    if entry is not None and entry.model is model:
        return entry
    by_priority: dict[int, list[tuple[Backend, str]]] = {}
    for b in model.backends:
        by_priority.setdefault(b.priority, []).append((b, backend_key(model, b)))
    keys = {id(b): k for group in by_priority.values() for b, k in group}
    entry = _Prepared(model, [by_priority[p] for p in sorted(by_priority)], keys)
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(model)] = entry
    return entry


def fullest_backend(
    model: ModelConfig, health: HealthView, *, exclude: set[str] | frozenset[str] = frozenset()
) -> Backend | None:
    """When every healthy backend of ``model`` is skipped for capacity alone: the one whose hint has the
    most tokens left (a hint is a forecast, and another model is a different answer), or None."""
    candidates = [
        (health.hint_tokens(key), -b.priority, b)
        for group in _prepared(model).groups
        for b, key in group
        if key not in exclude and health.available(key)
    ]
    return max(candidates, key=lambda c: (c[0], c[1]))[2] if candidates else None


def first_backend(model: ModelConfig) -> Backend:
    """The backend an "every one is cooling down" last-resort attempt goes to: the first of the lowest
    priority."""
    return min(model.backends, key=lambda b: b.priority)


def _weighted(backends: list[Backend], rng: random.Random) -> Backend:
    if len(backends) == 1:
        return backends[0]
    point = rng.random() * sum(b.weight for b in backends)
    for b in backends:
        point -= b.weight
        if point < 0:
            return b
    return backends[-1]


_RNG = random.Random()


@dataclass(slots=True)
class Target:
    """One attempt's destination, handed to the pipeline's ``call``: ``model`` is the catalogue model as
    this backend serves it (its ``deployment``, ``endpoint`` and single backend), so the call sites and
    the cost record read the backend from the model they already use. ``headers`` go with the request
    (Azure's spillover header); ``on_headers`` reads the response's capacity headers."""

    model: ModelConfig
    backend: Backend
    key: str
    source: ModelConfig  # the catalogue model, with all its backends
    headers: Mapping[str, str] | None = None
    limits: RateLimits | None = field(default=None)

    def on_headers(self, headers: Any) -> None:
        self.limits = read_limits(headers)

    def served(self) -> ModelConfig:
        """The model as the deployment that answered: the spillover deployment when Azure spilled."""
        limits = self.limits
        spilled = limits is not None and limits.spilled_from is not None and limits.deployment
        if not spilled or limits is None or limits.deployment == self.backend.deployment:
            return self.model
        assert limits.deployment is not None
        backend = Backend(deployment=limits.deployment, endpoint=self.model.endpoint)
        return self.model.model_copy(update={"deployment": limits.deployment, "backends": (backend,)})


def target_for(model: ModelConfig, backend: Backend, default_endpoint: str | None) -> Target:
    prepared = _prepared(model)
    key = prepared.keys.get(id(backend)) or backend_key(model, backend)
    view = prepared.views.get((id(backend), default_endpoint))
    if view is None:
        endpoint = backend.endpoint or model.endpoint or default_endpoint
        endpoint = endpoint.rstrip("/") if endpoint else None
        view = model.model_copy(
            update={"deployment": backend.deployment, "endpoint": endpoint, "backends": (backend,)}
        )
        prepared.views[(id(backend), default_endpoint)] = view
    spill = backend.spillover_deployment
    headers = {SPILLOVER_HEADER: spill} if spill else None
    return Target(view, backend, key, model, headers)


Call = Callable[[Target, float], Any]
