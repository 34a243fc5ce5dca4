"""Chat over gRPC and the OpenAI-compatible HTTP surface, against the real llama.cpp upstream."""

from __future__ import annotations

import json

import grpc
import httpx
import openai
import pytest
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack_kit.errors import error_info_of
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from llm_testkit import Service, auth_headers
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client import REGISTRY

QUESTION = "What is the capital of France? Answer in one sentence."


def chat_request(
    content: str = QUESTION, *, max_tokens: int = 24, model: str = "", seed: int | None = 7
) -> pb.ChatRequest:
    config = pb.GenerationConfig(temperature=0.0, max_tokens=max_tokens)
    if seed is not None:
        config.seed = seed
    return pb.ChatRequest(
        model=model,
        messages=[pb.ChatMessage(role=pb.ROLE_USER, content=content)],
        generation_config=config,
    )


def stream_request(request: pb.ChatRequest) -> pb.StreamChatRequest:
    return pb.StreamChatRequest(
        model=request.model, messages=request.messages, generation_config=request.generation_config
    )


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_chat_answers_with_usage(service: Service) -> None:
    reply = await service.stub.Chat(chat_request(), metadata=auth_metadata(), timeout=60)
    assert "paris" in reply.message.content.lower()
    assert reply.message.role == pb.ROLE_ASSISTANT
    assert reply.model == "SmolLM2-135M-Instruct"
    assert reply.id.startswith("chatcmpl-")
    assert reply.finish_reason in (pb.FINISH_REASON_STOP, pb.FINISH_REASON_LENGTH)
    assert reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_max_tokens_stops_with_length_and_exact_count(service: Service) -> None:
    request = chat_request("Write a long story about a dragon who learns to sing.", max_tokens=5)
    reply = await service.stub.Chat(request, metadata=auth_metadata(), timeout=60)
    assert reply.finish_reason == pb.FINISH_REASON_LENGTH
    assert reply.usage.completion_tokens == 5


async def test_stream_deltas_add_up_to_the_unary_answer(service: Service) -> None:
    request = chat_request()
    before_ttft = sample("aistack_llm_time_to_first_token_seconds_count", {"model": "paneas-v1"})
    before_completion = sample("aistack_llm_tokens_total", {"model": "paneas-v1", "kind": "completion"})
    unary = await service.stub.Chat(request, metadata=auth_metadata(), timeout=60)
    messages = [m async for m in service.stub.StreamChat(stream_request(request), metadata=auth_metadata())]
    text = "".join(m.delta for m in messages)
    assert text == unary.message.content
    assert len({m.id for m in messages}) == 1
    assert all(m.finish_reason == pb.FINISH_REASON_UNSPECIFIED for m in messages[:-1])
    last = messages[-1]
    assert last.finish_reason == unary.finish_reason
    # llama.cpp sends one chunk per token: the delta count is the completion count, as unary reports it.
    assert (
        last.usage.completion_tokens == unary.usage.completion_tokens == sum(1 for m in messages if m.delta)
    )
    assert sample("aistack_llm_time_to_first_token_seconds_count", {"model": "paneas-v1"}) == before_ttft + 1
    assert (
        sample("aistack_llm_tokens_total", {"model": "paneas-v1", "kind": "completion"})
        == before_completion + 2 * unary.usage.completion_tokens
    )


async def test_http_chat_and_sse_stream_ending_in_done(service: Service) -> None:
    body = {
        "model": "paneas-v1",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 24,
        "temperature": 0,
        "seed": 7,
    }
    before = sample("aistack_llm_requests_total", {"model": "paneas-v1"})
    async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=60) as client:
        unary = await client.post("/api/v1/chat/completions", json=body)
        assert unary.status_code == 200, unary.text
        answer = unary.json()
        assert answer["object"] == "chat.completion"
        assert "paris" in answer["choices"][0]["message"]["content"].lower()

        events = []
        async with client.stream(
            "POST", "/api/v1/chat/completions", json={**body, "stream": True}
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line:
                    assert line.startswith("data: ")
                    events.append(line.removeprefix("data: "))
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        == (answer["choices"][0]["message"]["content"])
    )
    assert chunks[-1]["choices"][0]["finish_reason"] == answer["choices"][0]["finish_reason"]
    assert sample("aistack_llm_requests_total", {"model": "paneas-v1"}) == before + 2


async def test_official_openai_client_unary_and_streaming(service: Service) -> None:
    client = openai.AsyncOpenAI(base_url=service.openai_base_url, api_key=TEST_TOKEN, max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": QUESTION},
    ]
    try:
        models = await client.models.list()
        assert "paneas-v1" in [m.id for m in models.data]

        unary = await client.chat.completions.create(
            model="paneas-v1",
            messages=messages,
            max_tokens=24,
            temperature=0,
            seed=7,
        )
        content = unary.choices[0].message.content or ""
        assert "paris" in content.lower()
        assert unary.usage is not None and unary.usage.completion_tokens > 0

        stream = await client.chat.completions.create(
            model="paneas-v1",
            messages=messages,
            max_tokens=24,
            temperature=0,
            seed=7,
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
            if chunk.usage is not None:
                usage = chunk.usage
        assert "".join(pieces) == content
        assert usage is not None and usage.completion_tokens == unary.usage.completion_tokens

        with pytest.raises(openai.NotFoundError) as missing:
            await client.chat.completions.create(model="gpt-4o", messages=messages)
        assert "paneas-v1" in str(missing.value)
    finally:
        await client.close()


async def test_openai_client_json_mode_gives_json(service: Service) -> None:
    client = openai.AsyncOpenAI(base_url=service.openai_base_url, api_key=TEST_TOKEN, max_retries=0)
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"capital": {"type": "string", "enum": ["Paris", "Lyon", "Rome"]}},
        "required": ["capital"],
    }
    try:
        reply = await client.chat.completions.create(
            model="paneas-v1",
            messages=[{"role": "user", "content": "What is the capital of France? Reply in JSON."}],
            max_tokens=40,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        )
    finally:
        await client.close()
    assert json.loads(reply.choices[0].message.content or "") == {"capital": "Paris"}


async def test_openai_client_bad_token_is_refused(service: Service) -> None:
    client = openai.AsyncOpenAI(base_url=service.openai_base_url, api_key="wrong-token", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    finally:
        await client.close()


async def test_list_models_over_grpc(service: Service) -> None:
    reply = await service.stub.ListModels(pb.ListModelsRequest(), metadata=auth_metadata(), timeout=10)
    models = {m.id: m for m in reply.models}
    assert models["paneas-v1"].is_default and not models["paneas-v1"].embedding
    assert models["paneas-v1"].upstream == "llama-cpp"
    assert models["paneas-v1"].upstream_model == "SmolLM2-135M-Instruct"
    assert models["all-minilm-l6-v2"].embedding


async def test_grpc_refuses_without_token(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await service.stub.Chat(chat_request(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_http_refuses_without_or_with_wrong_token(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.http_url, timeout=10) as client:
        for headers in ({}, auth_headers("not-the-token"), {"Authorization": TEST_TOKEN}):
            response = await client.get("/api/v1/models", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "INVALID_TOKEN"
            assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "reason", "param"),
    [
        ({"model": "paneas-v1", "messages": []}, "NO_MESSAGES", "messages"),
        ({"model": "paneas-v1"}, "NO_MESSAGES", "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "UNKNOWN_ROLE", None),
        (
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1025},
            "MAX_TOKENS_OUT_OF_RANGE",
            "max_tokens",
        ),
        (
            {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -3},
            "MAX_TOKENS_OUT_OF_RANGE",
            "max_tokens",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 3}, "INVALID_FIELD", "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, "INVALID_FIELD", "n"),
        ({"messages": "hi"}, "INVALID_FIELD", "messages"),
    ],
)
async def test_http_bad_input_is_400_json(
    service: Service, body: dict[str, object], reason: str, param: str | None
) -> None:
    async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=10) as client:
        for stream in (False, True):
            response = await client.post("/api/v1/chat/completions", json={**body, "stream": stream})
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/json"
            error = response.json()["error"]
            assert error["code"] == reason
            assert error["type"] == "invalid_request_error"
            assert error["param"] == param
            assert error["message"]


async def test_http_malformed_json_is_400(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=10) as client:
        for payload in (b'{"messages": [', b"[1, 2]", b"\xff\xfe"):
            response = await client.post(
                "/api/v1/chat/completions",
                content=payload,
                headers={"Content-Type": "application/json", "x-request-id": "req-42"},
            )
            assert response.status_code == 400
            assert response.json()["error"]["code"] == "MALFORMED_JSON"
            assert response.headers["x-request-id"] == "req-42"


async def test_unknown_model_is_404_listing_the_available_ones(service: Service) -> None:
    async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=10) as client:
        response = await client.post(
            "/api/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "MODEL_NOT_FOUND"
    assert "paneas-v1" in error["message"]
    assert error["metadata"]["available"] == "paneas-v1"

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await service.stub.Chat(chat_request(model="gpt-4o"), metadata=auth_metadata(), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info_of(missing.value)
    assert info is not None and info.reason == "MODEL_NOT_FOUND"
    assert info.metadata["available"] == "paneas-v1"
    assert info.domain == "llm.aistack"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (pb.ChatRequest(), "NO_MESSAGES"),
        (pb.ChatRequest(messages=[pb.ChatMessage(content="role missing")]), "UNKNOWN_ROLE"),
        (
            pb.ChatRequest(
                messages=[pb.ChatMessage(role=pb.ROLE_USER, content="hi")],
                generation_config=pb.GenerationConfig(max_tokens=5000),
            ),
            "MAX_TOKENS_OUT_OF_RANGE",
        ),
        (
            pb.ChatRequest(
                messages=[pb.ChatMessage(role=pb.ROLE_USER, content="hi")],
                generation_config=pb.GenerationConfig(
                    response_format=pb.ResponseFormat(
                        type=pb.ResponseFormat.TYPE_JSON_SCHEMA, json_schema="{oops"
                    )
                ),
            ),
            "INVALID_FIELD",
        ),
    ],
)
async def test_grpc_bad_input_is_invalid_argument(
    service: Service, request_: pb.ChatRequest, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await service.stub.Chat(request_, metadata=auth_metadata(), timeout=10)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info_of(bad.value)
    assert info is not None and info.reason == reason

    with pytest.raises(grpc.aio.AioRpcError) as bad_stream:
        async for _ in service.stub.StreamChat(
            stream_request(request_), metadata=auth_metadata(), timeout=10
        ):
            pass
    assert bad_stream.value.code() == grpc.StatusCode.INVALID_ARGUMENT
