"""Where the router's time goes: the ASGI app in-process, driven through ``POST /api/route``.

    .venv/bin/python -m bench.bench_profile       # writes bench/results/profile.json (+ profile.txt)

The app is called the way the Functions ASGI adapter calls it (one scope, one body message, no HTTP
server in between); the upstream simulator and Azurite are real processes on loopback. Three passes
over the same request:

1. phases: wall time of each step of the request path (timers wrapped around the service's methods),
   and this process's CPU time per request;
2. attribution: CPU per request with the cost-record writer replaced by a no-op, and a raw aiohttp
   call to the same upstream, so the SDK's and the Table write's share can be read off;
3. cProfile of N requests: the top functions by own time, and own time summed per package.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import (
    API_VERSION,
    RESULTS_DIR,
    SIM_TOKEN,
    check_alive,
    machine,
    seed_models,
    start_simulator,
    us_stats,
    utc_now,
    write_result,
)

QUERY = "What is the capital of France?"
BODY = json.dumps({"query": QUERY}).encode()


async def call_asgi(app: Any, body: bytes = BODY, path: str = "/api/route") -> tuple[int, bytes]:
    """One request through the ASGI app, as the Functions adapter sends it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "server": ("127.0.0.1", 7071),
        "client": ("127.0.0.1", 50000),
        "state": {},
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    status = 0
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


class Timers:
    """Wall-clock timers wrapped around methods and module functions; ``restore()`` undoes them."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._undo: list[Callable[[], None]] = []

    def _remember(self, obj: Any, attr: str) -> None:
        if attr in vars(obj):
            original = vars(obj)[attr]
            self._undo.append(lambda: setattr(obj, attr, original))
        else:
            self._undo.append(lambda: delattr(obj, attr))

    def restore(self) -> None:
        while self._undo:
            self._undo.pop()()

    def wrap(self, obj: Any, attr: str, label: str) -> None:
        inner: Callable[..., Awaitable[Any]] = getattr(obj, attr)
        self._remember(obj, attr)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                self.samples[label].append(time.perf_counter() - start)

        setattr(obj, attr, timed)

    def wrap_sync(self, module: Any, attr: str, label: str) -> None:
        inner = getattr(module, attr, None)
        if inner is None:
            return
        self._remember(module, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.samples[label].append(time.perf_counter() - start)

        setattr(module, attr, timed)


async def requests(app: Any, n: int) -> tuple[float, float, list[float]]:
    """(wall s per request, CPU s per request, per-request wall samples)."""
    samples = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        start = time.perf_counter()
        status, body = await call_asgi(app)
        samples.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    return (time.perf_counter() - wall0) / n, (time.process_time() - cpu0) / n, samples


async def raw_upstream(sim_url: str, n: int) -> tuple[float, float]:
    import aiohttp

    url = f"{sim_url}/openai/deployments/gpt-4.1-nano/chat/completions?api-version={API_VERSION}"
    body = json.dumps({"messages": [{"role": "user", "content": QUERY}]})
    headers = {"authorization": f"Bearer {SIM_TOKEN}", "content-type": "application/json"}
    async with aiohttp.ClientSession() as session:
        for _ in range(20):
            async with session.post(url, data=body, headers=headers) as r:
                json.loads(await r.read())
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            async with session.post(url, data=body, headers=headers) as r:
                json.loads(await r.read())
    return (time.perf_counter() - wall0) / n, (time.process_time() - cpu0) / n


def package_of(filename: str) -> str:
    if "site-packages/" in filename:
        rest = filename.split("site-packages/", 1)[1]
        parts = rest.split("/")
        if parts[0] == "azure" and len(parts) > 2:
            return f"azure.{parts[1]}" if parts[1] != "data" else "azure.data.tables"
        return parts[0].removesuffix(".py")
    if "/router/" in filename:
        return "router (this project)"
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C: sockets, json, select…)"
    if "/lib/python3" in filename:
        mod = filename.split("/lib/python3", 1)[1].split("/", 2)
        return f"stdlib {mod[1].removesuffix('.py')}" if len(mod) > 1 else "stdlib"
    return filename


def profile_summary(prof: cProfile.Profile, n: int, top: int) -> tuple[list[dict[str, Any]], list[dict]]:
    stats = pstats.Stats(prof)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    rows = []
    by_pkg: dict[str, float] = defaultdict(float)
    for (filename, line, func), (_cc, ncalls, tottime, cumtime, _callers) in raw.items():
        by_pkg[package_of(filename)] += tottime
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({func})",
                "calls_per_request": round(ncalls / n, 2),
                "own_us_per_request": round(tottime / n * 1e6, 1),
                "cum_us_per_request": round(cumtime / n * 1e6, 1),
                "own_share": round(tottime / total, 4),
            }
        )
    rows.sort(key=lambda r: r["own_us_per_request"], reverse=True)
    pkgs = [
        {"package": k, "own_us_per_request": round(v / n * 1e6, 1), "share": round(v / total, 4)}
        for k, v in sorted(by_pkg.items(), key=lambda kv: kv[1], reverse=True)
    ]
    return rows[:top], pkgs[:20]


# Entry points whose cumulative time (under cProfile: time on the CPU while running, not while
# awaiting) says which subsystem the request's work is in.
ENTRY_POINTS = {
    "FastAPI app, whole request (edge + handler + service)": ("fastapi/applications.py", "__call__"),
    "service.route (classify + route + upstream + record)": ("router/pipeline/service.py", "route"),
    "openai SDK chat.completions.create (incl. httpx2 I/O)": ("chat/completions/completions.py", "create"),
    "  of which: request building (_build_request)": ("openai/_base_client.py", "_build_request"),
    "  of which: params transform (async_maybe_transform)": (
        "openai/_utils/_transform.py",
        "async_maybe_transform",
    ),
    "  of which: response parsing (_process_response)": ("openai/_base_client.py", "_process_response"),
    "  of which: Entra token provider (azure-identity wrapper)": ("_bearer_token_provider.py", "wrapper"),
    "Table upsert_entity (azure-data-tables + azure-core + aiohttp)": (
        "_table_client_async.py",
        "upsert_entity",
    ),
    "CostRecord.to_entity": ("router/cost_records.py", "to_entity"),
    "classify (router)": ("router/pipeline/classify.py", "classify"),
}


def entry_point_summary(prof: cProfile.Profile, n: int) -> dict[str, float]:
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for label, (path_part, func) in ENTRY_POINTS.items():
        cum = sum(v[3] for (f, _l, fn), v in raw.items() if fn == func and path_part in f)
        if cum:
            out[label] = round(cum / n * 1e6, 1)
    return out


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


VARIANT_B = {"UPSTREAM_CLIENT": "aiohttp"}  # the shipped opt-in: no openai SDK on non-streaming calls


async def cpu_profile(app: Any, n: int) -> cProfile.Profile:
    """cProfile on the process CPU clock, so time spent descheduled on a busy machine is not counted."""
    recorder = (await app.state.runtime.service()).recorder
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    await requests(app, n)
    if hasattr(recorder, "idle"):
        await recorder.idle()
    prof.disable()
    return prof


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import os

    from bench.servers import router_app
    from router.dev.azurite import Azurite

    azurite = Azurite().start()
    sim, sim_url = start_simulator(tmp)
    apps: list[Any] = []
    try:
        await seed_models(sim_url, azurite.connection_string)
        os.environ.update(
            AZURE_OPENAI_ENDPOINT=sim_url,
            ALLOW_LOOPBACK_ENDPOINTS="true",
            AZURE_OPENAI_API_VERSION=API_VERSION,
            TABLES_CONNECTION_STRING=azurite.connection_string,
        )
        app = router_app()  # create_app(Runtime(settings, credential=SimulatorCredential()))
        apps.append(app)
        runtime = app.state.runtime
        status, body = await call_asgi(app)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["classifier"] not in ("llm", "heuristic-fallback"), answer  # no judge call
        await requests(app, args.warmup)
        service = await runtime.service()

        # 1. phases
        timers = Timers()
        timers.wrap(service, "route", "service.route (all below)")
        timers.wrap(service, "models", "catalogue (in memory)")
        timers.wrap(service, "classify", f"classify (scorer: {answer['classifier']})")
        import router.pipeline.service as service_module

        timers.wrap_sync(service_module, "choose", "route decision (choose)")
        timers.wrap_sync(service_module, "fallback_chain", "fallback chain")
        timers.wrap(service.clients, "chat", "upstream call (openai SDK + HTTP + simulator)")
        if hasattr(service, "record"):
            timers.wrap(service, "record", "cost record (build + hand-off)")
        timers.wrap(service.recorder, "record", "cost record hand-off (recorder.record)")
        wall, cpu, samples = await requests(app, args.requests)
        recorder = service.recorder
        if hasattr(recorder, "idle"):
            await recorder.idle()
        total = us_stats(samples)
        phases = {"total (ASGI app, in-process)": total}
        for label, s in timers.samples.items():
            phases[label] = us_stats(s)
        route_p50 = phases["service.route (all below)"]["p50_us"]
        phases["edge: ASGI/FastAPI/middleware/validation/response (total - service.route, p50)"] = {
            "p50_us": round(total["p50_us"] - route_p50, 2)
        }
        timers.restore()
        check_alive(azurite, sim)

        # 2. attribution by subtraction
        cpu_full = cpu
        # the HTTP edge alone: service.route answers a cached result at once
        cached: list[Any] = []
        real_route = service.route

        async def capture(*a: Any, **kw: Any) -> Any:
            cached.append(await real_route(*a, **kw))
            return cached[-1]

        service.route = capture
        await requests(app, 1)

        async def canned(*a: Any, **kw: Any) -> Any:
            return cached[-1]

        service.route = canned
        _, cpu_edge, edge_samples = await requests(app, args.requests // 2)
        del service.route

        async def no_record(rec: Any) -> None:
            return None

        recorder.record = no_record
        _, cpu_nowrite, _ = await requests(app, args.requests // 2)
        del recorder.record
        raw_wall, raw_cpu = await raw_upstream(sim_url, args.requests // 2)
        sdk_samples: list[float] = []
        messages = [{"role": "user", "content": QUERY}]
        cpu0 = time.process_time()
        for _ in range(args.requests // 2):
            start = time.perf_counter()
            await service.clients.chat(sim_url, "gpt-4.1-nano", messages, timeout_s=30)
            sdk_samples.append(time.perf_counter() - start)
        sdk_cpu = (time.process_time() - cpu0) / (args.requests // 2)

        # the same requests with UPSTREAM_CLIENT=aiohttp
        app_b = router_app(**VARIANT_B)
        apps.append(app_b)
        await requests(app_b, args.warmup)
        cpu_default = cpu_b = 0.0
        for _ in range(2):  # interleaved, so both see the same background load
            cpu_default += (await requests(app, args.requests // 2))[1] / 2
            cpu_b += (await requests(app_b, args.requests // 2))[1] / 2
        attribution = {
            "cpu_us_per_request_full": round(cpu_full * 1e6, 1),
            "http_edge_only_cpu_us (service.route stubbed)": round(cpu_edge * 1e6, 1),
            "http_edge_only_wall": us_stats(edge_samples),
            "cpu_us_per_request_without_cost_write": round(cpu_nowrite * 1e6, 1),
            "cost_write_cpu_us (difference)": round((cpu_full - cpu_nowrite) * 1e6, 1),
            "upstream_call_openai_sdk_cpu_us": round(sdk_cpu * 1e6, 1),
            "upstream_call_openai_sdk_wall": us_stats(sdk_samples),
            "upstream_call_raw_aiohttp_cpu_us": round(raw_cpu * 1e6, 1),
            "upstream_call_raw_aiohttp_wall_us": round(raw_wall * 1e6, 1),
            "rest_of_router_cpu_us (no write, minus SDK call)": round((cpu_nowrite - sdk_cpu) * 1e6, 1),
            "wall_us_per_request_full": round(wall * 1e6, 1),
            "cpu_us_per_request default (interleaved with B)": round(cpu_default * 1e6, 1),
            "cpu_us_per_request UPSTREAM_CLIENT=aiohttp": round(cpu_b * 1e6, 1),
        }

        # 3. cProfile (CPU clock) of the default, then of UPSTREAM_CLIENT=aiohttp
        check_alive(azurite, sim)
        prof = await cpu_profile(app, args.requests)
        top, pkgs = profile_summary(prof, args.requests, args.top)
        entries = entry_point_summary(prof, args.requests)
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(60)
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(60)
        prof_b = await cpu_profile(app_b, args.requests)
        top_b, pkgs_b = profile_summary(prof_b, args.requests, args.top)
        text.write("\n\n===== UPSTREAM_CLIENT=aiohttp =====\n")
        pstats.Stats(prof_b, stream=text).sort_stats("tottime").print_stats(40)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        check_alive(azurite, sim)
        (RESULTS_DIR / "profile.txt").write_text(text.getvalue())
        return {
            "benchmark": "profile",
            "generated_at": utc_now(),
            "command": "python -m bench.bench_profile",
            "machine": machine(),
            "query": QUERY,
            "requests": args.requests,
            "settings": "defaults (judge enabled but not asked: the query is outside the band)",
            "classifier": answer["classifier"],
            "phases_us": phases,
            "attribution": attribution,
            "cprofile_clock": "process CPU time (time.process_time)",
            "cprofile_cum_us_per_request_by_subsystem": entries,
            "cprofile_top_own_time": top,
            "cprofile_own_time_by_package": pkgs,
            "variant_b": {
                "settings": VARIANT_B,
                "cprofile_top_own_time": top_b,
                "cprofile_own_time_by_package": pkgs_b,
            },
            "note": "cProfile inflates call-heavy code; use it for ranking, phases/attribution for sizes",
        }
    finally:
        for a in apps:
            await a.state.runtime.close()
        sim.stop()
        azurite.stop()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_profile", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        result = asyncio.run(run(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    path = write_result("profile", result)
    print("phases (µs):")
    for k, v in result["phases_us"].items():
        print(f"  {k:<85} {v}")
    print("attribution:")
    for k, v in result["attribution"].items():
        print(f"  {k:<55} {v}")
    print("cumulative time by subsystem (µs/request under cProfile):")
    for k, v in result["cprofile_cum_us_per_request_by_subsystem"].items():
        print(f"  {k:<70} {v:>9}")
    print("own time by package (µs/request under cProfile):")
    for row in result["cprofile_own_time_by_package"][:12]:
        print(f"  {row['package']:<45} {row['own_us_per_request']:>8}  {row['share']:.1%}")
    print("UPSTREAM_CLIENT=aiohttp, own time by package:")
    for row in result["variant_b"]["cprofile_own_time_by_package"][:10]:
        print(f"  {row['package']:<45} {row['own_us_per_request']:>8}  {row['share']:.1%}")
    print("top functions by own time:")
    for row in result["cprofile_top_own_time"][:15]:
        print(f"  {row['own_us_per_request']:>8} µs  {row['function']}")
    print(f"wrote {path} and {RESULTS_DIR / 'profile.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
