"""Which hosts may receive the managed identity's Azure OpenAI token.

Every upstream call carries an Entra token for ``https://cognitiveservices.azure.com``, valid on every
account the identity may use, so an endpoint is a trust decision: whoever names it gets the token, the
prompts and the answer. A URL passes only as ``https://<host>[:port][/]`` with a host under an allowed
suffix; plain-http loopback (``localhost``, ``127.0.0.1``, ``[::1]``) only when loopback is allowed
(local runs and tests). The check is parsed (``urlsplit``), never a prefix test, so
``http://localhost.evil.example.com`` fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

DEFAULT_SUFFIXES = ".openai.azure.com,.cognitiveservices.azure.com,.services.ai.azure.com"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def parse_suffixes(text: str) -> tuple[str, ...]:
    """``ALLOWED_ENDPOINT_SUFFIXES``: a comma list; each suffix starts with a dot, so ``.azure.com`` can
    never match ``evilazure.com``. ``.<account>.openai.azure.com`` pins one account: the host itself
    matches its suffix."""
    suffixes = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    bad = [s for s in suffixes if not s.startswith(".") or s.count(".") < 2]
    if bad or not suffixes:
        raise ValueError(f"suffixes must look like .example.com: {', '.join(bad) or '(none)'}")
    return suffixes


@dataclass(frozen=True)
class EndpointPolicy:
    suffixes: tuple[str, ...] = tuple(DEFAULT_SUFFIXES.split(","))
    allow_loopback: bool = False

    def problem(self, url: str) -> str | None:
        """Why ``url`` may not receive the token, or None when it may."""
        parts = split_url(url)
        if parts is None:
            return "is not a valid URL"
        shape = _shape_problem(parts)
        if shape:
            return shape
        host = (parts.hostname or "").lower()
        if is_loopback(parts):
            return None if self.allow_loopback else LOOPBACK_REFUSED
        if parts.scheme != "https":
            return "must be an https:// URL"
        if not (host.endswith(self.suffixes) or f".{host}" in self.suffixes):
            return f"host {host!r} is not under ALLOWED_ENDPOINT_SUFFIXES ({','.join(self.suffixes)})"
        return None

    def check(self, url: str) -> str:
        """``url`` without a trailing slash; ValueError saying why it is refused."""
        why = self.problem(url)
        if why:
            raise ValueError(f"endpoint {url!r} {why}")
        return url.rstrip("/")


LOOPBACK_REFUSED = "is a loopback URL (set ALLOW_LOOPBACK_ENDPOINTS=true)"


def split_url(url: str) -> SplitResult | None:
    """``url``'s parts, or None when it does not parse (a malformed port included)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return parts


def has_user_info(parts: SplitResult) -> bool:
    return parts.username is not None or parts.password is not None or "@" in parts.netloc


def is_loopback(parts: SplitResult) -> bool:
    return (parts.hostname or "").lower() in LOOPBACK_HOSTS and parts.scheme in ("http", "https")


def _shape_problem(parts: SplitResult) -> str | None:
    if has_user_info(parts):
        return "must not carry user info"
    if parts.query or parts.fragment or "?" in parts.geturl() or "#" in parts.geturl():
        return "must not have a query or fragment"
    if parts.path not in ("", "/"):
        return "must not have a path"
    if not parts.hostname:
        return "has no host"
    return None
