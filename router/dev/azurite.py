"""Start and stop an Azurite Table service as a child process (by PID, never via npx)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# Azurite's documented, public development account (not a secret: it is the same on every machine).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary() -> str:
    local = REPO_ROOT / "node_modules" / ".bin" / "azurite-table"
    if local.exists():
        return str(local)
    found = shutil.which("azurite-table")
    if found:
        return found
    raise FileNotFoundError("azurite-table not found: run `npm install` in the repository root")


@dataclass
class Azurite:
    port: int = 0
    workdir: str | None = None
    cert: str | None = None
    key: str | None = None
    oauth: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{DEV_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"TableEndpoint={self.endpoint};"
        )

    def start(self, timeout_s: float = 30.0) -> Azurite:
        if not self.port:
            self.port = free_port()
        args = [
            find_binary(),
            "--tableHost",
            "127.0.0.1",
            "--tablePort",
            str(self.port),
            "--disableTelemetry",
            "--silent",
            "--skipApiVersionCheck",
        ]
        if self.workdir:
            os.makedirs(self.workdir, exist_ok=True)
            args += ["--location", self.workdir]
        else:
            args.append("--inMemoryPersistence")
        if self.cert and self.key:
            args += ["--cert", self.cert, "--key", self.key]
        if self.oauth:
            args += ["--oauth", "basic"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.workdir or None
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"azurite-table exited with {self.process.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"azurite-table did not listen on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        # SIGINT lets Azurite save its store (with --location) before exiting; SIGTERM does not.
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
