"""The managed-identity path to Table Storage: Azurite over HTTPS with OAuth enforced, a certificate made
here, and the real ManagedIdentityCredential getting its token from the loopback identity endpoint."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.api.app import create_app
from router.dev.azurite import Azurite
from router.dev.simulator import Reply
from router.models.store import upsert_table
from router.runtime import Runtime
from tests.conftest import CLIENT_ID, MODELS

STORAGE_RESOURCE = "https://storage.azure.com"


def make_cert(folder: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def oauth_azurite(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = make_cert(folder)
    with Azurite(cert=cert, key=key, oauth=True) as server:
        yield server, cert


async def test_app_reads_configs_and_writes_costs_with_a_managed_identity_token(
    oauth_azurite, settings_factory, identity, simulator
):
    server, cert = oauth_azurite
    endpoint, _ = identity
    settings = settings_factory(TABLES_CONNECTION_STRING=None, TABLES_ENDPOINT=server.endpoint)
    assert settings.TABLES_ENDPOINT.startswith("https://")
    runtime = Runtime(settings, table_transport={"connection_verify": cert})
    client = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(runtime)), base_url="http://t")
    try:
        await upsert_table(await runtime.table(settings.MODELS_TABLE), MODELS)
        simulator.script("dep-small", Reply(content="ok", prompt_tokens=10, completion_tokens=5))
        r = await client.post("/api/route", json={"query": "hi"}, headers={"x-request-id": "mi-1"})
        assert r.status_code == 200, r.text
        await runtime.built_service.recorder.idle()
        table = await runtime.table(settings.COSTS_TABLE)
        records = [e async for e in table.list_entities()]
        assert [rec["request_id"] for rec in records] == ["mi-1"]
        storage_tokens = [t for t in endpoint.requests if t.resource == STORAGE_RESOURCE]
        assert storage_tokens and all(t.client_id == CLIENT_ID for t in storage_tokens)
    finally:
        await client.aclose()
        await runtime.close()


async def test_cost_record_transactions_authenticate_with_the_managed_identity(
    oauth_azurite, settings_factory, identity
):
    """The batch writer sends through the Table client's own pipeline, so the bearer token applies."""
    from router.costs.transactions import submit_upserts

    server, cert = oauth_azurite
    settings = settings_factory(TABLES_CONNECTION_STRING=None, TABLES_ENDPOINT=server.endpoint)
    runtime = Runtime(settings, table_transport={"connection_verify": cert})
    try:
        table = await runtime.table(settings.COSTS_TABLE)
        entities = [{"PartitionKey": "2026-11-26", "RowKey": f"r{i}", "cost_usd": 0.5 * i} for i in range(3)]
        await submit_upserts(table, entities)
        stored = sorted([dict(e) async for e in table.list_entities()], key=lambda e: e["RowKey"])
        assert [(e["RowKey"], e["cost_usd"]) for e in stored] == [("r0", 0.0), ("r1", 0.5), ("r2", 1.0)]
    finally:
        await runtime.close()


async def test_oauth_is_enforced_a_bad_token_is_rejected(oauth_azurite):
    """Proves the test above is meaningful: this Azurite refuses a token with the wrong audience."""
    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.data.tables.aio import TableServiceClient

    from tests.support import fake_jwt

    server, cert = oauth_azurite

    class WrongAudience:
        async def get_token(self, *scopes, **kwargs):
            return AccessToken(fake_jwt("https://vault.azure.net"), 2_000_000_000)

        async def close(self):
            pass

    service = TableServiceClient(endpoint=server.endpoint, credential=WrongAudience(), connection_verify=cert)
    try:
        with pytest.raises((ClientAuthenticationError, HttpResponseError)):
            await service.create_table("shouldfail")
    finally:
        await service.close()


def test_cli_models_load_and_list_with_tables_endpoint(oauth_azurite, identity, tmp_path):
    """`python -m router models load` as the deploy hook runs it: TABLES_ENDPOINT plus an identity."""
    server, cert = oauth_azurite
    endpoint, id_server = identity
    env = {
        **os.environ,
        "TABLES_ENDPOINT": server.endpoint,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "MODELS_TABLE": "climodels",
        "IDENTITY_ENDPOINT": f"{id_server.url}/msi/token",
        "IDENTITY_HEADER": endpoint.header_secret,
        "SSL_CERT_FILE": cert,  # trust the test certificate in the child process
    }
    env.pop("TABLES_CONNECTION_STRING", None)
    root = Path(__file__).resolve().parents[1]
    load = subprocess.run(
        [sys.executable, "-m", "router", "models", "load", str(root / "models.sample.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert load.returncode == 0, load.stderr
    assert "upserted 6 model config(s)" in load.stdout
    listed = subprocess.run(
        [sys.executable, "-m", "router", "models", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
    assert names == ["gpt-4.1-nano", "gpt-4o-mini", "gpt-5-mini", "gpt-4.1-mini", "o4-mini", "gpt-4.1"]
