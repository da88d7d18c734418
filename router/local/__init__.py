"""Local-only helpers (Azurite, the simulator token) for `python -m router dev`, tests and benchmarks."""
