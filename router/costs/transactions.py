"""Upsert entity-group transactions for the cost records, without the stdlib ``email`` module.

Why: ``TableClient.submit_transaction`` builds the multipart request and parses the multipart reply with
``email`` (generator, feed parser, header registry, a regex compiled per boundary). Measured on the
router's request mix that is 0.4-1 ms of CPU per record, more than the whole request path of a call
(bench/README.md). Here the body is string joins and the reply is checked by its status lines.

What stays the library's: the request goes through the ``TableClient``'s own pipeline (``send_request``
of its generated client), so authentication (Entra bearer or shared key), retries, user agent, request
ids and logging policy are exactly those of every other Table call. The entity JSON follows the
library's own conversions (``azure.data.tables._serialize``): ``Edm.String``/``Edm.Double``/
``Edm.DateTime`` annotations, bools and 32-bit ints bare, anything else refused. Any failure here
(including the library's internals changing shape) is the cost recorder's failed batch: it writes those
records one by one through ``upsert_entity``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from router.errors import TransactionFailed

if TYPE_CHECKING:
    from azure.data.tables.aio import TableClient

# An entity-group transaction holds at most 100 entities, all in one partition (one UTC day here).
MAX_BATCH = 100

_STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})([^\r\n]*)", re.MULTILINE)
_INT32 = 2**31


def entity_json(entity: dict[str, Any]) -> str:
    """The entity as the Table service's JSON, typed as azure-data-tables types it."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if value is None:
            continue
        if isinstance(value, str):
            out[name] = value
            out[f"{name}@odata.type"] = "Edm.String"
        elif isinstance(value, bool):
            out[name] = value
        elif isinstance(value, int):
            if not -_INT32 <= value < _INT32:
                raise TypeError(f"{name}={value} does not fit Edm.Int32")
            out[name] = value
        elif isinstance(value, float):
            if math.isnan(value):
                out[name] = "NaN"
            elif math.isinf(value):
                out[name] = "Infinity" if value > 0 else "-Infinity"
            else:
                out[name] = value
            out[f"{name}@odata.type"] = "Edm.Double"
        elif isinstance(value, datetime):
            out[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out[f"{name}@odata.type"] = "Edm.DateTime"
        else:
            raise TypeError(f"{name}: unsupported entity property type {type(value).__name__}")
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _key(value: Any) -> str:
    return quote(str(value).replace("'", "''"), safe="")


def build_body(table_url: str, entities: list[dict[str, Any]], api_version: str) -> tuple[str, bytes]:
    """(content type, body) of one changeset of upserts (Insert Or Replace: PUT without If-Match)."""
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n".encode()]
    for i, entity in enumerate(entities):
        body = entity_json(entity).encode()
        url = f"{table_url}(PartitionKey='{_key(entity['PartitionKey'])}',RowKey='{_key(entity['RowKey'])}')"
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {i}\r\n\r\nPUT {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nx-ms-version: {api_version}\r\nDataServiceVersion: 3.0\r\n"
            f"Accept: application/json\r\n\r\n".encode()
        )
        parts.append(body + b"\r\n")
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n".encode())
    return f"multipart/mixed; boundary={batch}", b"".join(parts)


def check_reply(status: int, content: bytes, expected: int) -> None:
    """Raise unless the service accepted the transaction and answered 2xx for every operation."""
    if status != 202:
        raise TransactionFailed(status, content[:300].decode("utf-8", "replace"))
    statuses = _STATUS_LINE.findall(content)
    failed = [(int(code), reason) for code, reason in statuses if not 200 <= int(code) < 300]
    if failed:
        code, reason = failed[0]
        raise TransactionFailed(code, reason.decode("utf-8", "replace").strip())
    if len(statuses) != expected:
        raise TransactionFailed(status, f"{len(statuses)} operation replies for {expected} operations")


async def submit_upserts(table: TableClient, entities: list[dict[str, Any]]) -> None:
    """Upsert ``entities`` (one partition, at most 100) as one transaction: all stored, or none and an
    exception."""
    if not entities:
        return
    # Checked here as the library checks them (Azurite would accept what Azure refuses).
    if len(entities) > MAX_BATCH:
        raise ValueError(f"a transaction holds at most {MAX_BATCH} operations, not {len(entities)}")
    if len({e["PartitionKey"] for e in entities}) != 1:
        raise ValueError("every entity of a transaction must have the same PartitionKey")
    from azure.core.rest import HttpRequest

    api_version = table.api_version
    account_url = table.url.split("?", 1)[0].rstrip("/")

    content_type, body = build_body(f"{account_url}/{table.table_name}", entities, api_version)
    request = HttpRequest(
        "POST",
        f"{account_url}/$batch",
        headers={
            "x-ms-version": api_version,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": content_type,
            "Accept": "application/json",
        },
        content=body,
    )
    # stream=True as the library does: the pipeline's content decoder does not know multipart.
    response = await table._client.send_request(request, stream=True)
    content = await response.read()
    check_reply(response.status_code, content, len(entities))
