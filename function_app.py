"""Azure Functions entry point: the router's one FastAPI app behind an HTTP trigger served by HTTP streams
(``router.api.functions_relay``), and the timer that rolls up closed days' costs. Same function name,
route and methods as the former ``func.AsgiFunctionApp``.

The trigger's auth level follows ``AUTH_MODE``: ``FUNCTION`` (the host checks the function key) when
``function-key`` is listed, the default; ``ANONYMOUS`` otherwise, because then the app itself checks every
request (Entra tokens, router keys; router.api.auth) and a caller has no function key to send."""

from __future__ import annotations

import logging

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, StreamingResponse

from router.api.app import create_app
from router.api.functions_relay import relay
from router.logs import quiet_sdks
from router.reports.rollup import run_rollup_job

log = logging.getLogger("router")

# The same SDK log levels as `python -m router serve`, without basicConfig: the host owns the handlers
# (Application Insights). Otherwise azure-core and httpx2 log every request and response at INFO.
quiet_sdks()

# functions_host: this host never runs the ASGI shutdown, so each request awaits its own cost records
# (COST_AWAIT_MS) before its response completes.
api = create_app(functions_host=True)
runtime = api.state.runtime
settings = runtime.settings

auth_level = func.AuthLevel.FUNCTION if "function-key" in settings.auth_modes else func.AuthLevel.ANONYMOUS
app = func.FunctionApp(http_auth_level=auth_level)


@app.function_name("http_app_func")
@app.route(route="/{*route}", methods=list(func.HttpMethod), auth_level=auth_level)
async def http_app_func(req: Request) -> StreamingResponse:
    return await relay(api, req)


@app.function_name("rollup_closed_days")
@app.timer_trigger(
    schedule=settings.ROLLUP_SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True
)
async def rollup_closed_days(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("roll-up timer is past due; running now")
    await run_rollup_job(runtime)


__all__ = ["api", "app", "relay", "runtime"]
