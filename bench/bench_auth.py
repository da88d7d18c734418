"""What authenticating a request adds: ``Authenticator.authenticate`` per credential type, against the
cost of reading the headers alone (``credentials_from``, the baseline), measured in the same process.

    .venv/bin/python bench/bench_auth.py                # writes bench/results/auth.json

- router key, cached row: the hot path (no table read; one SHA-256 and a constant-time compare);
- Entra token, cached signing key: RS256 signature check plus the claim checks (PyJWT);
- a rejected token (bad audience), which takes the same signature check.

The signing key is generated here and the key row is made in memory (no network, no table): only the
verification code is timed. Interleaved rounds; p50 and p99 in µs, and each as a ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from router.callers.auth import Authenticator, credentials_from  # noqa: E402
from router.callers.entra import EntraVerifier, SigningKeys  # noqa: E402
from router.callers.keys import KeyVerifier, new_key  # noqa: E402
from router.callers.modes import issuers  # noqa: E402
from router.errors import AuthRejected  # noqa: E402
from tests.entra_tenant import AUDIENCE, TENANT, Tenant  # noqa: E402


async def run(rounds: int) -> dict[str, Any]:
    tenant = Tenant()
    key = new_key()
    row = {"caller": "bench", "team": "bench", "salt": key.salt, "hash": key.digest}

    async def read(_: str) -> dict[str, Any]:
        return row

    async def jwks() -> dict[str, Any]:
        from router.callers.entra import parse_jwks
        from tests.entra_tenant import jwk_of

        return parse_jwks({"keys": [jwk_of(k, kid) for kid, k in tenant.keys.items()]})

    entra = EntraVerifier(SigningKeys(jwks, 3600, 60), tenant=TENANT, audiences=(AUDIENCE,),
                          issuers=issuers(TENANT), leeway_s=120)  # fmt: skip
    auth = Authenticator(("entra", "keys"), entra=entra, keys=KeyVerifier(read, 30))
    cases = {
        "headers only (baseline)": [(b"api-key", key.text.encode())],
        "router key (cached)": [(b"api-key", key.text.encode())],
        "entra token (cached keys)": [(b"authorization", f"Bearer {tenant.token()}".encode())],
        "entra token rejected (audience)": [(b"authorization", f"Bearer {tenant.token(aud='x')}".encode())],
    }
    for headers in cases.values():  # warm the caches
        with contextlib.suppress(AuthRejected):
            await auth.authenticate(credentials_from(headers))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, headers in cases.items():
            start = time.perf_counter_ns()
            creds = credentials_from(headers)
            if not name.startswith("headers"):
                with contextlib.suppress(AuthRejected):
                    await auth.authenticate(creds)
            times[name].append((time.perf_counter_ns() - start) / 1000)
    base = statistics.median(times["headers only (baseline)"])
    out = {}
    for name, values in times.items():
        values.sort()
        p50, p99 = statistics.median(values), values[int(0.99 * (len(values) - 1))]
        out[name] = {
            "p50_us": round(p50, 2),
            "p99_us": round(p99, 2),
            "p50_ratio_to_baseline": round(p50 / base, 1),
        }
    return {
        "rounds": rounds,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cases": out,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "auth.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args.rounds))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for name, r in result["cases"].items():
        ratio = r["p50_ratio_to_baseline"]
        print(f"{name:<34} p50 {r['p50_us']:>8.1f} µs  p99 {r['p99_us']:>8.1f} µs  ({ratio}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
