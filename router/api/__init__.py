"""The HTTP surface (FastAPI), shared by the Functions host and the local uvicorn server; the app is
built by ``router.api.app.create_app``."""
