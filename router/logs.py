"""Log levels for every way the app runs: the router's own lines at INFO, the SDKs' per-request HTTP
logging only when something is wrong."""

from __future__ import annotations

import logging

NOISY = ("azure", "httpx2", "httpcore2", "openai")


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    quiet_sdks()


def quiet_sdks() -> None:
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
