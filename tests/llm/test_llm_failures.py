"""Cancellation, upstreams that are down, slow or die mid-stream: real processes, real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import openai
import pytest
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack_kit.errors import error_info_of
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from llm_testkit import (
    Service,
    Upstream,
    auth_headers,
    free_port,
    llm_config,
    start_service,
    start_upstream,
    stop_service,
    wait_for,
)

# A prompt SmolLM2 answers at length, so that a stream is still generating when the test cuts it.
LONG = "Write a very long story about a dragon who learns to sing. Use at least 2000 words."
NO_EMBEDDINGS = {"AISTACK_LLM_EMBEDDING_MODELS": "{}"}


def long_request(max_tokens: int = 1000) -> pb.StreamChatRequest:
    return pb.StreamChatRequest(
        messages=[pb.ChatMessage(role=pb.ROLE_USER, content=LONG)],
        generation_config=pb.GenerationConfig(max_tokens=max_tokens, temperature=0.0, seed=1),
    )


def short_request() -> pb.ChatRequest:
    return pb.ChatRequest(
        messages=[pb.ChatMessage(role=pb.ROLE_USER, content="Say hi.")],
        generation_config=pb.GenerationConfig(max_tokens=4, temperature=0.0),
    )


def disconnects(upstream: Upstream) -> int:
    # llama-cpp-python's server prints this when it sees its client go and stops generating.
    return upstream.log_text().count("Disconnected from client")


async def test_grpc_cancel_stops_generation_upstream(service: Service, upstream: Upstream) -> None:
    seen = disconnects(upstream)
    call = service.stub.StreamChat(long_request(), metadata=auth_metadata())
    deltas = 0
    async for message in call:
        deltas += bool(message.delta)
        if deltas == 3:
            break
    assert service.capability.service.open_streams == 1
    call.cancel()
    await service.wait_streams_closed(within=5)
    await wait_for(lambda: disconnects(upstream) > seen, 10, "llama.cpp server saw the client leave")
    # The upstream is free again at once, not after the rest of a 1000-token story.
    started = time.monotonic()
    await service.stub.Chat(short_request(), metadata=auth_metadata(), timeout=30)
    assert time.monotonic() - started < 3


async def test_http_disconnect_stops_generation_upstream(service: Service, upstream: Upstream) -> None:
    seen = disconnects(upstream)
    body = {
        "messages": [{"role": "user", "content": LONG}],
        "max_tokens": 1000,
        "temperature": 0,
        "stream": True,
    }
    async with (
        httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=30) as client,
        client.stream("POST", "/api/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        events = 0
        async for line in response.aiter_lines():
            events += line.startswith("data: ")
            if events == 3:
                break
        assert service.capability.service.open_streams == 1
    await service.wait_streams_closed(within=5)
    await wait_for(lambda: disconnects(upstream) > seen, 10, "llama.cpp server saw the client leave")


@pytest.fixture(scope="module")
async def down_service() -> AsyncIterator[Service]:
    """The service pointed at a port where nothing listens."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    running = await start_service(llm_config(dead, NO_EMBEDDINGS))
    yield running
    await stop_service(running)


async def test_upstream_down_is_unavailable_naming_it(down_service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await down_service.stub.Chat(short_request(), metadata=auth_metadata(), timeout=10)
    assert unary.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "llama-cpp" in (unary.value.details() or "")
    info = error_info_of(unary.value)
    assert (
        info is not None
        and info.reason == "UPSTREAM_UNAVAILABLE"
        and info.metadata["upstream"] == "llama-cpp"
    )

    with pytest.raises(grpc.aio.AioRpcError) as streamed:
        async for _ in down_service.stub.StreamChat(long_request(), metadata=auth_metadata(), timeout=10):
            pass
    assert streamed.value.code() == grpc.StatusCode.UNAVAILABLE

    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    async with httpx.AsyncClient(
        base_url=down_service.http_url, headers=auth_headers(), timeout=10
    ) as client:
        for stream in (False, True):
            response = await client.post("/api/v1/chat/completions", json={**body, "stream": stream})
            assert response.status_code == 503
            error = response.json()["error"]
            assert error["code"] == "UPSTREAM_UNAVAILABLE"
            assert "llama-cpp" in error["message"]

    client_ = openai.AsyncOpenAI(base_url=down_service.openai_base_url, api_key=TEST_TOKEN, max_retries=0)
    try:
        with pytest.raises(openai.InternalServerError) as refused:
            await client_.chat.completions.create(
                model="paneas-v1", messages=[{"role": "user", "content": "hi"}]
            )
        assert refused.value.status_code == 503
    finally:
        await client_.close()


async def test_slow_upstream_is_unavailable_and_deadlines_hold() -> None:
    """An upstream that accepts and never answers: our timeout, or the caller's deadline, ends the wait."""
    stalled: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    upstreams = {"llama-cpp": {"url": f"http://127.0.0.1:{port}/v1", "timeout_seconds": 1.5}}
    service = await start_service(
        llm_config("unused", {**NO_EMBEDDINGS, "AISTACK_LLM_UPSTREAMS": json.dumps(upstreams)})
    )
    try:
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as slow:
            await service.stub.Chat(short_request(), metadata=auth_metadata(), timeout=30)
        assert 1.4 < time.monotonic() - started < 5
        assert slow.value.code() == grpc.StatusCode.UNAVAILABLE
        info = error_info_of(slow.value)
        assert info is not None and info.reason == "UPSTREAM_TIMEOUT"
        assert "llama-cpp" in (slow.value.details() or "")

        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await service.stub.Chat(short_request(), metadata=auth_metadata(), timeout=0.3)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 1.2

        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
        async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=30) as client:
            response = await client.post("/api/v1/chat/completions", json=body)
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "UPSTREAM_TIMEOUT"
            # Behind Envoy the route's timeout arrives as a header; a unary call keeps within it.
            started = time.monotonic()
            response = await client.post(
                "/api/v1/chat/completions",
                json={**body, "stream": False},
                headers={"x-envoy-expected-rq-timeout-ms": "300"},
            )
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "DEADLINE_EXCEEDED"
            assert time.monotonic() - started < 1.2
        await service.wait_streams_closed(within=2)
    finally:
        await stop_service(service)
        for writer in stalled:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_upstream_dying_mid_stream_ends_the_stream_with_an_error(tmp_path: Path) -> None:
    port = free_port()
    upstream = start_upstream(tmp_path, port)
    service = await start_service(llm_config(upstream.url, NO_EMBEDDINGS))
    try:
        # gRPC: the stream ends with UNAVAILABLE naming the upstream.
        call = service.stub.StreamChat(long_request(), metadata=auth_metadata())
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            deltas = 0
            async for message in call:
                deltas += bool(message.delta)
                if deltas == 2:
                    os.kill(upstream.process.pid, signal.SIGKILL)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "llama-cpp" in (broken.value.details() or "")
        upstream.stop()

        # HTTP: a last SSE event carries the error; there is no [DONE].
        upstream = start_upstream(tmp_path, port)
        body = {"messages": [{"role": "user", "content": LONG}], "max_tokens": 1000, "stream": True}
        events: list[str] = []
        async with (
            httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=30) as client,
            client.stream("POST", "/api/v1/chat/completions", json=body) as response,
        ):
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
                    if len(events) == 2:
                        os.kill(upstream.process.pid, signal.SIGKILL)
        assert events[-1] != "[DONE]"
        error = json.loads(events[-1])["error"]
        assert error["code"] == "UPSTREAM_UNAVAILABLE"
        assert "llama-cpp" in error["message"]
        await service.wait_streams_closed(within=2)
    finally:
        await stop_service(service)
        upstream.stop()
