"""LLM model router for Azure: classify a query, route it to the cheapest capable deployment,
record the cost."""

__version__ = "0.1.0"
