"""`python -m router dev` as a newcomer runs it (./scripts/dev): a real child process with its own
Azurite, the sample catalogue and the simulator. With the simulator the LLM judge is off by default
(the simulator cannot judge) and the banner says so, so what the newcomer sees is the scorer's decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from router.dev.azurite import free_port

ROOT = Path(__file__).resolve().parents[1]
# Seed score ~0.45: inside the default judge band, so with the judge on this would be an "llm" score.
MID_BAND = "How do tides work and what role does the moon play?"


def _start(extra: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABLES_", "AZURE_OPENAI_", "JUDGE_"))}
    env.update({"AZURITE_TABLE_PORT": str(free_port()), "SIMULATOR_PORT": str(free_port()),
                "CLASSIFIER": "seed", "PYTHONUNBUFFERED": "1", **extra})  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "router", "dev", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    return proc, port


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("router dev did not become ready in 60 s")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def test_dev_run_with_the_simulator_turns_the_judge_off_and_says_so():
    sim_port = free_port()
    proc, port = _start({"SIMULATOR_PORT": str(sim_port)})
    try:
        _wait_ready(port, proc)
        r = httpx2.post(f"http://127.0.0.1:{port}/api/decide", json={"query": MID_BAND}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["classifier"] == "heuristic" and r.json()["scorer"] == "seed"
        # The simulator answers in about the model's avg_latency_ms (gpt-4.1-nano: 450 ms), ±20%.
        sim = httpx2.post(
            f"http://127.0.0.1:{sim_port}/openai/deployments/gpt-4.1-nano/chat/completions",
            params={"api-version": "2024-10-21"}, headers={"authorization": "Bearer simulated-token"},
            json={"messages": [{"role": "user", "content": "hi"}]}, timeout=10,
        )  # fmt: skip
        assert sim.status_code == 200, sim.text
        assert 360 <= float(sim.headers["x-simulated-latency-ms"]) <= 540
    finally:
        out = _stop(proc)
    assert "LLM judge OFF (the simulator cannot judge)" in out
    assert "Scorer: seed; judge off" in out
    assert "Simulated latency: each model's avg_latency_ms, jittered ±20%" in out


def test_dev_run_keeps_the_judge_when_asked():
    # The seed scorer's own band (the shipped one is calibrated for learned-v2's scale).
    proc, port = _start(
        {"JUDGE_ENABLED": "true", "JUDGE_LOW": "0.3", "JUDGE_HIGH": "0.7", "JUDGE_SCALE": "0,1"}
    )
    try:
        _wait_ready(port, proc)
        r = httpx2.post(f"http://127.0.0.1:{port}/api/decide", json={"query": MID_BAND}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["classifier"] in ("llm", "heuristic-fallback")
    finally:
        out = _stop(proc)
    assert "LLM judge OFF" not in out
