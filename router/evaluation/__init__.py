"""Offline evaluation, training and calibration of complexity scorers (dev tooling, not the runtime)."""
