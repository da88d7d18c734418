"""The dashboard's quality panel in headless Chromium, and the README screenshot (docs/quality.png).

Two weeks of the savings dashboard's generated traffic plus quality samples over it: about one call in
twenty sampled, each model with its own win-or-tie rate, shadow and judge tokens priced on gpt-4.1. The
card's rate and the charged total spend are computed here from the generated entities.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from router.api.app import create_app
from router.runtime import Runtime
from tests.conftest import unique
from tests.support import ThreadServer
from tests.test_reports_dashboard import BASE_IN, BASE_OUT, CHROMIUM, START, money, traffic

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "quality.png"
KEEP = {"gpt-4.1-nano": 0.86, "gpt-4o-mini": 0.9, "gpt-4.1-mini": 0.94}  # P(win or tie) per routed model


def samples(records: list[Any]) -> list[dict[str, Any]]:
    rnd = random.Random(16)
    out = []
    for r in records:
        if r.model not in KEEP or r.status != "ok" or rnd.random() >= 0.05:
            continue
        good = rnd.random() < KEEP[r.model]
        verdict = ("win" if rnd.random() < 0.3 else "tie") if good else "loss"
        if rnd.random() < 0.02:
            verdict = "judge_error"
        s_in, s_out = r.prompt_tokens, int(r.completion_tokens * 1.3)
        j_in, j_out = 2 * (260 + r.prompt_tokens // 4 + (r.completion_tokens + s_out) // 2), 2
        shadow = s_in / 1000 * BASE_IN + s_out / 1000 * BASE_OUT
        judge = j_in / 1000 * BASE_IN + j_out / 1000 * BASE_OUT
        out.append({
            "PartitionKey": r.partition_key, "RowKey": r.row_key, "request_id": r.request_id, "api": "route",
            "routed_model": r.model, "baseline_model": "gpt-4.1", "judge_model": "gpt-4.1",
            "complexity": r.complexity, "classifier": r.classifier, "scorer": "learned", "verdict": verdict,
            "shadow_prompt_tokens": s_in, "shadow_completion_tokens": s_out, "shadow_usd": shadow,
            "judge_prompt_tokens": j_in, "judge_completion_tokens": j_out, "judge_usd": judge,
            "total_usd": shadow + judge,
        })  # fmt: skip
    return out


@pytest.fixture
async def served(settings_factory: Any) -> Any:
    settings = settings_factory(COSTS_ROLLUP_TABLE=unique("rollups"), QUALITY_TABLE=unique("quality"))
    records = traffic()
    quality = samples(records)
    seeding = Runtime(settings)
    for name, entities in ((settings.COSTS_TABLE, [r.to_entity() for r in records]),
                           (settings.QUALITY_TABLE, quality)):  # fmt: skip
        table = await seeding.table(name)
        by_day: dict[str, list[dict[str, Any]]] = {}
        for e in entities:
            by_day.setdefault(e["PartitionKey"], []).append(e)
        for rows in by_day.values():
            for i in range(0, len(rows), 100):
                await table.submit_transaction([("upsert", e) for e in rows[i : i + 100]])
    await seeding.close()
    server = ThreadServer(create_app(Runtime(settings))).start()
    yield server, records, quality
    server.stop()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt)")
async def test_quality_panel_and_charged_spend_in_chromium(served: Any):
    from playwright.async_api import async_playwright

    server, records, quality = served
    judged = [q for q in quality if q["verdict"] != "judge_error"]
    rate = sum(q["verdict"] != "loss" for q in judged) / len(judged)
    checks = math.fsum(q["total_usd"] for q in quality)
    total = math.fsum(r.cost_usd + r.classifier_cost_usd for r in records) + checks
    end = (START + timedelta(days=13)).date()
    url = f"{server.url}/api/dashboard?from={START.date()}&to={end}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                           args=["--headless", "--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            context = await browser.new_context(
                viewport={"width": 1100, "height": 900}, device_scale_factor=1
            )
            outside: list[str] = []
            context.on(
                "request", lambda req: None if req.url.startswith(server.url) else outside.append(req.url)
            )
            page = await context.new_page()
            response = await page.goto(url, wait_until="load")
            assert response is not None and response.status == 200
            assert (
                await page.locator('.card .value[data-k="Quality kept"]').inner_text() == f"{100 * rate:.1f}%"
            )
            assert await page.locator('.card .value[data-k="Total spend"]').inner_text() == money(total)
            panel = page.locator("section", has_text="Quality kept")
            assert await panel.locator("svg circle").count() >= 14 * 2
            assert await panel.locator("table tbody tr").count() == 1 + len(KEEP)
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.locator(".cards").screenshot(path=str(SCREENSHOT.with_name("quality-cards.png")))
            await panel.screenshot(path=str(SCREENSHOT))
            assert outside == []
            await context.close()
        finally:
            await browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
