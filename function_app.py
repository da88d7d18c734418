"""Azure Functions entry point: the router's ASGI app behind one function-key-protected HTTP trigger."""

import azure.functions as func

from router.api.app import create_app
from router.logs import quiet_sdks

# The same SDK log levels as `python -m router serve`, without basicConfig: the host owns the handlers
# (Application Insights). Otherwise azure-core and httpx2 log every request and response at INFO.
quiet_sdks()

# functions_host: this host never runs the ASGI shutdown, so each invocation awaits its cost records.
app = func.AsgiFunctionApp(app=create_app(functions_host=True), http_auth_level=func.AuthLevel.FUNCTION)
