"""Hostile input: schemathesis fuzzes every operation of the OpenAPI document over real HTTP, and
hypothesis drives the request models, the routing rule and the judge parser with arbitrary input."""

from __future__ import annotations

import json
import math

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from router.api.app import create_app
from router.api.schemas import RouteRequest
from router.models.config import ModelConfig
from router.pipeline.judge import judge_messages, parse_score
from router.pipeline.route import Constraints, choose
from router.runtime import Runtime
from tests.conftest import MODELS
from tests.support import ThreadServer


@pytest.fixture(scope="module")
def live_app(azurite, simulator_server, managed_identity_env):
    """The app on a real loopback port (uvicorn in a thread), with its own tables."""
    import asyncio

    from router.models.store import upsert_models
    from router.settings import Settings
    from tests.conftest import CLIENT_ID, unique

    _, sim_server = simulator_server
    s = Settings(
        AZURE_OPENAI_ENDPOINT=sim_server.url,
        ALLOW_LOOPBACK_ENDPOINTS=True,
        AZURE_CLIENT_ID=CLIENT_ID,
        TABLES_CONNECTION_STRING=azurite.connection_string,
        MODELS_TABLE=unique("models"),
        COSTS_TABLE=unique("costs"),
        HEALTH_TABLE=unique("health"),
        MAX_BODY_BYTES=65536,
    )
    asyncio.run(upsert_models(s, MODELS))
    server = ThreadServer(create_app(Runtime(s))).start()
    yield server
    server.stop()


def _openapi_document() -> dict:
    """The app's OpenAPI document (it does not depend on settings values)."""
    from router.settings import Settings

    return create_app(Runtime(Settings(TABLES_CONNECTION_STRING="UseDevelopmentStorage=true"))).openapi()


schema = schemathesis.openapi.from_dict(_openapi_document())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_openapi_conformance_and_no_server_errors(case, live_app):
    """Every generated request gets a documented status and a body matching the documented schema;
    never a 5xx caused by the input (the upstream simulator is healthy)."""
    excluded = [not_a_server_error]
    if case.operation.path in ("/api/costs", "/api/dashboard", "/api/quality", "/api/v1/chat/completions"):
        # Schema-valid but refused by design: from > to, ranges over REPORT_MAX_DAYS, dates in the future;
        # chat: `n` over MAX_CHOICES, output limits over MAX_OUTPUT_TOKENS on a pinned model (settings, so
        # not in the static schema).
        excluded.append(positive_data_acceptance)
    response = case.call_and_validate(base_url=live_app.url, excluded_checks=excluded)
    if response.status_code >= 500:
        # The one deliberate 5xx an input can cause: a latency budget too small for any model (504).
        body = case.body if isinstance(case.body, dict) else {}
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert (body.get("constraints") or {}).get("max_latency_ms") is not None
    if response.status_code >= 400:
        err = response.json()["error"]
        assert err["code"] and err["message"]
        assert [err["request_id"]] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"query": "\\u0000null byte"}',
        b'{"query": "' + b"[" * 5000 + b'"}',
        b"[" * 60_000,  # deep nesting (just under the body limit)
        b'{"query": "x", "constraints": {"max_latency_ms": 1e308}}',
        b'{"query": "x", "constraints": {"max_latency_ms": 123456789012345678901234567890}}',
        b'{"query": "x", "constraints": {"max_cost_per_1k": -Infinity}}',
        b'{"query": "\xed\xa0\x80"}',  # invalid UTF-8 (a lone surrogate)
        b'{"query": "\\ud800"}',  # an escaped lone surrogate
        b'{"query": "a", "query": 1}',
        b'{"query": {"$ne": null}}',
        b'{"query": "PartitionKey eq \'models\' or true"}',
    ],
)
def test_hostile_bodies_get_a_clean_answer(live_app, body):
    r = httpx2.post(f"{live_app.url}/api/decide", content=body, timeout=30)
    assert r.status_code in (200, 400), r.text
    payload = r.json()
    if r.status_code == 400:
        assert payload["error"]["code"] in ("invalid_json", "validation_error")
    else:
        assert 0.0 <= payload["complexity"] <= 1.0


def test_oversized_body_over_http_is_413(live_app):
    r = httpx2.post(f"{live_app.url}/api/route", content=b'{"query": "' + b"x" * 70_000 + b'"}', timeout=30)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["query", "constraints", "extra"]), json_values, max_size=3))
@settings(max_examples=300, deadline=None)
def test_request_model_accepts_or_rejects_cleanly(data):
    try:
        raw = json.dumps(data)
    except ValueError:
        return
    try:
        req = RouteRequest.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()  # a 400 naming the field, never another exception
        assert errors
        return
    c = req.to_constraints()
    assert isinstance(req.query, str) and req.query
    assert c.max_latency_ms > 0 and c.max_cost_per_1k >= 0


model_strategy = st.builds(
    ModelConfig,
    name=st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True),
    deployment=st.just("d"),
    cost_per_1k_tokens=st.floats(0, 1, allow_nan=False),
    avg_latency_ms=st.floats(0, 10_000, allow_nan=False),
    max_complexity=st.floats(0, 1, allow_nan=False),
    enabled=st.booleans(),
)


@given(
    st.lists(model_strategy, min_size=1, max_size=6),
    st.floats(0, 1, allow_nan=False),
    st.floats(0.001, math.inf, allow_nan=False),
    st.floats(0, math.inf, allow_nan=False),
)
@settings(max_examples=500, deadline=None)
def test_routing_always_yields_a_valid_decision(models, complexity, max_latency, max_cost):
    enabled = [m for m in models if m.enabled]
    constraints = Constraints(max_latency_ms=max_latency, max_cost_per_1k=max_cost)
    if not enabled:
        with pytest.raises(ValueError, match="no enabled model"):
            choose(models, complexity, constraints)
        return
    d = choose(models, complexity, constraints)
    assert d.model.enabled
    for m in d.candidates:
        assert m.max_complexity >= complexity
        assert m.avg_latency_ms <= max_latency and m.cost_per_1k_tokens <= max_cost
    if d.candidates:
        assert d.model is d.candidates[0]
        assert d.model.cost_per_1k_tokens == min(m.cost_per_1k_tokens for m in d.candidates)
    else:
        assert d.model.max_complexity == max(m.max_complexity for m in enabled)


@given(st.text(max_size=300))
@settings(max_examples=500, deadline=None)
def test_judge_reply_never_escapes_zero_to_one(reply):
    score = parse_score(reply)
    assert score is None or 0.0 <= score <= 1.0


@given(st.text(max_size=3000))
@settings(max_examples=200, deadline=None)
def test_judge_prompt_keeps_user_text_inside_one_data_block(query):
    system, user = (m["content"] for m in judge_messages(query))
    tag = system.split("between <", 1)[1].split(">", 1)[0]
    assert user.startswith(f"<{tag}>\n") and user.endswith(f"\n</{tag}>\nDifficulty (0-1):")
    assert user.count(tag) == 2
