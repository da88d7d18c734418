"""``GET /api/costs`` (JSON) and ``GET /api/dashboard`` (HTML): the savings report over the cost records.

Both sit behind the same function key as every other endpoint. Query parameters are validated into
``datetime.date`` objects before any table is touched; errors use the app's JSON error shape and name the
parameter.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from router.quality import report as quality_report
from router.quality.store import read_period
from router.reports import dashboard, utilisation
from router.reports.aggregate import GROUP_BY, Cube, build_report
from router.reports.params import REPORT_ERRORS, FromQ, ToQ, single
from router.reports.period import Period, parse_group_by, parse_period
from router.reports.store import Sources, load_cube

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from router.runtime import Runtime

_KEY = re.compile(r"[A-Za-z0-9_\-=]{1,256}")
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HTML_HEADERS = {
    "content-security-policy": _CSP,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
# Documented as dates; validated by hand (period.py) so that errors name the parameter in our words.
ByQ = Annotated[
    str | None,
    Query(description="Group rows by", json_schema_extra={"enum": list(GROUP_BY)}),
]


async def _charged(report: dict[str, Any], quality: TableClient, period: Period) -> dict[str, Any]:
    """The report with the quality checks' spend as its own line, in total spend and out of savings."""
    spent = quality_report.overhead(await read_period(quality, period, quality_report.OVERHEAD_COLUMNS))
    return quality_report.charge_report(report, spent)


async def _budget_shares(report: dict[str, Any], runtime: Runtime, period: Period) -> None:
    """The in-memory catalogue's TPM of each provisioned backend (no table read)."""
    service = await runtime.service()
    tpm = utilisation.budgets(await service.catalog.all_models(), runtime.settings.AZURE_OPENAI_ENDPOINT)
    minutes = utilisation.period_minutes(period, datetime.now(UTC))
    utilisation.add_budget_shares(report["groups"], tpm, minutes)


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["reports"])
    tables: dict[str, TableClient] = {}

    async def table(name: str) -> TableClient:
        if name not in tables:
            tables[name] = await runtime.table(name)
        return tables[name]

    async def load(period: Period) -> tuple[Cube, Sources]:
        s = runtime.settings
        return await load_cube(
            await table(s.COSTS_TABLE),
            await table(s.COSTS_ROLLUP_TABLE),
            period,
            delay=timedelta(minutes=s.REPORT_ROLLUP_DELAY_MINUTES),
        )

    def period_of(start: str | None, end: str | None) -> Period:
        return parse_period(start, end, max_days=runtime.settings.REPORT_MAX_DAYS)

    @router.get(
        "/api/costs", summary="Spend, baseline and savings over a date range", responses=REPORT_ERRORS
    )
    async def costs(
        request: Request, from_: FromQ = None, to: ToQ = None, group_by: ByQ = None
    ) -> JSONResponse:
        single(request, "from", "to", "group_by")
        period = period_of(from_, to)
        by = parse_group_by(group_by)
        cube, sources = await load(period)
        report: dict[str, Any] = build_report(cube, period.start, period.end, by)
        report["source"] = sources.to_dict()
        if by == "deployment":  # provisioned backends: tokens as a share of their budget (catalogue TPM)
            await _budget_shares(report, runtime, period)
        return JSONResponse(await _charged(report, await table(runtime.settings.QUALITY_TABLE), period))

    @router.get(
        "/api/dashboard",
        summary="Savings dashboard (self-contained HTML)",
        response_class=HTMLResponse,
        responses=REPORT_ERRORS,
    )
    async def dashboard_page(request: Request, from_: FromQ = None, to: ToQ = None) -> HTMLResponse:
        single(request, "from", "to")
        period = period_of(from_, to)
        cube, sources = await load(period)
        code = request.query_params.get("code")
        quality = await read_period(
            await table(runtime.settings.QUALITY_TABLE), period, quality_report.COLUMNS
        )
        html = dashboard.render(
            cube, period, sources.to_dict(), code if code and _KEY.fullmatch(code) else None, quality
        )
        return HTMLResponse(html, headers=_HTML_HEADERS)

    return router
