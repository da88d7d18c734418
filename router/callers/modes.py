"""``AUTH_MODE`` and the Entra settings it needs, checked at startup so a bad value fails with its name.

Pure: no I/O. The OpenID metadata URL (and the ``jwks_uri`` it names) decides whose keys sign a valid
token, so like a model endpoint it is a trust decision: only ``https://`` on an Entra login host, or
loopback under ``ALLOW_LOOPBACK_ENDPOINTS`` (local runs and tests). Parsed with ``urlsplit``, never a
prefix test.
"""

from __future__ import annotations

import re

from router.endpoint_policy import LOOPBACK_REFUSED, has_user_info, is_loopback, split_url

MODES = ("function-key", "entra", "keys")
# Microsoft Entra ID's login hosts: the public cloud, US Government and China (21Vianet).
ENTRA_HOSTS = frozenset({"login.microsoftonline.com", "login.microsoftonline.us", "login.chinacloudapi.cn"})
_TENANT = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def parse_auth_modes(text: str) -> tuple[str, ...]:
    """``function-key``, ``entra``, ``keys`` or a comma list of them (order kept, no repeats)."""
    modes = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"must be one or more of {', '.join(MODES)} (comma-separated)")
    if len(set(modes)) != len(modes):
        raise ValueError("lists a mode twice")
    return modes


def default_metadata_url(tenant: str) -> str:
    return f"https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"


def url_problem(url: str, allow_loopback: bool) -> str | None:
    """Why ``url`` may not serve signing keys (metadata or jwks_uri), or None when it may."""
    parts = split_url(url)
    if parts is None:
        return "is not a valid URL"
    if has_user_info(parts):
        return "must not carry user info"
    if parts.fragment:
        return "must not have a fragment"
    if is_loopback(parts):
        return None if allow_loopback else LOOPBACK_REFUSED
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        return "must be an https:// URL"
    if host not in ENTRA_HOSTS:
        return f"host {host!r} is not an Entra login host ({', '.join(sorted(ENTRA_HOSTS))})"
    return None


def check_entra_settings(
    tenant: str | None, audience: str | None, metadata_url: str | None, allow_loopback: bool
) -> None:
    """ValueError naming the setting when ``entra`` cannot work as configured."""
    if not tenant or not _TENANT.match(tenant):
        raise ValueError("AUTH_MODE entra needs AUTH_TENANT_ID, the tenant id (a GUID)")
    if not audience or not [a for a in audience.split(",") if a.strip()]:
        raise ValueError("AUTH_MODE entra needs AUTH_AUDIENCE (api://<app> and/or the app's client id)")
    why = metadata_url and url_problem(metadata_url, allow_loopback)
    if why:
        raise ValueError(f"AUTH_METADATA_URL {why}")


def audiences(audience: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (audience or "").split(",") if a.strip())


def issuers(tenant: str) -> tuple[str, ...]:
    """Entra's v1 and v2 issuers for the tenant: which one a token carries follows the API's
    ``accessTokenAcceptedVersion``, so both are accepted (and no other tenant's)."""
    return (f"https://sts.windows.net/{tenant}/", f"https://login.microsoftonline.com/{tenant}/v2.0")
