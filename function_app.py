"""Azure Functions entry point: the router's ASGI app behind one function-key-protected HTTP trigger."""

import azure.functions as func

from router.api.app import create_app

# functions_host: this host never runs the ASGI shutdown, so each invocation awaits its cost records.
app = func.AsgiFunctionApp(app=create_app(functions_host=True), http_auth_level=func.AuthLevel.FUNCTION)
