"""Router keys: the format, the salted hash that is all the table keeps, and verification with a short
cache so the hot path reads no table.

A key is ``rk_<key id>_<secret>``: 16 hex digits naming the row (its RowKey, so a lookup is one point
read, never a query built from caller text) and 43 URL-safe characters of ``secrets.token_urlsafe(32)``
(256 random bits). The table stores ``sha256(salt || secret)`` with a random 16-byte salt per key: the
secret has full entropy, so a slow password hash would add latency and no strength. Verification
compares digests in constant time (``hmac.compare_digest``).

Cache (``KeyVerifier``): a key row read from the table, found or not, is trusted for
``CALLERS_CACHE_TTL_S``. So a revoke (which deletes the key row) takes effect on every instance within
that TTL, and an unknown key id costs one point read per TTL per instance, not one per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from router.callers.identity import Caller

PREFIX = "rk_"
_KEY = re.compile(r"^rk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # caller and team names: RowKey-safe, printable
KEY_PARTITION = "key"  # rows by key id: the hash, the salt, the caller and team
CACHE_MAX = 10_000  # key ids remembered at once (found or not)


@dataclass(frozen=True, slots=True)
class NewKey:
    key_id: str
    secret: str
    salt: str  # hex

    @property
    def text(self) -> str:
        """The key as the caller sends it (shown once, never stored)."""
        return f"{PREFIX}{self.key_id}_{self.secret}"

    @property
    def digest(self) -> str:
        return hash_secret(self.salt, self.secret)


def new_key() -> NewKey:
    while True:
        secret = secrets.token_urlsafe(32)
        if len(secret) == 43:  # always, for 32 bytes; the format check below relies on it
            return NewKey(key_id=secrets.token_hex(8), secret=secret, salt=secrets.token_hex(16))


def hash_secret(salt_hex: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt_hex) + secret.encode("ascii")).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed router key, else None."""
    m = _KEY.match(text)
    return (m.group(1), m.group(2)) if m else None


def looks_like_key(text: str) -> bool:
    return text.startswith(PREFIX)


def check_name(kind: str, value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"{kind}: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    return value


def matches(row: Mapping[str, Any], secret: str) -> bool:
    """Whether ``secret`` is the one this row's hash was made from (constant-time compare)."""
    salt, digest = row.get("salt"), row.get("hash")
    if not isinstance(salt, str) or not isinstance(digest, str) or row.get("revoked"):
        return False
    try:
        candidate = hash_secret(salt, secret)
    except ValueError:
        return False
    return hmac.compare_digest(candidate, digest)


def caller_from_row(row: Mapping[str, Any]) -> Caller:
    name, team = str(row.get("caller") or ""), str(row.get("team") or "")
    return Caller(id=name, team=team or name)


KeyReader = Callable[[str], Awaitable[Mapping[str, Any] | None]]


class KeyVerifier:
    """Router keys checked against their rows, each row cached for ``ttl_s`` (found or not)."""

    def __init__(self, read: KeyReader, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self.ttl_s = ttl_s
        self.clock = clock
        self._rows: OrderedDict[str, tuple[float, Mapping[str, Any] | None]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Mapping[str, Any] | None]] = {}

    async def verify(self, text: str) -> Caller | None:
        """The caller a key belongs to, or None for a malformed, unknown or revoked key."""
        parsed = parse_key(text)
        if parsed is None:
            return None
        key_id, secret = parsed
        row = await self._row(key_id)
        if row is None or not matches(row, secret):
            return None
        return caller_from_row(row)

    def forget(self, key_id: str) -> None:
        self._rows.pop(key_id, None)

    async def _row(self, key_id: str) -> Mapping[str, Any] | None:
        now = self.clock()
        cached = self._rows.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        pending = self._inflight.get(key_id)
        if pending is None:  # one read per key id at a time, however many requests carry it
            pending = asyncio.ensure_future(self._read(key_id))
            self._inflight[key_id] = pending
            try:
                row = await asyncio.shield(pending)  # a caller that leaves does not cancel the others' read
            finally:
                self._inflight.pop(key_id, None)
            self._rows[key_id] = (now, row)
            self._rows.move_to_end(key_id)
            while len(self._rows) > CACHE_MAX:
                self._rows.popitem(last=False)
            return row
        return await asyncio.shield(pending)
