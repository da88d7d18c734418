"""The dashboard in a real headless Chromium (Debian's ``chromium`` via Playwright): headline values, charts,
JavaScript on and off, no request outside the app, and the README screenshot (docs/dashboard.png).

Two weeks of generated traffic over the sample catalogue; the expected headline values are summed here
from the generated records, independently of the report code.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from router.api.app import create_app
from router.costs.records import CostRecord
from router.runtime import Runtime
from tests.conftest import unique
from tests.support import ThreadServer

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "dashboard.png"
START = datetime(2025, 6, 2, tzinfo=UTC)
DAYS = 14
# name: (input $/1k, output $/1k, typical latency ms, share of traffic)
MODELS = {
    "gpt-4.1-nano": (0.0001, 0.0004, 450, 0.45),
    "gpt-4o-mini": (0.00015, 0.0006, 600, 0.22),
    "gpt-4.1-mini": (0.0004, 0.0016, 800, 0.21),
    "gpt-4.1": (0.002, 0.008, 1500, 0.12),
}
BASE_IN, BASE_OUT = MODELS["gpt-4.1"][:2]
# caller: (team, share of traffic): drawn from their own generator, so the traffic itself is unchanged.
CALLERS = {"checkout": ("payments", 0.4), "billing-api": ("payments", 0.15), "search": ("discovery", 0.3),
           "support-bot": ("support", 0.15)}  # fmt: skip


def traffic() -> list[CostRecord]:
    rnd = random.Random(20250602)
    who = random.Random(17)
    out = []
    for d in range(DAYS):
        day = START + timedelta(days=d)
        n = 150 if day.weekday() < 5 else 70
        for i in range(n):
            model = rnd.choices(list(MODELS), weights=[m[3] for m in MODELS.values()])[0]
            price_in, price_out, latency, _ = MODELS[model]
            pt, ct = rnd.randint(400, 6000), rnd.randint(150, 1800)
            failed = rnd.random() < 0.03
            judged = rnd.random() < 0.35
            jpt, jct = (rnd.randint(180, 420), 2) if judged else (0, 0)
            if failed:
                pt = ct = 0
            caller = who.choices(list(CALLERS), weights=[c[1] for c in CALLERS.values()])[0]
            out.append(
                CostRecord(
                    request_id=f"d{d}-{i}",
                    timestamp=day + timedelta(seconds=int(86_399 * i / n)),
                    model=model,
                    deployment=model,
                    complexity=rnd.random(),
                    classifier="llm" if judged else "heuristic",
                    prompt_tokens=pt,
                    completion_tokens=ct,
                    cost_usd=pt / 1000 * price_in + ct / 1000 * price_out,
                    classifier_model="gpt-4.1-nano" if judged else None,
                    classifier_prompt_tokens=jpt,
                    classifier_completion_tokens=jct,
                    classifier_cost_usd=jpt / 1000 * 0.0001 + jct / 1000 * 0.0004,
                    baseline_model="gpt-4.1",
                    baseline_cost_usd=pt / 1000 * BASE_IN + ct / 1000 * BASE_OUT,
                    latency_ms=latency * rnd.lognormvariate(0, 0.35),
                    status="error" if failed else "ok",
                    error_code="upstream_http_500" if failed else None,
                    fallbacks=1 if failed or rnd.random() < 0.04 else 0,
                    caller=caller,
                    team=CALLERS[caller][0],
                )
            )
    return out


def attribution(records: list[CostRecord]) -> list[tuple[str, str, float]]:
    """(caller|team, name, total spend incl. the judge) for each caller and team."""
    sums: dict[tuple[str, str], list[float]] = {}
    for r in records:
        for by in ("caller", "team"):
            sums.setdefault((by, getattr(r, by)), []).extend([r.cost_usd, r.classifier_cost_usd])
    return [(by, name, math.fsum(v)) for (by, name), v in sums.items()]


def money(v: float) -> str:
    return f"${v:,.2f}" if v >= 1 else f"${v:.4f}"


@pytest.fixture
async def served(settings_factory: Any) -> Any:
    settings = settings_factory(COSTS_ROLLUP_TABLE=unique("rollups"))
    records = traffic()
    seeding = Runtime(settings)
    table = await seeding.table(settings.COSTS_TABLE)
    by_day: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_day.setdefault(r.partition_key, []).append(r.to_entity())
    for entities in by_day.values():
        for i in range(0, len(entities), 100):
            await table.submit_transaction([("upsert", e) for e in entities[i : i + 100]])
    await seeding.close()
    server = ThreadServer(create_app(Runtime(settings))).start()
    yield server, records
    server.stop()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt)")
async def test_dashboard_renders_headline_values_and_charts_with_no_outside_requests(served: Any):
    from playwright.async_api import Route, async_playwright

    server, records = served
    spend = math.fsum(r.cost_usd for r in records)
    judge = math.fsum(r.classifier_cost_usd for r in records)
    baseline = math.fsum(r.baseline_cost_usd for r in records)
    total = spend + judge
    expected = {
        "Total spend": money(total),
        "Baseline": money(baseline),
        "Savings": f"{(baseline - total) / baseline * 100:.1f}%",
        "Calls": f"{len(records):,}",
        "Router overhead": money(judge),
    }
    assert total > 1 and baseline > 1  # shown to the cent
    url = f"{server.url}/api/dashboard?from=2025-06-02&to=2025-06-15"
    requested: list[str] = []

    async def only_the_app(route: Route) -> None:
        requested.append(route.request.url)
        if route.request.url.startswith(server.url + "/"):
            await route.continue_()
        else:
            await route.abort()

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
            ],
        )
        try:
            for js in (True, False):
                context = await browser.new_context(
                    java_script_enabled=js, viewport={"width": 1100, "height": 900}, device_scale_factor=1
                )
                context.on("request", lambda req: requested.append(req.url))
                await context.route("**/*", only_the_app)
                page = await context.new_page()
                response = await page.goto(url, wait_until="load")
                assert response is not None and response.status == 200
                assert "default-src 'none'" in response.headers["content-security-policy"]
                for label, value in expected.items():
                    shown = await page.locator(f'.card .value[data-k="{label}"]').inner_text()
                    assert shown == value, (js, label, shown, value)
                assert await page.locator("svg").count() == 4
                # 14 days x (4 models + judge overhead) segments, minus any empty ones.
                assert await page.locator("section").nth(0).locator("svg rect").count() >= 14 * 4
                # 4 models, then 4 callers and 3 teams, biggest spend first, spend summed here.
                assert await page.locator("table tbody tr").count() == 4 + 4 + 3
                for by, name, total in attribution(records):
                    row = page.locator(f"#by-{by} tbody tr", has_text=name).first
                    assert await row.locator("td").nth(5).inner_text() == money(total), (by, name)
                first = await page.locator("#by-caller tbody tr td").first.inner_text()
                assert first == max(attribution(records), key=lambda t: (t[0] == "caller", t[2]))[1]
                box = await page.locator("svg").first.bounding_box()
                assert box is not None and box["width"] > 600 and box["height"] > 150
                if js:
                    SCREENSHOT.parent.mkdir(exist_ok=True)
                    await page.screenshot(path=str(SCREENSHOT), full_page=True)
                await context.close()
        finally:
            await browser.close()

    assert requested, "no request seen"
    outside = [u for u in requested if not u.startswith(server.url + "/")]
    assert outside == []
    assert SCREENSHOT.stat().st_size > 20_000
