"""Engines: the narrow interfaces the domain talks to, and their implementations.

`OpenAIUpstream` is a client of any OpenAI-compatible server: vLLM in production, llama.cpp's server
(llama-cpp-python) in embedded mode. `LocalSentenceEmbedder` (embeddings_local.py) runs a
sentence-transformers folder in-process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any, Protocol

import httpx
from aistack_kit import errors

from aistack_llm.config import UpstreamConfig
from aistack_llm.types import (
    Completion,
    CompletionChunk,
    Embeddings,
    FinishReason,
    FormatType,
    GenerationParams,
    Message,
    Usage,
)


class ChatEngine(Protocol):
    """Generates chat answers for the models one upstream serves."""

    name: str

    async def complete(
        self, model: str, messages: Sequence[Message], params: GenerationParams, deadline: float | None
    ) -> Completion:
        """The whole answer. `deadline`: seconds the caller still waits (None: no caller deadline)."""
        ...

    def stream(
        self, model: str, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[CompletionChunk, None]:
        """The answer as it is generated. Closing the iterator early stops generation upstream."""
        ...

    async def aclose(self) -> None: ...


class EmbeddingEngine(Protocol):
    name: str

    async def load(self) -> None: ...

    async def embed(self, model: str, texts: Sequence[str], deadline: float | None) -> Embeddings: ...

    async def aclose(self) -> None: ...


class OpenAIUpstream:
    """Chat and embeddings from an OpenAI-compatible HTTP server, over one pooled httpx client."""

    def __init__(self, config: UpstreamConfig) -> None:
        self.name = config.name
        self._config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._client = httpx.AsyncClient(
            base_url=config.url,
            headers=headers,
            # The read timeout bounds the wait for the first byte and every gap between streamed
            # chunks: a stalled upstream is reported instead of holding the caller forever.
            timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
            # Streams hold a connection each for their whole length; the default pool (100) would
            # queue callers here rather than at the upstream's scheduler.
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
        )

    async def load(self) -> None:
        """Nothing to load: the upstream is a separate server, reached on demand."""

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- chat ------------------------------------------------------------------------------------

    async def complete(
        self, model: str, messages: Sequence[Message], params: GenerationParams, deadline: float | None
    ) -> Completion:
        body = self._chat_body(model, messages, params, stream=False)
        data = await self._post_json("/chat/completions", body, deadline)
        try:
            choice = data["choices"][0]
            content = choice["message"].get("content") or ""
            finish = FinishReason.from_upstream(choice.get("finish_reason")) or FinishReason.STOP
            usage = _usage(data.get("usage"))
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self._bad_answer(f"chat completion without {exc}") from None
        return Completion(content=content, finish_reason=finish, usage=usage or Usage())

    async def stream(
        self, model: str, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[CompletionChunk, None]:
        body = self._chat_body(model, messages, params, stream=True)
        try:
            # Leaving this block early (the caller closed us: cancel, disconnect, error) closes the
            # half-read response, which drops the connection: the upstream sees the client go and
            # stops generating.
            async with self._client.stream("POST", "/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._raise_for_status(response)
                async for data in _sse_data(response.aiter_lines()):
                    if data == "[DONE]":
                        return
                    for chunk in self._chunks(data):
                        yield chunk
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None

    def _chunks(self, data: str) -> list[CompletionChunk]:
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise self._bad_answer(f"unreadable stream event {data[:200]!r}") from None
        if not isinstance(event, dict):
            raise self._bad_answer(f"stream event is not an object: {data[:200]!r}")
        if event.get("error"):
            error = event["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise errors.Unavailable(
                f"upstream {self.name!r} failed mid-stream: {message}",
                reason="UPSTREAM_STREAM_ERROR",
                metadata={"upstream": self.name},
            )
        chunks = []
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content") or ""
            finish = FinishReason.from_upstream(choice.get("finish_reason"))
            if content or finish is not None:
                chunks.append(CompletionChunk(delta=content, finish_reason=finish))
        usage = _usage(event.get("usage"))
        if usage is not None:
            chunks.append(CompletionChunk(usage=usage))
        return chunks

    def _chat_body(
        self, model: str, messages: Sequence[Message], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m.role.value, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if stream and self._config.dialect == "openai":
            # vLLM reports usage on a last chunk only when asked.
            body["stream_options"] = {"include_usage": True}
        if params.temperature is not None:
            body["temperature"] = params.temperature
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        fmt = params.response_format
        if fmt.type is FormatType.JSON_OBJECT:
            body["response_format"] = {"type": "json_object"}
        elif fmt.type is FormatType.JSON_SCHEMA:
            if self._config.dialect == "llama-cpp":
                # llama-cpp-python takes the schema beside json_object and compiles it to a grammar.
                body["response_format"] = {"type": "json_object", "schema": fmt.schema}
            else:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": fmt.name, "schema": fmt.schema, "strict": True},
                }
        return body

    # -- embeddings ------------------------------------------------------------------------------

    async def embed(self, model: str, texts: Sequence[str], deadline: float | None) -> Embeddings:
        body = {"model": model, "input": list(texts), "encoding_format": "float"}
        data = await self._post_json("/embeddings", body, deadline)
        try:
            items = sorted(data["data"], key=lambda item: item["index"])
            vectors = [[float(x) for x in item["embedding"]] for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad_answer(f"embeddings without {exc}") from None
        if len(vectors) != len(texts):
            raise self._bad_answer(f"{len(vectors)} embeddings for {len(texts)} inputs")
        usage = _usage(data.get("usage"))
        return Embeddings(vectors=vectors, prompt_tokens=usage.prompt_tokens if usage else 0)

    # -- plumbing --------------------------------------------------------------------------------

    async def _post_json(self, path: str, body: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        budget = (
            self._config.timeout_seconds if deadline is None else min(deadline, self._config.timeout_seconds)
        )
        try:
            async with asyncio.timeout(budget):
                response = await self._client.post(path, json=body)
        except TimeoutError:
            if deadline is not None and deadline <= self._config.timeout_seconds:
                raise errors.DeadlineExceeded(
                    f"upstream {self.name!r} did not answer within the caller's deadline ({deadline:.1f} s)",
                    reason="DEADLINE_EXCEEDED",
                    metadata={"upstream": self.name},
                ) from None
            raise self._slow(budget) from None
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from None
        self._raise_for_status(response)
        try:
            data = response.json()
        except ValueError:
            raise self._bad_answer(f"non-JSON answer {response.text[:200]!r}") from None
        if not isinstance(data, dict):
            raise self._bad_answer("answer is not a JSON object")
        return data

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 200:
            return
        detail = _error_message(response)
        metadata = {"upstream": self.name, "upstream_status": str(status)}
        if status in (400, 422):
            # The upstream judged the request (context too long, a schema it cannot compile).
            raise errors.InvalidArgument(
                f"upstream {self.name!r} rejected the request: {detail}",
                reason="UPSTREAM_REJECTED_REQUEST",
                metadata=metadata,
            )
        if status == 429:
            raise errors.ResourceExhausted(
                f"upstream {self.name!r} is overloaded: {detail}",
                reason="UPSTREAM_OVERLOADED",
                metadata=metadata,
            )
        raise errors.Unavailable(
            f"upstream {self.name!r} answered HTTP {status}: {detail}",
            reason="UPSTREAM_ERROR",
            metadata=metadata,
        )

    def _transport_error(self, exc: httpx.HTTPError) -> errors.AistackError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return self._slow(self._config.timeout_seconds)
        what = type(exc).__name__
        return errors.Unavailable(
            f"upstream {self.name!r} at {self._config.url} is unavailable ({what}: {exc or 'no detail'})",
            reason="UPSTREAM_UNAVAILABLE",
            metadata={"upstream": self.name, "url": self._config.url},
        )

    def _slow(self, seconds: float) -> errors.AistackError:
        return errors.Unavailable(
            f"upstream {self.name!r} at {self._config.url} did not answer within {seconds:g} s",
            reason="UPSTREAM_TIMEOUT",
            metadata={"upstream": self.name, "url": self._config.url},
        )

    def _bad_answer(self, detail: str) -> errors.AistackError:
        return errors.Unavailable(
            f"upstream {self.name!r} sent an unexpected answer: {detail}",
            reason="UPSTREAM_BAD_ANSWER",
            metadata={"upstream": self.name},
        )


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive ping
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    return Usage(
        prompt_tokens=int(value.get("prompt_tokens") or 0),
        completion_tokens=int(value.get("completion_tokens") or 0),
    )


def _error_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        return json.dumps(error)[:300]
    return str(data)[:300]
