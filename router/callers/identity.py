"""The caller of one request: resolved once at the edge, carried by the plan into its cost record.

Pure: how a caller is authenticated (function key, Entra token, router key) lives in the API layer;
everything after it sees only this value. ``ANONYMOUS`` is the caller under function-key auth, where
the Functions host checked a shared key and the app cannot tell callers apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Caller:
    id: str  # the router key's name, or the Entra token's app / object id
    team: str  # the team the caller's spend also counts against


ANONYMOUS = Caller(id="anonymous", team="anonymous")
