"""The HTTP surface (FastAPI), shared by the Functions host and the local uvicorn server."""

from router.api.app import create_app

__all__ = ["create_app"]
