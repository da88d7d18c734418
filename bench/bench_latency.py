"""Added latency and throughput: direct vs the router vs LiteLLM's proxy, same upstream, same run.

    .venv/bin/python -m bench.bench_latency            # writes bench/results/latency.json

Every process is on 127.0.0.1 and separate: the Azure OpenAI simulator (zero delay), Azurite (the cost
records), the router under uvicorn, LiteLLM's proxy (from bench/litellm-venv, if installed) and this
client. One aiohttp client with keep-alive sends the *same* question to every target, so the client's
own cost cancels out of "added latency" = p50(through X) - p50(direct). Sequential requests are
interleaved in rounds (direct, router, LiteLLM, ...) so a noisy neighbour hits every target alike.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp

from bench.common import (
    API_VERSION,
    LITELLM_VENV,
    SIM_TOKEN,
    Proc,
    bench_env,
    check_alive,
    latency_stats,
    litellm_versions,
    machine,
    seed_models,
    settle,
    start_router,
    start_simulator,
    utc_now,
    wait_http,
    write_result,
)

# Scores far below the judge band (0.3-0.7) with every built-in scorer (0.03 seed, ~0.003 learned), so no
# judge call is made and the cheapest model (gpt-4.1-nano) answers. The judge stays enabled (defaults).
QUERY = "What is the capital of France?"
DEPLOYMENT = "gpt-4.1-nano"
CLASSIFIERS_SEEN: set[str] = set()
SETTLED: list[float] = []
LITELLM_KEY = "sk-bench-" + secrets.token_hex(16)


@dataclass
class Target:
    name: str
    url: str
    body: bytes
    headers: dict[str, str]
    proc: Proc | None = None  # the gateway process (CPU accounting); None for direct
    check: Any = None
    seq: list[float] = field(default_factory=list)
    ok: int = 0  # every 200 answer, all phases (to check the cost records written)
    cpu: dict[str, float] = field(default_factory=dict)
    errors: int = 0

    def add_cpu(self, key: str, seconds: float) -> None:
        self.cpu[key] = self.cpu.get(key, 0.0) + seconds


def chat_body(model: str | None) -> bytes:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": QUERY}]}
    if model is not None:
        body["model"] = model
    return json.dumps(body).encode()


async def send(session: aiohttp.ClientSession, t: Target) -> tuple[float, bytes]:
    start = time.perf_counter()
    async with session.post(t.url, data=t.body, headers=t.headers) as resp:
        data = await resp.read()
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"{t.name}: HTTP {resp.status}: {data[:300]!r}")
    t.ok += 1
    return elapsed, data


def check_chat(data: dict[str, Any]) -> None:
    content = data["choices"][0]["message"]["content"]
    assert content.startswith("[simulated"), content


def check_route(data: dict[str, Any]) -> None:
    assert data["model_used"] == DEPLOYMENT, data
    # The scorer's own kind ("heuristic", "learned"): the judge was not called on the path.
    assert data["classifier"] not in ("llm", "heuristic-fallback"), data
    CLASSIFIERS_SEEN.add(data["classifier"])
    assert data["response"].startswith("[simulated"), data


# -- LiteLLM ------------------------------------------------------------------------------------
LITELLM_CONFIG = """\
model_list:
  - model_name: {deployment}
    litellm_params:
      model: azure/{deployment}
      api_base: {sim_url}
      api_version: "{api_version}"
      # The simulator, like Azure with Entra ID, wants "Authorization: Bearer"; LiteLLM sends that for
      # azure_ad_token (an api_key would go in the "api-key" header instead).
      azure_ad_token: {token}
      max_retries: 0  # as the router (SDK retries off); no effect here, nothing fails
"""


def start_litellm(log_dir: Path, sim_url: str, port: int) -> Proc:
    cfg = log_dir / "litellm.yaml"
    cfg.write_text(
        LITELLM_CONFIG.format(
            deployment=DEPLOYMENT, sim_url=sim_url, api_version=API_VERSION, token=SIM_TOKEN
        )
    )
    env = bench_env(
        LITELLM_MASTER_KEY=LITELLM_KEY,  # it refuses to start without one
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: use the bundled price map, fetch nothing
        LITELLM_TELEMETRY="False",
        LITELLM_LOG="ERROR",
        DISABLE_SCHEMA_UPDATE="True",
        NO_DOCS="True",
    )
    env.pop("PYTHONPATH", None)
    argv = [
        str(LITELLM_VENV / "bin" / "litellm"),
        "--config",
        str(cfg),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = Proc("litellm", argv, env=env, log_path=log_dir / "litellm.log").start()
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180, proc)
    time.sleep(1.0)  # let it finish its start-up tasks before the tree is read
    proc.refresh_tree()
    return proc


# -- measurement --------------------------------------------------------------------------------
async def warm_up(sessions: dict[str, aiohttp.ClientSession], targets: list[Target], n: int) -> None:
    for t in targets:
        _, data = await send(sessions[t.name], t)
        if t.check:
            t.check(json.loads(data))
        for _ in range(n - 1):
            await send(sessions[t.name], t)


async def sequential(
    sessions: dict[str, aiohttp.ClientSession],
    targets: list[Target],
    servers: dict[str, Proc],
    requests: int,
    rounds: int,
    time_cap_s: float,
) -> None:
    per_round = max(1, requests // rounds)
    deadline = time.monotonic() + time_cap_s
    for r in range(rounds):
        if time.monotonic() > deadline:
            print(f"  sequential: time cap reached after {r} rounds")
            break
        order = targets[r % len(targets) :] + targets[: r % len(targets)]
        for t in order:
            SETTLED.append(await asyncio.to_thread(settle, list(servers.values())))
            before = {k: p.cpu() for k, p in servers.items()}
            s = sessions[t.name]
            for _ in range(per_round):
                try:
                    elapsed, _ = await send(s, t)
                    t.seq.append(elapsed)
                except Exception as exc:
                    t.errors += 1
                    print(f"  {t.name}: {exc}")
            for k, p in servers.items():
                t.add_cpu(k, p.cpu() - before[k])


async def throughput(
    t: Target, servers: dict[str, Proc], concurrency: int, max_requests: int, max_seconds: float
) -> dict[str, Any]:
    settled = await asyncio.to_thread(settle, list(servers.values()))
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(send(session, t) for _ in range(concurrency)))  # open the connections
        lat: list[float] = []
        errors = 0
        issued = 0
        before = {k: p.cpu() for k, p in servers.items()}
        start = time.perf_counter()
        deadline = start + max_seconds

        async def worker() -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                try:
                    lat.append((await send(session, t))[0])
                except Exception:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        cpu = {k: p.cpu() - before[k] for k, p in servers.items()}
    done = len(lat)
    return {
        "concurrency": concurrency,
        "completed": done,
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": round(done / elapsed, 1) if elapsed else 0.0,
        "latency": latency_stats(lat),
        "cpu_ms_per_request": {k: round(v * 1000 / done, 3) for k, v in cpu.items()} if done else {},
        "settle_s_before": settled,
    }


async def sdk_direct(sim_url: str, requests: int) -> dict[str, Any]:
    """Informational: the same call with the openai SDK (what an app calling Azure directly pays)."""
    from openai import AsyncAzureOpenAI

    client = AsyncAzureOpenAI(
        azure_endpoint=sim_url, api_version=API_VERSION, azure_ad_token=SIM_TOKEN, max_retries=0
    )
    messages: Any = [{"role": "user", "content": QUERY}]
    try:
        for _ in range(50):
            await client.chat.completions.create(model=DEPLOYMENT, messages=messages)
        lat = []
        for _ in range(requests):
            start = time.perf_counter()
            await client.chat.completions.create(model=DEPLOYMENT, messages=messages)
            lat.append(time.perf_counter() - start)
    finally:
        await client.close()
    return latency_stats(lat)


async def count_cost_records(tables: str) -> int:
    from azure.data.tables.aio import TableServiceClient

    async with TableServiceClient.from_connection_string(tables) as svc:
        table = svc.get_table_client("costs")
        return sum([1 async for _ in table.list_entities(select=["RowKey"], results_per_page=1000)])


def chat_target(router_url: str, proc: Proc) -> Target | None:
    """The router's OpenAI-compatible endpoint, if this build has it (from its OpenAPI)."""
    import urllib.request

    with urllib.request.urlopen(f"{router_url}/api/openapi.json", timeout=10) as resp:
        paths = json.load(resp).get("paths", {})
    if "/api/v1/chat/completions" not in paths:
        return None
    url = f"{router_url}/api/v1/chat/completions"
    for model in (None, "auto", DEPLOYMENT):
        req = urllib.request.Request(
            url, data=chat_body(model), headers={"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status == 200:
                    return Target(
                        "router /api/v1/chat/completions",
                        url,
                        chat_body(model),
                        {"content-type": "application/json"},
                        proc,
                        check_chat,
                    )
        except OSError:
            continue
    print("  /api/v1/chat/completions exists but answered no probe with 200; skipped")
    return None


# -- main ---------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from router.dev.azurite import Azurite

    procs: list[Proc] = []
    azurite = Azurite().start()
    try:
        sim, sim_url = start_simulator(tmp)
        procs.append(sim)
        await seed_models(sim_url, azurite.connection_string)
        router, router_url = start_router(tmp, sim_url, azurite.connection_string)
        procs.append(router)
        azurite_proc = Proc("azurite", [])
        assert azurite.process is not None
        azurite_proc.popen = azurite.process  # accounting only; Azurite() stops it
        azurite_proc.refresh_tree()
        servers: dict[str, Proc] = {p.name: p for p in (sim, azurite_proc, router)}

        json_headers = {"content-type": "application/json"}
        direct = Target(
            "direct",
            f"{sim_url}/openai/deployments/{DEPLOYMENT}/chat/completions?api-version={API_VERSION}",
            chat_body(DEPLOYMENT),
            {**json_headers, "authorization": f"Bearer {SIM_TOKEN}"},
            None,
            check_chat,
        )
        route = Target(
            "router /api/route",
            f"{router_url}/api/route",
            json.dumps({"query": QUERY}).encode(),
            json_headers,
            router,
            check_route,
        )
        targets = [direct, route]
        chat = chat_target(router_url, router)
        if chat is not None:
            targets.append(chat)
        if args.variants:
            # Shipped settings, one router process each: the aiohttp upstream client, and waiting for the
            # cost write.
            # The last one is a BENCH-ONLY PATCH (servers.py --discard-cost-records), labelled as such: what
            # writing the cost records costs, the router's share and Azurite's.
            variants = [("UPSTREAM_CLIENT=aiohttp", {"UPSTREAM_CLIENT": "aiohttp"}, True, ()),
                        ("COST_WRITE_MODE=inline", {"COST_WRITE_MODE": "inline"}, False, ()),
                        ("UPSTREAM_CLIENT=aiohttp, bench-only: cost records discarded",
                         {"UPSTREAM_CLIENT": "aiohttp"}, False, ("--discard-cost-records",))]  # fmt: skip
            for i, (label, env, with_chat, args_) in enumerate(variants):
                vp, vurl = start_router(
                    tmp, sim_url, azurite.connection_string, name=f"router-v{i}", args=args_, **env
                )
                procs.append(vp)
                servers[vp.name] = vp
                name = f"router /api/route [{label}]"
                targets.append(Target(name, f"{vurl}/api/route", route.body, json_headers, vp, check_route))
                vchat = chat_target(vurl, vp) if with_chat else None
                if vchat is not None:
                    targets.append(replace(vchat, name=f"{vchat.name} [{label}]"))
        litellm_error = None
        if args.litellm and (LITELLM_VENV / "bin" / "litellm").exists():
            try:
                port = _free_port()
                lp = start_litellm(tmp, sim_url, port)
                procs.append(lp)
                servers[lp.name] = lp
                targets.append(
                    Target(
                        "litellm proxy",
                        f"http://127.0.0.1:{port}/v1/chat/completions",
                        chat_body(DEPLOYMENT),
                        {**json_headers, "authorization": f"Bearer {LITELLM_KEY}"},
                        lp,
                        check_chat,
                    )
                )
            except Exception as exc:
                litellm_error = f"{type(exc).__name__}: {exc}"[-3000:]
                print(f"LiteLLM did not start: {litellm_error}")
        elif args.litellm:
            litellm_error = f"{LITELLM_VENV} not found: run bench/setup_litellm.sh"
            print(litellm_error)

        names = [t.name for t in targets]
        print(f"targets: {', '.join(names)}")
        sessions = {t.name: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) for t in targets}
        try:
            print(f"warm-up: {args.warmup} requests per target")
            await warm_up(sessions, targets, args.warmup)
            print(f"sequential: {args.requests} requests per target in {args.rounds} interleaved rounds")
            await sequential(sessions, targets, servers, args.requests, args.rounds, args.seq_seconds)
        finally:
            for s in sessions.values():
                await s.close()

        check_alive(azurite, *procs)
        sdk = await sdk_direct(sim_url, min(args.requests, 500)) if args.sdk else None

        tput: dict[str, dict[str, Any]] = {}
        for c in args.concurrency:
            tput[str(c)] = {}
            for t in targets:
                res = await throughput(t, servers, c, args.tput_requests, args.tput_seconds)
                tput[str(c)][t.name] = res
                print(f"  c={c:<3} {t.name:<55} {res['rps']:>8.1f} req/s  p50 {res['latency']['p50_ms']} ms")

        check_alive(azurite, *procs)
        router_requests = sum(
            t.ok for t in targets if t.name.startswith("router") and "discarded" not in t.name
        )
        await asyncio.to_thread(settle, list(servers.values()))
        stored_before = await count_cost_records(azurite.connection_string)
        # Graceful stop (SIGTERM: uvicorn runs the lifespan shutdown, which drains parked records).
        for p in procs:
            if p.name.startswith("router"):
                await asyncio.to_thread(p.stop, 40.0)
        stored_after = await count_cost_records(azurite.connection_string)
        failures = {
            p.name: {
                "write_failed_log_lines": _count_in_log(p, "cost record write failed"),
                "not_stored_at_shutdown_log_lines": _count_in_log(p, "not stored at shutdown"),
            }
            for p in procs
            if p.name.startswith("router")
        }
        records = {
            "router_requests_answered": router_requests,
            "stored_before_shutdown": stored_before,
            "stored_after_graceful_shutdown": stored_after,
            "per_router_log": failures,
        }
        return summarize(args, targets, tput, sdk, litellm_error, records)
    finally:
        for p in reversed(procs):
            p.stop()
        azurite.stop()


def _count_in_log(proc: Proc, needle: str) -> int:
    if proc.log_path is None or not proc.log_path.exists():
        return 0
    return proc.log_path.read_text(errors="replace").count(needle)


def _free_port() -> int:
    from bench.common import free_port

    return free_port()


def summarize(
    args: argparse.Namespace,
    targets: list[Target],
    tput: dict[str, dict[str, Any]],
    sdk: dict[str, Any] | None,
    litellm_error: str | None,
    records: dict[str, Any],
) -> dict[str, Any]:
    seq = {}
    for t in targets:
        n = len(t.seq) or 1
        cpu = {k: round(v * 1000 / n, 3) for k, v in t.cpu.items()}
        seq[t.name] = {
            **latency_stats(t.seq),
            "errors": t.errors,
            "gateway_cpu_ms_per_request": cpu.get(t.proc.name) if t.proc else None,
            "cpu_ms_per_request": cpu,
        }
    base = seq["direct"]
    added = {}
    for name, s in seq.items():
        if name == "direct":
            continue
        added[name] = {
            "p50_ms": round(s["p50_ms"] - base["p50_ms"], 4),
            "p99_ms": round(s["p99_ms"] - base["p99_ms"], 4),
            "mean_ms": round(s["mean_ms"] - base["mean_ms"], 4),
        }
    ratios: dict[str, Any] = {}
    lite = added.get("litellm proxy")
    if lite:
        for name, a in added.items():
            if name != "litellm proxy" and lite["p50_ms"] > 0:
                ratios[f"{name} / litellm (added p50)"] = round(a["p50_ms"] / lite["p50_ms"], 3)
                ratios[f"{name} / litellm (added p99)"] = round(a["p99_ms"] / lite["p99_ms"], 3)
        for c, row in tput.items():
            for name in ("router /api/route", "router /api/route [UPSTREAM_CLIENT=aiohttp]"):
                if "litellm proxy" in row and name in row and row["litellm proxy"]["rps"]:
                    ratios[f"{name} / litellm (throughput c={c})"] = round(
                        row[name]["rps"] / row["litellm proxy"]["rps"], 3
                    )
    goals = {}
    aiohttp_route = "router /api/route [UPSTREAM_CLIENT=aiohttp]"
    for name, tag in (("router /api/route", "default"), (aiohttp_route, "aiohttp")):
        if name in added:
            route_added = added[name]["p50_ms"]
            goals[f"route_added_p50_under_1ms ({tag})"] = route_added < 1.0
            goals[f"route_added_p50_at_most_half_of_litellm ({tag})"] = (
                route_added <= 0.5 * lite["p50_ms"] if lite else None
            )
    return {
        "benchmark": "latency",
        "generated_at": utc_now(),
        "command": "python -m bench.bench_latency " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "query": QUERY,
        "deployment": DEPLOYMENT,
        "router_classifier": sorted(CLASSIFIERS_SEEN),
        "setup": {
            "client": f"aiohttp {aiohttp.__version__} ClientSession, keep-alive, same for every target",
            "upstream": "router.dev.simulator.Simulator under uvicorn, own process, zero delay, "
            "keep_seen=False",
            "router": (
                "create_app(Runtime(settings, credential=SimulatorCredential())) under uvicorn defaults "
                f"(loop: {'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'}, "
                f"http: {'httptools' if importlib.util.find_spec('httptools') else 'h11'}), own process; "
                "default settings (default CLASSIFIER, JUDGE_ENABLED=true: the query is outside the judge "
                "band, so no judge call); every request makes a cost record, written to Azurite"
            ),
            "litellm": (
                "litellm --config (model azure/<deployment>, api_base = simulator, azure_ad_token), "
                "LITELLM_MASTER_KEY set (it refuses to start without one), "
                "LITELLM_LOCAL_MODEL_COST_MAP=True, no database, "
                "otherwise defaults; own process, own venv (bench/litellm-venv)"
            ),
            "litellm_versions": litellm_versions(),
            "litellm_error": litellm_error,
            "requests": args.requests,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "throughput": {
                "concurrency": args.concurrency,
                "max_requests": args.tput_requests,
                "max_seconds": args.tput_seconds,
            },
        },
        "sequential": seq,
        "direct_openai_sdk_sequential": sdk,
        "added_vs_direct": added,
        "ratios": ratios,
        "throughput": tput,
        "cost_records": records,
        "settle_s_between_sequential_chunks": {
            "total": round(sum(SETTLED), 2),
            "max": max(SETTLED, default=0.0),
        },
        "goals": goals,
    }


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bench_latency", description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000, help="sequential requests per target")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds the requests are split into")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--seq-seconds", type=float, default=150, help="time cap for the sequential phase")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    p.add_argument("--tput-requests", type=int, default=1000, help="max requests per throughput cell")
    p.add_argument("--tput-seconds", type=float, default=4.0, help="max seconds per throughput cell")
    p.add_argument("--no-litellm", dest="litellm", action="store_false")
    p.add_argument("--no-variants", dest="variants", action="store_false", help="skip the variant routers")
    p.add_argument("--no-sdk", dest="sdk", action="store_false", help="skip the openai-SDK direct row")
    p.add_argument("--keep-logs", action="store_true", help="keep server logs (printed path)")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        result = asyncio.run(run(args, tmp))
    finally:
        if args.keep_logs:
            print(f"server logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    path = write_result("latency", result)
    print_table(result)
    print(f"wrote {path}")
    return 0


def print_table(r: dict[str, Any]) -> None:
    print(f"\n{'target':<55} {'p50 ms':>8} {'p99 ms':>8} {'+p50':>8} {'+p99':>8}  gateway CPU ms/req")
    for name, s in r["sequential"].items():
        a = r["added_vs_direct"].get(name, {"p50_ms": 0.0, "p99_ms": 0.0})
        gw = s["gateway_cpu_ms_per_request"]
        print(
            f"{name:<55} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f} {a['p50_ms']:>8.3f} {a['p99_ms']:>8.3f}"
            f"  {gw if gw is not None else '-'}"
        )
    for k, v in r["ratios"].items():
        print(f"  {k}: {v}")
    print(f"  goals: {r['goals']}")


if __name__ == "__main__":
    raise SystemExit(main())
