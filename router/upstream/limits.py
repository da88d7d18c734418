"""``MAX_UPSTREAM_BYTES``: no upstream body is held in memory or passed on past this size.

Both clients raise ``UpstreamTooLarge`` as soon as a body is known to be too large: from its
Content-Length before reading, else while reading, never after reading all of it. For the SDK the cap
sits in its HTTP transport (``capped_http``), so it covers every body the SDK reads (answers, error
bodies, streams); aiohttp reads through ``read_capped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from router.errors import UpstreamTooLarge

if TYPE_CHECKING:
    import aiohttp

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
_READ_CHUNK = 64 * 1024


def check_length(headers: Mapping[str, str], max_bytes: int) -> None:
    """Refuse a body whose declared Content-Length is over the cap before a byte of it is read."""
    declared = headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise UpstreamTooLarge(max_bytes)


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    check_length(response.headers, max_bytes)
    parts: list[bytes] = []
    size = 0
    async for part in response.content.iter_chunked(_READ_CHUNK):
        size += len(part)
        if size > max_bytes:
            raise UpstreamTooLarge(max_bytes)
        parts.append(part)
    return b"".join(parts)
