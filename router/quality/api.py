"""``GET /api/quality``: how the routed answers compared with the baseline's, over a date range.

Same parameters, validation and error shape as ``/api/costs`` (``from``/``to`` as validated dates, at
most ``REPORT_MAX_DAYS``), plus ``group_by=model|scorer|band``. Behind the function key like the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from router.quality.report import COLUMNS, QUALITY_BY, build_quality_report, parse_quality_by
from router.quality.store import read_period
from router.reports.params import REPORT_ERRORS, FromQ, ToQ, single
from router.reports.period import Period, parse_period

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

    from router.runtime import Runtime

ByQ = Annotated[
    str | None, Query(description="Group samples by", json_schema_extra={"enum": list(QUALITY_BY)})
]


async def load_samples(
    table: TableClient, period: Period, columns: tuple[str, ...] = COLUMNS
) -> list[dict[str, Any]]:
    return await read_period(table, period, columns)


def build_router(runtime: Runtime) -> APIRouter:
    router = APIRouter(tags=["quality"])
    tables: dict[str, TableClient] = {}

    async def table(name: str) -> TableClient:
        if name not in tables:  # created on first use, then kept (as the savings report does)
            tables[name] = await runtime.table(name)
        return tables[name]

    @router.get(
        "/api/quality", summary="Routed answers against the baseline's, judged", responses=REPORT_ERRORS
    )
    async def quality(
        request: Request, from_: FromQ = None, to: ToQ = None, group_by: ByQ = None
    ) -> JSONResponse:
        single(request, "from", "to", "group_by")
        s = runtime.settings
        period = parse_period(from_, to, max_days=s.REPORT_MAX_DAYS)
        by = parse_quality_by(group_by)
        samples = await load_samples(await table(s.QUALITY_TABLE), period)
        return JSONResponse(build_quality_report(samples, period, by))

    return router
