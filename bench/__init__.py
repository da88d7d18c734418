"""Benchmarks (issue 8): see bench/README.md."""
