"""The two upstream clients (``UPSTREAM_CLIENT=openai`` and ``aiohttp``) are interchangeable: the same
request reaches the simulator, the same answer comes back, and every fault becomes the same exception
class with the same ``error_kind`` (the input of the router's retry, fallback and health rules).

Real components throughout: the openai SDK and aiohttp over HTTP to the simulator, a real
``ManagedIdentityCredential`` fetching its token from the loopback identity endpoint, and a server that
resets connections. Nothing is mocked.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from router.credentials import create_credential
from router.dev.azurite import free_port
from router.dev.simulator import Reply, Simulator
from router.upstream.aiohttp_client import AiohttpOpenAIClients
from router.upstream.errors import error_kind
from router.upstream.sdk import OpenAIClients
from tests.conftest import CLIENT_ID
from tests.support import ResettingServer, ThreadServer

API_VERSION = "2024-10-21"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
KINDS = {"openai": OpenAIClients, "aiohttp": AiohttpOpenAIClients}


@pytest.fixture(params=sorted(KINDS))
async def clients(request: pytest.FixtureRequest) -> Any:
    credential = create_credential(CLIENT_ID)
    made = KINDS[request.param](lambda: credential, API_VERSION, timeout_s=30)
    yield made
    await made.close()
    await credential.close()


def endpoint(simulator_server: tuple[Simulator, ThreadServer]) -> str:
    return simulator_server[1].url


async def failure(clients: OpenAIClients, url: str, timeout_s: float = 10) -> BaseException:
    with pytest.raises(Exception) as caught:
        await clients.post_json(url, "dep-x", {"messages": MESSAGES}, timeout_s)
    return caught.value


async def test_success_sends_the_same_request_and_returns_the_answer(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any, identity: Any
) -> None:
    simulator.script("dep-x", Reply(content="Paris.", prompt_tokens=14, completion_tokens=2))
    body = {"messages": MESSAGES, "temperature": 0, "max_tokens": 5, "response_format": {"type": "text"}}
    data = await clients.post_json(endpoint(simulator_server), "dep-x", body, 10)
    assert data["choices"][0]["message"]["content"] == "Paris."
    assert data["usage"] == {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16}
    (seen,) = simulator.calls_to("dep-x")
    assert seen.api_version == API_VERSION
    assert seen.body == {**body, "model": "dep-x"}
    # The bearer token is the one the managed-identity endpoint issued for the Azure OpenAI audience.
    issued = identity[0].issued
    assert seen.authorization == f"Bearer {issued[-1]}"
    assert identity[0].requests[-1].resource == "https://cognitiveservices.azure.com"
    assert identity[0].requests[-1].client_id == CLIENT_ID


async def test_token_is_fetched_once_and_reused(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any, identity: Any
) -> None:
    before = len(identity[0].requests)
    for _ in range(5):
        await clients.chat(endpoint(simulator_server), "dep-x", MESSAGES, timeout_s=10)
    assert len(identity[0].requests) - before == 1
    assert len({s.authorization for s in simulator.calls_to("dep-x")}) == 1


async def test_chat_reads_text_and_usage(clients: OpenAIClients, simulator: Simulator, simulator_server: Any):
    simulator.script("dep-x", Reply(content="Four.", prompt_tokens=9, completion_tokens=3))
    done = await clients.chat(endpoint(simulator_server), "dep-x", MESSAGES, timeout_s=10, max_tokens=4)
    assert (done.text, done.prompt_tokens, done.completion_tokens) == ("Four.", 9, 3)
    assert simulator.calls_to("dep-x")[0].body["max_tokens"] == 4


FAULTS = [
    # (reply, exception class, error_kind)
    (
        Reply(status=429, headers={"retry-after": "7"}),
        openai.RateLimitError,
        ("http_429", "retry", 7.0),
    ),
    (
        Reply(status=429, headers={"retry-after-ms": "1500"}),
        openai.RateLimitError,
        ("http_429", "retry", 1.5),
    ),
    (Reply(status=500), openai.InternalServerError, ("http_500", "retry", None)),
    (Reply(status=503), openai.InternalServerError, ("http_503", "retry", None)),
    (Reply(status=408), openai.APIStatusError, ("http_408", "retry", None)),
    (
        Reply(status=400, error_code="content_filter", error_message="filtered"),
        openai.BadRequestError,
        ("content_filter", "fatal", None),
    ),
    (
        Reply(status=400, error_code="context_length_exceeded", error_message="too long"),
        openai.BadRequestError,
        ("context_length_exceeded", "context", None),
    ),
    (
        Reply(status=400, error_code="unsupported_parameter", error_message="'logprobs' is not supported"),
        openai.BadRequestError,
        ("http_400", "fatal", None),
    ),
    (Reply(status=401), openai.AuthenticationError, ("http_401", "fatal", None)),
    (Reply(status=403), openai.PermissionDeniedError, ("http_403", "fatal", None)),
    (
        Reply(status=404, error_code="DeploymentNotFound"),
        openai.NotFoundError,
        ("deployment_not_found", "retry", None),  # a misconfigured backend: the next one may answer
    ),
    (
        Reply(status=404, error_code="404", error_message="Resource not found"),
        openai.NotFoundError,
        ("http_404", "fatal", None),
    ),
]


@pytest.mark.parametrize(("reply", "exc_type", "kind"), FAULTS, ids=lambda v: getattr(v, "__name__", None))
async def test_http_errors_are_the_sdks_exceptions(
    clients: OpenAIClients,
    simulator: Simulator,
    simulator_server: Any,
    reply: Reply,
    exc_type: type[BaseException],
    kind: tuple[str, str, float | None],
) -> None:
    simulator.script("dep-x", reply)
    exc = await failure(clients, endpoint(simulator_server))
    assert type(exc) is exc_type
    assert error_kind(exc) == kind
    assert isinstance(exc, openai.APIStatusError)
    assert exc.status_code == reply.status
    assert isinstance(exc.body, dict) and exc.body["message"] == reply.error_message
    assert exc.response.headers.get("content-type") == "application/json"


async def test_timeout(clients: OpenAIClients, simulator: Simulator, simulator_server: Any) -> None:
    simulator.script("dep-x", Reply(content="late", delay_s=2))
    exc = await failure(clients, endpoint(simulator_server), timeout_s=0.2)
    assert isinstance(exc, openai.APITimeoutError)
    assert error_kind(exc) == ("timeout", "retry", None)


async def test_connection_reset(clients: OpenAIClients) -> None:
    dead = ResettingServer().start()
    try:
        exc = await failure(clients, dead.url)
    finally:
        dead.stop()
    assert isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
    assert error_kind(exc) == ("connection_error", "retry", None)
    assert dead.accepted >= 1


async def test_connection_refused(clients: OpenAIClients) -> None:
    exc = await failure(clients, f"http://127.0.0.1:{free_port()}")
    assert isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)
    assert error_kind(exc) == ("connection_error", "retry", None)


async def test_streaming_goes_through_the_sdk_for_both(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any
) -> None:
    simulator.script("dep-x", Reply(content="Paris is the capital.", completion_tokens=5))
    body = {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    from router.upstream.sse import SSEStream

    stream = await clients.stream(endpoint(simulator_server), "dep-x", body, 10)
    assert isinstance(stream, SSEStream)
    text, usage = "", None
    while (chunk := await stream.next_chunk()) is not None:
        text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
        usage = chunk.get("usage") or usage
    await stream.close()
    assert text == "Paris is the capital."
    assert usage is not None and usage["completion_tokens"] == 5
    assert stream.done  # the upstream's [DONE] arrived


class ScriptedCredential:
    """A credential whose tokens and failures are scripted: the token service's expiry and outage cannot
    be produced by the loopback identity endpoint, so this stands in for it (the real
    ``ManagedIdentityCredential`` path is covered above)."""

    def __init__(self, *replies: Any) -> None:
        self.replies = list(replies)
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.calls += 1
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    async def close(self) -> None:
        return None


async def test_aiohttp_client_refreshes_a_token_near_expiry_and_rides_out_a_failed_refresh(
    simulator: Simulator, simulator_server: Any
) -> None:
    import time

    from azure.core.credentials import AccessToken
    from azure.core.exceptions import ClientAuthenticationError

    soon = int(time.time()) + 120  # inside the 5-minute refresh margin, still valid
    credential = ScriptedCredential(
        AccessToken("tok-1", soon),
        AccessToken("tok-2", soon),
        ClientAuthenticationError("token service down"),
        AccessToken("tok-3", int(time.time()) + 3600),
    )
    clients = AiohttpOpenAIClients(lambda: credential, API_VERSION, timeout_s=30)
    try:
        url = endpoint(simulator_server)
        for _ in range(4):
            await clients.post_json(url, "dep-x", {"messages": MESSAGES}, 10)
        seen = [s.authorization for s in simulator.calls_to("dep-x")]
        # tok-1 is refreshed at once (near expiry) -> tok-2; the next refresh fails while tok-2 is still
        # valid, so tok-2 is used again; the one after that succeeds -> tok-3.
        assert seen == ["Bearer tok-1", "Bearer tok-2", "Bearer tok-2", "Bearer tok-3"]
        assert credential.calls == 4
    finally:
        await clients.close()


async def test_aiohttp_client_fails_when_there_is_no_valid_token(simulator: Simulator, simulator_server: Any):
    from azure.core.exceptions import ClientAuthenticationError

    credential = ScriptedCredential(ClientAuthenticationError("no identity"))
    clients = AiohttpOpenAIClients(lambda: credential, API_VERSION, timeout_s=30)
    try:
        with pytest.raises(ClientAuthenticationError):
            await clients.post_json(endpoint(simulator_server), "dep-x", {"messages": MESSAGES}, 10)
        assert simulator.calls_to("dep-x") == []
    finally:
        await clients.close()


# -- issue 13: what an answer's usage and size may be -------------------------------------------------

BAD_USAGE = [
    pytest.param({"usage": {"prompt_tokens": "lots", "completion_tokens": "many"}}, id="not-a-number"),
    pytest.param({"usage": {"prompt_tokens": None, "completion_tokens": None}}, id="null-counts"),
    pytest.param({"usage": {"prompt_tokens": -5, "completion_tokens": 2.5}}, id="negative-and-fraction"),
    pytest.param({"usage": {"prompt_tokens": True, "completion_tokens": [3]}}, id="bool-and-list"),
    pytest.param({"usage": {"prompt_tokens": 2**31, "completion_tokens": 1e300}}, id="beyond-int32"),
    pytest.param({"omit_usage": True}, id="absent"),
]


@pytest.mark.parametrize("fault", BAD_USAGE)
async def test_chat_estimates_missing_or_invalid_usage_and_flags_it(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any, fault: dict[str, Any]
) -> None:
    from router.chat.conversation import estimate_prompt_tokens

    simulator.script("dep-x", Reply(content="Paris is the capital.", **fault))
    done = await clients.chat(endpoint(simulator_server), "dep-x", MESSAGES, timeout_s=10)
    assert done.usage_estimated
    assert done.prompt_tokens == estimate_prompt_tokens(MESSAGES)
    assert done.completion_tokens == 6  # ceil(21 characters / 4)


async def test_chat_keeps_valid_counts_and_estimates_only_the_invalid_one(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any
) -> None:
    simulator.script("dep-x", Reply(content="Four.", usage={"prompt_tokens": 9.0, "completion_tokens": "x"}))
    done = await clients.chat(endpoint(simulator_server), "dep-x", MESSAGES, timeout_s=10)
    assert (done.prompt_tokens, done.completion_tokens, done.usage_estimated) == (9, 2, True)


async def capped(kind: str, max_bytes: int) -> Any:
    credential = create_credential(CLIENT_ID)
    return KINDS[kind](lambda: credential, API_VERSION, 30, None, max_bytes), credential


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_over_max_upstream_bytes_is_refused(
    kind: str, chunked: bool, simulator: Simulator, simulator_server: Any
) -> None:
    from router.errors import UpstreamTooLarge

    clients, credential = await capped(kind, 64 * 1024)
    try:
        simulator.script("dep-x", Reply(content="ok", padding_bytes=200_000, chunked=chunked))
        exc = await failure(clients, endpoint(simulator_server))
        assert isinstance(exc, UpstreamTooLarge)
        assert error_kind(exc) == ("response_too_large", "fatal", None)
        simulator.script("dep-x", Reply(content="ok", padding_bytes=30_000, chunked=chunked))  # under it
        data = await clients.post_json(endpoint(simulator_server), "dep-x", {"messages": MESSAGES}, 10)
        assert data["choices"][0]["message"]["content"] == "ok"
    finally:
        await clients.close()
        await credential.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
async def test_a_stream_over_max_upstream_bytes_is_cut_while_reading(
    kind: str, simulator: Simulator, simulator_server: Any
) -> None:
    from router.errors import UpstreamTooLarge

    clients, credential = await capped(kind, 64 * 1024)
    try:
        simulator.script("dep-x", Reply(content=" ".join(["word"] * 100), padding_bytes=4000))
        body = {"messages": MESSAGES, "stream": True}
        stream = await clients.stream(endpoint(simulator_server), "dep-x", body, 10)
        chunks: list[Any] = []

        async def read_all() -> None:
            while (chunk := await stream.next_chunk()) is not None:
                chunks.append(chunk)

        with pytest.raises(UpstreamTooLarge):
            await read_all()
        assert 5 < len(chunks) < 20  # about 64 KiB of 4 kB chunks, not the 400 kB the upstream would send
        await stream.close()
    finally:
        await clients.close()
        await credential.close()


async def test_a_stream_knows_whether_done_arrived(
    clients: OpenAIClients, simulator: Simulator, simulator_server: Any
) -> None:
    for reply, done in [(Reply(content="a b c"), True), (Reply(content="a b c", omit_done=True), False),
                        (Reply(content="a b c", cut_after_chunks=1), False)]:  # fmt: skip
        simulator.script("dep-x", reply)
        body = {"messages": MESSAGES, "stream": True}
        stream = await clients.stream(endpoint(simulator_server), "dep-x", body, 10)
        while await stream.next_chunk() is not None:
            pass
        await stream.close()
        assert stream.done is done
