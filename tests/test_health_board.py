"""The health board's rules, on a fake clock (pure logic; the shared-table path is in test_reliability)."""

from __future__ import annotations

from router.health import HealthBoard
from router.upstream.errors import retry_after_seconds


def board(now: list[float]) -> HealthBoard:
    return HealthBoard(
        circuit_failures=2, circuit_open_s=30, default_cooldown_s=10, refresh_s=1, clock=lambda: now[0]
    )


def test_a_late_success_does_not_end_a_retry_after_cooldown():
    now = [1000.0]
    b = board(now)
    b.on_failure("m", "http_429", 20)
    b.on_success("m")  # a request that started before the 429 comes back fine
    assert not b.try_acquire("m")
    now[0] += 21
    assert b.try_acquire("m")


def test_circuit_opens_then_one_probe_then_closes():
    now = [0.0]
    b = board(now)
    b.on_failure("m", "http_500")
    assert b.try_acquire("m")  # one failure is not enough
    b.on_failure("m", "http_500")
    assert not b.try_acquire("m")
    now[0] = 31
    assert b.try_acquire("m")  # the half-open probe
    assert not b.try_acquire("m")  # only one at a time
    b.on_success("m")
    assert b.try_acquire("m") and b.try_acquire("m")
    assert b.snapshot() == {}


def test_a_missing_deployment_opens_the_circuit_at_once_and_is_probed_later():
    now = [0.0]
    b = board(now)
    b.on_failure("m", "deployment_not_found")  # one is enough: retrying will not create it
    assert not b.try_acquire("m")
    now[0] = 31
    assert b.try_acquire("m")  # the half-open probe: it may have been created since
    b.on_success("m")
    assert b.snapshot() == {}


def test_429_without_retry_after_uses_the_default_and_is_capped():
    now = [0.0]
    b = board(now)
    b.on_failure("m", "http_429", None)
    assert 9.9 < b.cooldown_remaining("m") <= 10
    b.on_failure("n", "http_429", 10**9)
    assert b.cooldown_remaining("n") == 300  # max_cooldown_s (COOLDOWN_MAX_S) defaults to 300


def test_shared_rows_beyond_the_cap_are_ignored_and_expired_rows_count_for_nothing():
    now = [1000.0]
    b = board(now)
    rows = [
        {"RowKey": "far", "cooldown_until": now[0] + 10**9},  # no instance writes this
        {"RowKey": "near", "cooldown_until": now[0] + 60},
        {"RowKey": "gone", "cooldown_until": now[0] - 1},
        {"RowKey": "junk", "cooldown_until": "soon"},
    ]
    for _ in range(3):  # refresh after refresh: a clamp relative to now would be a rolling ban
        b.merge(rows)
        now[0] += 1
    assert b.try_acquire("far") and b.try_acquire("gone") and b.try_acquire("junk")
    assert not b.try_acquire("near")
    now[0] += 60
    b.merge(rows)
    assert b.try_acquire("near")  # expired now, and re-merging the row changes nothing
    assert b.snapshot() == {}


def test_retry_after_header_forms():
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({"retry-after-ms": "nan"}) is None
    assert retry_after_seconds({}) is None
