"""Pure parts of the report: percentile accuracy, exact merging, the date range rules, and the HTML's
escaping. No I/O."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.errors import RouterError
from router.reports.aggregate import Summary, build_report, merge_cubes, percentile, summarize
from router.reports.dashboard import render
from router.reports.period import Period, parse_group_by, parse_period
from router.reports.store import day_slices, is_closed

latencies = st.lists(st.floats(min_value=0.5, max_value=600_000, allow_nan=False), min_size=1, max_size=300)


@settings(max_examples=200, deadline=None)
@given(latencies, st.sampled_from([0.5, 0.95, 0.99]))
def test_histogram_percentile_is_within_one_percent_of_exact_nearest_rank(values, q):
    s = Summary()
    for v in values:
        s.add({"status": "ok", "latency_ms": v})
    exact = sorted(values)[math.ceil(q * len(values)) - 1]
    assert percentile(s.latency, q) == pytest.approx(exact, rel=0.0101)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 3)), max_size=60), st.integers(1, 5)
)
def test_merging_any_split_equals_the_whole(calls, parts):
    rows = [
        {"model": f"m{k}", "cost_usd": c, "baseline_cost_usd": 2 * c, "classifier_cost_usd": c / 10,
         "latency_ms": 100 + k, "fallbacks": k}
        for c, k in calls
    ]  # fmt: skip
    whole = summarize("2025-01-01", rows)
    split = merge_cubes(summarize("2025-01-01", rows[i::parts]) for i in range(parts))
    assert {k: v.to_dict() for k, v in split.items()} == {k: v.to_dict() for k, v in whole.items()}
    assert {k: Summary.from_dict(v.to_dict()) for k, v in whole.items()} == whole


def test_float_noise_does_not_reach_the_report():
    cube = summarize("2025-01-01", [{"model": "a", "cost_usd": 0.1}, {"model": "a", "cost_usd": 0.2}])
    totals = build_report(cube, date(2025, 1, 1), date(2025, 1, 1), None)["totals"]
    assert totals["spend_usd"] == 0.3  # not 0.30000000000000004
    assert totals["savings_pct"] is None  # no baseline: no percentage rather than a division by zero
    assert totals["latency_p50_ms"] is not None


def test_old_rows_without_fallbacks_or_judge_columns_count_as_zero():
    cube = summarize("2025-01-01", [{"model": "a", "status": "ok", "latency_ms": 5, "cost_usd": 1}])
    t = build_report(cube, date(2025, 1, 1), date(2025, 1, 1), None)["totals"]
    assert (t["fallbacks"], t["judge_calls"], t["overhead_usd"], t["errors"]) == (0, 0, 0.0, 0)


def test_period_defaults_and_limits():
    today = date(2025, 3, 10)
    assert parse_period(None, None, max_days=92, today=today) == Period(date(2025, 3, 4), today)
    assert parse_period(None, "2025-01-07", max_days=92, today=today) == Period(
        date(2025, 1, 1), date(2025, 1, 7)
    )
    assert parse_period("2025-03-10", "2025-03-10", max_days=1, today=today).days == 1
    with pytest.raises(RouterError, match=r"^to: the range is 2 days; at most 1"):
        parse_period("2025-03-09", "2025-03-10", max_days=1, today=today)
    assert parse_period(None, "0001-01-03", max_days=92, today=today).start == date(1, 1, 1)
    assert parse_group_by(None) is None and parse_group_by("day") == "day"
    with pytest.raises(RouterError, match=r"^group_by: "):
        parse_group_by("Model")


def test_day_slices_cover_the_day_once_and_closed_days_wait_for_the_delay():
    from datetime import UTC, datetime, timedelta

    s = day_slices(date(2025, 3, 1), 4)
    assert s[0][0] is None and s[-1][1] is None
    assert [hi for _, hi in s[:-1]] == [lo for lo, _ in s[1:]]
    assert s[1][0] == f"{int(datetime(2025, 3, 1, 6, tzinfo=UTC).timestamp() * 1000):013d}"
    midnight = datetime(2025, 3, 2, tzinfo=UTC)
    assert not is_closed(date(2025, 3, 1), midnight + timedelta(minutes=59), timedelta(minutes=60))
    assert is_closed(date(2025, 3, 1), midnight + timedelta(minutes=60), timedelta(minutes=60))


def test_dashboard_escapes_model_names_and_loads_nothing_external():
    evil = '<script>alert(1)</script>"><img src=x>'
    cube = summarize("2025-01-01", [{"model": evil, "cost_usd": 1, "baseline_cost_usd": 2, "latency_ms": 9}])
    html = render(cube, Period(date(2025, 1, 1), date(2025, 1, 1)), {}, code='k"ey')
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'value="k&quot;ey"' in html
    plain = render(
        summarize("2025-01-01", [{"model": "a", "cost_usd": 1}]),
        Period(date(2025, 1, 1), date(2025, 1, 1)),
        {},
    )
    for marker in ("http://", "https://", "src=", "href=", "@import", "url(", "<script", "<link"):
        assert marker not in plain, marker
