"""Shared helpers for the benchmarks: the loopback stack, statistics, process CPU, machine facts.

Everything here talks to 127.0.0.1 only and every loop is bounded.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
LITELLM_VENV = BENCH_DIR / "litellm-venv"
LITELLM_PYTHON = LITELLM_VENV / "bin" / "python"
SAMPLE_MODELS = REPO_ROOT / "models.sample.json"
API_VERSION = "2024-10-21"
# Fixed Entra-style token the simulator accepts ("Bearer <at least 5 chars>"); loopback only.
SIM_TOKEN = "bench-simulator-token"
MSI_HEADER = "bench-identity-header"
PROJECT_PACKAGES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "pydantic-core",
    "openai",
    "httpx2",
    "aiohttp",
    "azure-core",
    "azure-data-tables",
    "azure-identity",
    "azure-functions",
)


# -- statistics ----------------------------------------------------------------------------------
def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def latency_stats(samples_s: list[float]) -> dict[str, float]:
    """p50/p90/p99/mean/min/max in milliseconds from samples in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 4),
        "p90_ms": round(percentile(ms, 90), 4),
        "p99_ms": round(percentile(ms, 99), 4),
        "mean_ms": round(sum(ms) / len(ms), 4),
        "min_ms": round(ms[0], 4),
        "max_ms": round(ms[-1], 4),
    }


def us_stats(samples_s: list[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in samples_s)
    if not us:
        return {"n": 0}
    return {
        "n": len(us),
        "p50_us": round(percentile(us, 50), 2),
        "p99_us": round(percentile(us, 99), 2),
        "mean_us": round(sum(us) / len(us), 2),
    }


# -- processes -----------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    children = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """user+system CPU seconds used so far by these processes (resolution: one clock tick)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _CLK_TCK


@dataclass
class Proc:
    """A child process we started, in its own session so that it and its children stop together."""

    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    pids: list[int] = field(default_factory=list)

    def start(self) -> Proc:
        log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.popen = subprocess.Popen(
            self.argv,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def refresh_tree(self) -> list[int]:
        self.pids = process_tree(self.pid)
        return self.pids

    def cpu(self) -> float:
        return cpu_seconds(self.pids or [self.pid])

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.popen = self.popen, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group we created for this child only
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)


def settle(procs: list[Proc], max_s: float = 30.0, window_s: float = 0.25, busy_frac: float = 0.1) -> float:
    """Wait (bounded) until these processes are idle: less than ``busy_frac`` of a core over a window.

    Background work a previous target left behind (cost records still being written, Azurite's backlog)
    must not run during the next target's measurement. Returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < max_s:
        before = sum(p.cpu() for p in procs)
        time.sleep(window_s)
        if sum(p.cpu() for p in procs) - before < busy_frac * window_s:
            break
    return round(time.monotonic() - start, 2)


def check_alive(azurite: Any, *procs: Proc) -> None:
    """Fail loudly (instead of measuring errors) if Azurite or a server died during the run."""
    proc = getattr(azurite, "process", None)
    if proc is None or proc.poll() is not None:
        err = ""
        if proc is not None and proc.stderr is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"Azurite is no longer running (exit {proc.poll() if proc else None}): {err}")
    for p in procs:
        if p.popen is not None and not p.alive():
            raise RuntimeError(f"{p.name} exited during the run; log: {tail(p.log_path)}")


def wait_http(url: str, timeout_s: float, proc: Proc | None = None) -> None:
    """Poll until ``url`` answers (any status); raises with the server log tail on failure."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early; log: {tail(proc.log_path)}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # loopback only
                return
        except urllib.error.HTTPError:
            return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    log = tail(proc.log_path) if proc else ""
    raise TimeoutError(f"{url} did not answer within {timeout_s}s ({last}); log: {log}")


def tail(path: Path | None, n: int = 3000) -> str:
    if path is None or not path.exists():
        return ""
    return path.read_text(errors="replace")[-n:]


def free_port() -> int:
    from router.dev.azurite import free_port as _free

    return _free()


# -- the stack -----------------------------------------------------------------------------------
def bench_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "TABLES_", "IDENTITY_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["ALLOW_LOOPBACK_ENDPOINTS"] = "true"  # the simulator is on loopback
    env.update(extra)
    return env


def start_simulator(log_dir: Path) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        "simulator",
        [sys.executable, "-m", "bench.servers", "sim", "--port", str(port)],
        env=bench_env(),
        log_path=log_dir / "simulator.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health", 30, proc)
    proc.refresh_tree()
    return proc, url


def router_env(sim_url: str, tables: str, **extra: str) -> dict[str, str]:
    return bench_env(
        AZURE_OPENAI_ENDPOINT=sim_url,
        AZURE_OPENAI_API_VERSION=API_VERSION,
        TABLES_CONNECTION_STRING=tables,
        **extra,
    )


def start_router(
    log_dir: Path, sim_url: str, tables: str, name: str = "router", args: tuple[str, ...] = (), **extra: str
) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc(
        name,
        [sys.executable, "-m", "bench.servers", "router", "--port", str(port), *args],
        env=router_env(sim_url, tables, **extra),
        log_path=log_dir / f"{name}.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/api/health", 60, proc)
    proc.refresh_tree()
    return proc, url


async def seed_models(sim_url: str, tables: str) -> None:
    from router.models.config import load_file
    from router.models.store import upsert_models
    from router.settings import Settings

    settings = Settings(
        AZURE_OPENAI_ENDPOINT=sim_url, ALLOW_LOOPBACK_ENDPOINTS=True, TABLES_CONNECTION_STRING=tables
    )
    await upsert_models(settings, load_file(SAMPLE_MODELS))


# -- machine and versions ------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(packages: tuple[str, ...] = PROJECT_PACKAGES) -> dict[str, str]:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def litellm_versions() -> dict[str, str]:
    if not LITELLM_PYTHON.exists():
        return {}
    code = (
        "import json, importlib.metadata as m\n"
        "out = {}\n"
        "for n in ('litellm', 'fastapi', 'uvicorn', 'uvloop', 'httptools', 'openai', 'httpx', 'aiohttp'):\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = 'not installed'\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([str(LITELLM_PYTHON), "-c", code], capture_output=True, text=True, timeout=60)
    return json.loads(res.stdout) if res.returncode == 0 else {"error": res.stderr[-500:]}


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
    }


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return path


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
