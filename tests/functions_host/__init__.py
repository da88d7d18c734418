"""A fake Functions host and the real Python worker library, speaking the worker's gRPC protocol."""
