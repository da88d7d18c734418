"""Azure Functions entry point: the router's ASGI app behind one function-key-protected HTTP trigger."""

import azure.functions as func

from router.api.app import create_app

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.FUNCTION)
