"""Backends per model (issue 18), the pure parts: the catalogue schema and its backward compatibility,
the per-attempt backend choice, the capacity hints on a fake clock, the header readers and the rule that
a shared write never shortens a cooldown."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from router.endpoint_policy import EndpointPolicy
from router.health import HealthBoard
from router.health.shared import combine_rows
from router.models.config import Backend, ModelConfig, load_file, parse_entities
from router.pipeline.backends import backend_key, choose_backend, target_for
from router.upstream.ratelimit import SPILLOVER_HEADER, read_limits

PRICES = {"cost_per_1k_tokens": 0.001, "avg_latency_ms": 500, "max_complexity": 1.0}


def model(*backends: dict[str, Any], **extra: Any) -> ModelConfig:
    return ModelConfig.model_validate({"name": "gpt", **PRICES, "backends": list(backends), **extra})


def board(now: list[float], **kw: Any) -> HealthBoard:
    return HealthBoard(circuit_failures=2, circuit_open_s=30, default_cooldown_s=10, refresh_s=1,
                       clock=lambda: now[0], **kw)  # fmt: skip


# -- the catalogue ------------------------------------------------------------------------------------
def test_an_old_row_without_backends_is_one_backend_and_is_stored_unchanged():
    old = {"PartitionKey": "models", "RowKey": "small", "deployment": "dep-small", **PRICES,
           "endpoint": "https://east.openai.azure.com/"}  # fmt: skip
    m = ModelConfig.from_entity(old)
    assert m.backends == (Backend(deployment="dep-small", endpoint="https://east.openai.azure.com"),)
    assert not m.declares_backends
    assert "backends" not in m.to_entity()  # a legacy model's row keeps the schema it had
    assert backend_key(m, m.backends[0]) == "small"  # health keyed by the model name, as before


def test_backends_round_trip_through_the_table_as_a_json_string():
    west = "https://w.openai.azure.com"
    m = model({"deployment": "ptu", "provisioned": True, "tokens_per_minute": 1000},
              {"deployment": "payg", "priority": 2, "weight": 3, "endpoint": west})  # fmt: skip
    assert m.deployment == "ptu"  # the primary defaults to the first of the lowest priority
    entity = m.to_entity()
    assert isinstance(entity["backends"], str)
    second = {"deployment": "payg", "endpoint": west, "priority": 2, "weight": 3.0}
    assert json.loads(entity["backends"])[1] == second
    assert ModelConfig.from_entity(entity) == m


@pytest.mark.parametrize(
    ("backends", "field"),
    [
        ("[{", "backends: not valid JSON"),
        ('[{"priority": 1}]', "backends.0.deployment"),
        ('{"deployment": "x"}', "backends: must be a JSON array"),
        ('[{"deployment": "x", "weight": 0}]', "backends.0.weight"),
        ('[{"deployment": "x", "colour": "red"}]', "backends.0.colour"),
        ('[{"deployment": "../x"}]', "backends.0.deployment"),
    ],
)
def test_a_bad_backends_value_is_an_error_naming_the_field(backends: str, field: str):
    entity = {"RowKey": "gpt", **PRICES, "backends": backends}
    with pytest.raises(ValidationError) as info:
        ModelConfig.from_entity(entity)
    assert field in str(info.value)
    warnings: list[str] = []
    ok = {"RowKey": "ok", "deployment": "d", **PRICES}
    got = parse_entities([entity, ok], lambda fmt, *a: warnings.append(fmt % a))
    assert [m.name for m in got] == ["ok"]  # the bad row is skipped and logged, as the catalogue does
    assert "'gpt'" in warnings[0] and "backends" in warnings[0]


def test_every_backend_endpoint_passes_the_allowlist():
    policy = EndpointPolicy((".openai.azure.com",), allow_loopback=False)
    entity = {"RowKey": "gpt", **PRICES, "backends": json.dumps(
        [{"deployment": "a"}, {"deployment": "b", "endpoint": "https://evil.example.com"}])}  # fmt: skip
    with pytest.raises(ValidationError) as info:
        ModelConfig.from_entity(entity, policy)
    assert "backends.1.endpoint" in str(info.value)


def test_a_top_level_deployment_must_be_one_of_the_backends(tmp_path):
    with pytest.raises(ValidationError, match="deployment: must be one of the backends"):
        model({"deployment": "a"}, deployment="b")
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [{"name": "gpt", **PRICES, "backends": [{"weight": 1}]}]}))
    with pytest.raises(ValidationError, match=r"backends\.0\.deployment"):
        load_file(path)


# -- the choice ---------------------------------------------------------------------------------------
class View:
    def __init__(self, down: set[str] = frozenset(), full: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.down, self.full = down, full

    def available(self, name: str) -> bool:
        return name not in self.down

    def has_capacity(self, name: str, demand_tokens: int) -> bool:
        return name not in self.full


TWO_TIERS = model({"deployment": "ptu", "priority": 1}, {"deployment": "a", "priority": 2, "weight": 3},
                  {"deployment": "b", "priority": 2, "weight": 1})  # fmt: skip
KEY = {b.deployment: backend_key(TWO_TIERS, b) for b in TWO_TIERS.backends}


def test_the_lowest_priority_group_with_a_usable_backend_wins():
    assert choose_backend(TWO_TIERS, View(), 100).deployment == "ptu"  # type: ignore[union-attr]
    assert choose_backend(TWO_TIERS, View(down={KEY["ptu"]}), 100).deployment in ("a", "b")  # type: ignore[union-attr]
    assert choose_backend(TWO_TIERS, View(down=set(KEY.values())), 100) is None


def test_weighted_random_within_a_priority_with_a_seeded_rng():
    rng = random.Random(7)
    picks = [choose_backend(TWO_TIERS, View(down={KEY["ptu"]}), 1, rng=rng) for _ in range(4000)]
    share_a = sum(1 for p in picks if p is not None and p.deployment == "a") / len(picks)
    assert 0.72 < share_a < 0.78  # weight 3 : 1
    again = random.Random(7)
    assert [choose_backend(TWO_TIERS, View(down={KEY["ptu"]}), 1, rng=again) for _ in range(4000)] == picks


def test_capacity_and_tried_backends_are_skipped():
    full = View(full={KEY["ptu"]})
    assert choose_backend(TWO_TIERS, full, 100, exclude={KEY["a"]}).deployment == "b"  # type: ignore[union-attr]
    assert choose_backend(TWO_TIERS, View(), 100, exclude=set(KEY.values())) is None


def test_target_names_the_backend_and_sends_the_spillover_header():
    m = model({"deployment": "ptu", "provisioned": True, "spillover_deployment": "std"})
    t = target_for(m, m.backends[0], "https://res.openai.azure.com/")
    assert (t.model.deployment, t.model.endpoint) == ("ptu", "https://res.openai.azure.com")
    assert t.headers == {SPILLOVER_HEADER: "std"}
    t.on_headers({"x-ms-deployment-name": "std", "x-ms-spillover-from-deployment": "ptu"})
    served = t.served()
    assert served.deployment == "std" and not served.backends[0].provisioned


# -- capacity hints -----------------------------------------------------------------------------------
def test_fewer_remaining_tokens_than_the_estimate_skips_until_the_window_resets():
    now = [1000.0]
    b = board(now, window_s=60)
    b.observe("k", remaining_tokens=500, remaining_requests=10)
    assert b.has_capacity("k", 500) and not b.has_capacity("k", 501)
    now[0] += 59.9
    assert not b.has_capacity("k", 501)
    now[0] += 0.2
    assert b.has_capacity("k", 10**6)  # the assumed 60 s window is over


def test_zero_remaining_requests_skips_and_a_reset_header_sets_the_window():
    now = [0.0]
    b = board(now, window_s=60)
    b.observe("k", remaining_tokens=10**6, remaining_requests=0, reset_s=2.5)
    assert not b.has_capacity("k", 1)
    now[0] = 2.6
    assert b.has_capacity("k", 1)


def test_a_sent_request_spends_from_the_hint():
    now = [0.0]
    b = board(now)
    b.observe("k", remaining_tokens=1000, remaining_requests=5)
    b.reserve("k", 600)
    assert not b.has_capacity("k", 600) and b.has_capacity("k", 400)


def test_requests_sent_after_an_answered_one_are_taken_off_its_remaining_count():
    now = [0.0]
    b = board(now)
    first = b.reserve("k", 100)
    b.reserve("k", 100)  # sent after the first, still in flight: Azure's count for the first lacks it
    b.reserve("k", 100)
    b.observe("k", remaining_tokens=450, remaining_requests=None, ticket=first)
    assert b.has_capacity("k", 250) and not b.has_capacity("k", 251)  # 450 - 2 x 100


def test_a_low_hint_is_shared_at_most_once_per_refresh_and_merged_when_newer():
    now = [100.0]
    a, other = board(now, share_below_tokens=1000), board(now, share_below_tokens=1000)
    assert not a.observe("k", remaining_tokens=5000, remaining_requests=3)  # plenty left: not news
    assert a.observe("k", remaining_tokens=10, remaining_requests=3)
    assert not a.observe("k", remaining_tokens=5, remaining_requests=3)  # within the refresh interval
    state = a.get("k")
    assert state is not None
    row = {"RowKey": "k", "cooldown_until": 0.0, "hint_until": state.hint_until, "hint_at": state.hint_at,
           "hint_tokens": state.hint_tokens, "hint_requests": state.hint_requests}  # fmt: skip
    other.merge([row])
    assert not other.has_capacity("k", 100)
    now[0] += 1
    other.observe("k", remaining_tokens=10**6, remaining_requests=100)  # a newer observation here wins
    other.merge([row])
    assert other.has_capacity("k", 100)


def test_a_shared_write_never_shortens_a_cooldown_and_keeps_the_newer_hint():
    stored = {"cooldown_until": 2000.0, "reason": "429, cooldown 60s", "hint_at": 50.0, "hint_until": 99.0,
              "hint_tokens": 1}  # fmt: skip
    new = {"RowKey": "k", "cooldown_until": 1500.0, "reason": "429, cooldown 5s", "hint_at": 10.0,
           "hint_until": 70.0, "hint_tokens": 9}  # fmt: skip
    out = combine_rows(stored, new)
    assert out["cooldown_until"] == 2000.0 and out["reason"] == "429, cooldown 60s"
    assert (out["hint_at"], out["hint_tokens"]) == (50.0, 1)
    later = combine_rows(stored, {**new, "cooldown_until": 2500.0, "hint_at": 60.0})
    assert later["cooldown_until"] == 2500.0 and later["hint_tokens"] == 9  # a later one extends it


def test_a_new_failure_extends_never_shortens_a_local_cooldown():
    now = [0.0]
    b = board(now)
    b.on_failure("k", "http_429", 60)
    b.on_failure("k", "http_429", 5)
    assert b.cooldown_remaining("k") == 60


# -- headers ------------------------------------------------------------------------------------------
def test_rate_limit_headers_as_azure_sends_them():
    limits = read_limits({"x-ratelimit-remaining-tokens": "19913", "x-ratelimit-remaining-requests": "19"})
    assert (limits.remaining_tokens, limits.remaining_requests, limits.reset_s) == (19913, 19, None)
    assert (
        read_limits({"x-ratelimit-reset-tokens": "1m30s", "x-ratelimit-reset-requests": "250ms"}).reset_s
        == 90
    )
    assert read_limits({"x-ratelimit-reset-tokens": "2.5"}).reset_s == 2.5
    junk = read_limits({"x-ratelimit-remaining-tokens": "-3", "x-ratelimit-reset-tokens": "soon"})
    assert (junk.remaining_tokens, junk.reset_s) == (None, None)


def test_when_every_backend_is_short_by_its_hint_one_attempt_goes_to_the_fullest_before_the_chain():
    from router.health import SharedHealth
    from router.pipeline.execute import ExecutionPolicy, _Walk

    now = [0.0]
    health = SharedHealth(board(now), instance_id="t")
    other = ModelConfig.model_validate({"name": "other", "deployment": "o", **PRICES})
    for deployment, left in (("ptu", 50), ("a", 90), ("b", 10)):
        health.board.observe(KEY[deployment], remaining_tokens=left, remaining_requests=None)
    walk = _Walk([TWO_TIERS, other], ExecutionPolicy(health, 30.0, "https://x.openai.azure.com"), 100)
    target = walk.next_target()
    assert target is not None and target.backend.deployment == "a"  # the most tokens left, same model
    walk.tried.add("gpt")
    walk.tried_backends.add(target.key)
    walk.current = TWO_TIERS
    target = walk.next_target()
    assert target is not None and target.model.name == "other"  # once per model: then the chain
