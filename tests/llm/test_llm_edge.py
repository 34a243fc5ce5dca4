"""Through real Envoy: the official openai client at http://<edge>/api/v1, SSE unbuffered, and gRPC."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import httpx
import openai
import pytest
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from aistack_launcher.catalog import LLM
from llm_testkit import Upstream, auth_headers

QUESTION = "What is the capital of France? Answer in one sentence."


@dataclass
class Edge:
    envoy: RunningEnvoy


@pytest.fixture(scope="module")
def edge(upstream: Upstream) -> Iterator[Edge]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_LLM_HTTP_PORT": str(http_port),
        "AISTACK_LLM_UPSTREAMS": json.dumps({"llama-cpp": {"url": upstream.url, "dialect": "llama-cpp"}}),
        "AISTACK_LLM_EMBEDDING_MODELS": "{}",
        "AISTACK_LOG_LEVEL": "warning",
    }
    upstreams = Upstreams.embedded([LLM], grpc_ports={"llm": [grpc_port]}, http_ports={"llm": [http_port]})
    with start_service("aistack_llm", grpc_port, env), start_envoy([LLM], upstreams) as envoy:
        envoy.wait_healthy()
        yield Edge(envoy)


async def test_openai_client_through_envoy(edge: Edge) -> None:
    client = openai.AsyncOpenAI(base_url=f"{edge.envoy.url}/api/v1", api_key=TEST_TOKEN, max_retries=0)
    try:
        assert "paneas-v1" in [m.id for m in (await client.models.list()).data]
        unary = await client.chat.completions.create(
            model="paneas-v1",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=0,
            seed=7,
        )
        content = unary.choices[0].message.content or ""
        assert "paris" in content.lower()

        stream = await client.chat.completions.create(
            model="paneas-v1",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            temperature=0,
            seed=7,
            stream=True,
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        assert "".join(pieces) == content

        with pytest.raises(openai.AuthenticationError):
            await openai.AsyncOpenAI(
                base_url=f"{edge.envoy.url}/api/v1", api_key="wrong", max_retries=0
            ).models.list()
    finally:
        await client.close()


async def test_sse_arrives_unbuffered_through_envoy(edge: Edge) -> None:
    """The first event reaches the caller long before the last: Envoy does not hold the stream back."""
    body = {
        "messages": [{"role": "user", "content": "Write a long story about a dragon."}],
        "max_tokens": 200,
        "temperature": 0,
        "stream": True,
    }
    arrivals: list[float] = []
    events: list[str] = []
    async with (
        httpx.AsyncClient(base_url=edge.envoy.url, headers=auth_headers(), timeout=60) as client,
        client.stream("POST", "/api/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    assert len(events) > 20
    assert arrivals[len(arrivals) // 2] - arrivals[0] > 0.2


async def test_grpc_stream_and_errors_through_envoy(edge: Edge) -> None:
    async with grpc.aio.insecure_channel(edge.envoy.address) as channel:
        stub = pb_grpc.LlmServiceStub(channel)
        request = pb.StreamChatRequest(
            messages=[pb.ChatMessage(role=pb.ROLE_USER, content=QUESTION)],
            generation_config=pb.GenerationConfig(max_tokens=24, temperature=0.0, seed=7),
        )
        messages = [m async for m in stub.StreamChat(request, metadata=auth_metadata(), timeout=60)]
        assert "paris" in "".join(m.delta for m in messages).lower()
        assert messages[-1].usage.completion_tokens > 0

    async with httpx.AsyncClient(base_url=edge.envoy.url, headers=auth_headers(), timeout=30) as client:
        response = await client.post(
            "/api/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "MODEL_NOT_FOUND"
        response = await client.post(
            "/api/v1/chat/completions", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "MALFORMED_JSON"


@pytest.mark.parametrize("stream", [False, True])
def test_aistack_chat_command(edge: Edge, stream: bool) -> None:
    argv = [sys.executable, "-m", "aistack_client.cli", "--url", edge.envoy.address, "--token", TEST_TOKEN]
    argv += ["chat", QUESTION, "--max-tokens", "24", "--temperature", "0", "--seed", "7", "--usage"]
    done = subprocess.run([*argv, "--stream"] if stream else argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "paris" in done.stdout.lower()
    assert "tokens: prompt" in done.stderr
