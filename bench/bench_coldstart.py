"""Cold start: a fresh interpreter to the first answered request, and what ``import function_app`` costs.

    .venv/bin/python -m bench.bench_coldstart        # writes bench/results/coldstart.json

1. ``import function_app`` wall time in fresh interpreters (median of N), the way the Functions worker
   loads the app; settings come from the environment as in Azure.
2. Fresh interpreter -> first answered ``POST /api/route``, through the real entry point: the
   HTTP-streams trigger ``http_app_func`` is called with a Starlette ``Request`` as the worker's own HTTP
   server does, and its streamed response is consumed, with ``ManagedIdentityCredential``
   (AZURE_CLIENT_ID set) fetching its token from a loopback App Service identity endpoint, tables in
   Azurite, the simulator upstream.
   Split into interpreter start, import, first request (which builds the clients, ensures the tables,
   loads the catalogue, gets a token and calls the model), plus a second (warm) request for contrast.
3. ``python -X importtime -c "import function_app"``: the top imports by cumulative and by own time,
   and own time summed per top-level package (median over runs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import (
    MSI_HEADER,
    REPO_ROOT,
    bench_env,
    machine,
    seed_models,
    start_simulator,
    utc_now,
    write_result,
)

CLIENT_ID = "00000000-0000-0000-0000-0000000bench"
BODY = json.dumps({"query": "What is the capital of France?"})

IMPORT_ONLY = "import time; t = time.perf_counter(); import function_app; print(time.perf_counter() - t)"

FIRST_REQUEST = r"""
import time
t_start = time.time()
import sys
before = set(sys.modules)
import function_app
t_imported = time.time()
after_import = set(sys.modules)
import asyncio, json
from starlette.requests import Request

handler = next(
    f for f in function_app.app.get_functions() if f.get_function_name() == "http_app_func"
).get_user_function()

def request():
    # What the worker's own HTTP server hands the HTTP-streams trigger: a FastAPI/Starlette Request.
    body = BODY.encode()
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/api/route", "raw_path": b"/api/route",
        "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1), "server": ("localhost", 80),
        "headers": [(b"content-type", b"application/json"), (b"host", b"localhost")],
    }
    return Request(scope, receive)

class Answer:
    def __init__(self, messages):
        self.status_code = messages[0]["status"]
        self.body = b"".join(m.get("body", b"") for m in messages[1:])
    def get_body(self):
        return self.body

async def call():
    req = request()
    response = await handler(req)
    messages = []
    async def send(message):
        messages.append(message)
    await response(req.scope, req.receive, send)  # streams the body as the worker's server would
    return Answer(messages)

async def main():
    first = await call()
    t_first = time.time()
    second_start = time.perf_counter()
    second = await call()
    second_ms = (time.perf_counter() - second_start) * 1000
    service = function_app.runtime.built_service
    if service is not None and hasattr(service.recorder, "idle"):
        await service.recorder.idle()
    return first, t_first, second, second_ms

first, t_first, second, second_ms = asyncio.run(main())
lazy = sorted({m.split(".")[0] for m in set(sys.modules) - after_import})
eager = sorted({m.split(".")[0] for m in after_import - before})
print(json.dumps({
    "t_start": t_start, "t_imported": t_imported, "t_first": t_first,
    "status": first.status_code, "second_status": second.status_code, "second_ms": second_ms,
    "body": first.get_body().decode()[:400], "modules_at_import": len(after_import),
    "modules_after_first_request": len(sys.modules),
    "top_level_imported_by_function_app": eager, "top_level_imported_on_first_request": lazy,
}))
"""


def child_env(sim_url: str, tables: str) -> dict[str, str]:
    return bench_env(
        AZURE_OPENAI_ENDPOINT=sim_url,
        TABLES_CONNECTION_STRING=tables,
        AZURE_CLIENT_ID=CLIENT_ID,
        IDENTITY_ENDPOINT=f"{sim_url}/msi/token",
        IDENTITY_HEADER=MSI_HEADER,
    )


def import_times(env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-c", IMPORT_ONLY],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise RuntimeError(f"import function_app failed: {res.stderr[-2000:]}")
        out.append(float(res.stdout.strip().splitlines()[-1]))
    return out


def first_requests(env: dict[str, str], runs: int) -> list[dict[str, Any]]:
    out = []
    code = f"BODY = {BODY!r}\n" + FIRST_REQUEST
    for _ in range(runs):
        t_spawn = time.time()
        res = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180
        )
        t_exit = time.time()
        if res.returncode != 0:
            raise RuntimeError(f"first-request child failed: {res.stderr[-3000:]}")
        data = json.loads(res.stdout.strip().splitlines()[-1])
        if data["status"] != 200:
            raise RuntimeError(f"first request answered {data['status']}: {data['body']}")
        out.append(
            {
                "interpreter_start_ms": round((data["t_start"] - t_spawn) * 1000, 1),
                "import_function_app_ms": round((data["t_imported"] - data["t_start"]) * 1000, 1),
                "first_request_ms": round((data["t_first"] - data["t_imported"]) * 1000, 1),
                "spawn_to_first_answer_ms": round((data["t_first"] - t_spawn) * 1000, 1),
                "second_request_ms": round(data["second_ms"], 2),
                "process_total_ms": round((t_exit - t_spawn) * 1000, 1),
                "modules_at_import": data["modules_at_import"],
                "modules_after_first_request": data["modules_after_first_request"],
                "top_level_imported_by_function_app": data["top_level_imported_by_function_app"],
                "top_level_imported_on_first_request": data["top_level_imported_on_first_request"],
            }
        )
    return out


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self_us, cumulative_us, depth) rows of ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        parts = line.split("|")
        self_us = parts[0].split(":")[1].strip()
        cum_us = parts[1].strip()
        raw_name = parts[2]
        depth = (len(raw_name) - len(raw_name.lstrip(" ")) - 1) // 2
        rows.append((raw_name.strip(), int(self_us), int(cum_us), depth))
    return rows


def importtime(env: dict[str, str], runs: int, top: int) -> dict[str, Any]:
    per_module_self: dict[str, list[int]] = defaultdict(list)
    per_module_cum: dict[str, list[int]] = defaultdict(list)
    depth_of: dict[str, int] = {}
    totals = []
    for _ in range(runs):
        res = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import function_app"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise RuntimeError(res.stderr[-2000:])
        rows = parse_importtime(res.stderr)
        for name, self_us, cum_us, depth in rows:
            per_module_self[name].append(self_us)
            per_module_cum[name].append(cum_us)
            depth_of[name] = depth
        totals.append(sum(r[1] for r in rows))
    med_self = {k: statistics.median(v) for k, v in per_module_self.items()}
    med_cum = {k: statistics.median(v) for k, v in per_module_cum.items()}
    by_package: dict[str, float] = defaultdict(float)
    for name, v in med_self.items():
        by_package[name.split(".")[0]] += v
    top_cum = sorted(((k, v) for k, v in med_cum.items() if k != "function_app"), key=lambda kv: -kv[1])
    return {
        "runs": runs,
        "total_self_ms (sum of all imports, median run)": round(statistics.median(totals) / 1000, 1),
        "function_app_cumulative_ms": round(med_cum.get("function_app", 0) / 1000, 1),
        "top_by_package_own_ms": [
            {"package": k, "ms": round(v / 1000, 1)}
            for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]
        ],
        "top_by_cumulative_ms": [
            {"module": k, "ms": round(v / 1000, 1), "depth": depth_of[k]} for k, v in top_cum[:top]
        ],
        "top_by_own_ms": [
            {"module": k, "ms": round(v / 1000, 1)}
            for k, v in sorted(med_self.items(), key=lambda kv: -kv[1])[:top]
        ],
    }


def median_of(rows: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(r[key] for r in rows), 1)


async def stack(tmp: Path) -> tuple[Any, Any, str]:
    from router.dev.azurite import Azurite

    azurite = Azurite().start()
    try:
        sim, sim_url = start_simulator(tmp)
    except Exception:
        azurite.stop()
        raise
    await seed_models(sim_url, azurite.connection_string)
    return azurite, sim, sim_url


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_coldstart", description=__doc__.split("\n")[0])
    p.add_argument("--import-runs", type=int, default=7)
    p.add_argument("--first-request-runs", type=int, default=5)
    p.add_argument("--importtime-runs", type=int, default=3)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    azurite, sim, sim_url = asyncio.run(stack(tmp))
    try:
        env = child_env(sim_url, azurite.connection_string)
        imports = import_times(env, args.import_runs)
        firsts = first_requests(env, args.first_request_runs)
        itime = importtime(env, args.importtime_runs, args.top)
    finally:
        sim.stop()
        azurite.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    import_ms = sorted(round(x * 1000, 1) for x in imports)
    result = {
        "benchmark": "coldstart",
        "generated_at": utc_now(),
        "command": "python -m bench.bench_coldstart " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "import_function_app_ms": {
            "median": round(statistics.median(import_ms), 1),
            "min": import_ms[0],
            "max": import_ms[-1],
            "runs": import_ms,
        },
        "first_request": {
            "median": {
                k: median_of(firsts, k)
                for k in (
                    "interpreter_start_ms",
                    "import_function_app_ms",
                    "first_request_ms",
                    "spawn_to_first_answer_ms",
                    "second_request_ms",
                )
            },
            "runs": firsts,
            "path": "AsgiFunctionApp function (lifespan start-up, ManagedIdentityCredential via loopback "
            "IDENTITY_ENDPOINT, Azurite tables, simulator upstream)",
        },
        "importtime": itime,
        "goal_import_under_1s": statistics.median(import_ms) < 1000,
    }
    path = write_result("coldstart", result)
    m = result["first_request"]["median"]
    print(f"import function_app: median {result['import_function_app_ms']['median']} ms {import_ms}")
    print(f"fresh interpreter -> first answer (median): {m}")
    print("lazily imported on first request:", firsts[0]["top_level_imported_on_first_request"])
    print("importtime, own time per package (ms):")
    for row in itime["top_by_package_own_ms"]:
        print(f"  {row['package']:<30} {row['ms']:>7}")
    print("importtime, top cumulative (ms):")
    for row in itime["top_by_cumulative_ms"]:
        print(f"  {'  ' * row['depth']}{row['module']:<50} {row['ms']:>7}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
