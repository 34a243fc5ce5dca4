"""The domain: one code path for chat, streamed chat, models and embeddings, whatever the protocol.

Both the gRPC servicer and the OpenAI-compatible HTTP surface only translate their wire formats to and
from these calls; validation, alias resolution, limits, metrics and upstream routing live here.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import replace

from aistack_kit import errors

from aistack_llm import metrics
from aistack_llm.config import LOCAL_UPSTREAM, AliasConfig, LlmConfig
from aistack_llm.engines import ChatEngine, EmbeddingEngine
from aistack_llm.types import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    EmbedResult,
    FinishReason,
    FormatType,
    GenerationParams,
    ModelInfo,
    Usage,
)

MAX_STOP_SEQUENCES = 4


class LlmService:
    def __init__(
        self,
        config: LlmConfig,
        chat_engines: Mapping[str, ChatEngine],
        embedding_engines: Mapping[str, EmbeddingEngine],
    ) -> None:
        """`chat_engines` by upstream name; `embedding_engines` by embedding alias."""
        self._config = config
        self._chat = dict(chat_engines)
        self._embedders = dict(embedding_engines)
        # Streams whose upstream response is still open; tests read it to see cancellation arrive.
        self.open_streams = 0

    # -- models ----------------------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        chat = [
            ModelInfo(
                a.alias,
                a.model,
                a.upstream,
                embedding=False,
                is_default=a.alias == self._config.default_model,
            )
            for a in self._config.aliases.values()
        ]
        embedding = [
            ModelInfo(
                a.alias,
                a.alias if a.upstream == LOCAL_UPSTREAM else a.model,
                a.upstream,
                embedding=True,
                is_default=a.alias == self._config.default_embedding_model,
            )
            for a in self._config.embedding_models.values()
        ]
        return chat + embedding

    def _resolve(self, model: str) -> AliasConfig:
        name = model.strip() or self._config.default_model
        alias = self._config.aliases.get(name)
        if alias is None:
            available = ", ".join(self._config.aliases)
            hint = (
                " (an embedding model: use the embeddings API)"
                if name in self._config.embedding_models
                else ""
            )
            raise errors.NotFound(
                f"model {name!r} not found{hint}; available: {available}",
                reason="MODEL_NOT_FOUND",
                metadata={"model": name, "available": available},
            )
        return alias

    # -- chat ------------------------------------------------------------------------------------

    async def chat(self, request: ChatRequest, deadline: float | None = None) -> ChatResult:
        alias, params = self._prepare(request)
        engine = self._chat[alias.upstream]
        metrics.REQUESTS.labels(alias.alias).inc()
        created = int(time.time())
        completion = await engine.complete(alias.model, request.messages, params, deadline)
        self._count_tokens(alias.alias, completion.usage)
        return ChatResult(
            id=_completion_id(),
            model=alias.model,
            content=completion.content,
            finish_reason=completion.finish_reason,
            usage=completion.usage,
            created=created,
        )

    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[ChatDelta, None]:
        """Validates now (so HTTP can still answer 400/404), then streams. Close it to stop early."""
        alias, params = self._prepare(request)
        return self._stream(alias, request, params)

    async def _stream(
        self, alias: AliasConfig, request: ChatRequest, params: GenerationParams
    ) -> AsyncGenerator[ChatDelta, None]:
        engine = self._chat[alias.upstream]
        metrics.REQUESTS.labels(alias.alias).inc()
        completion_id, created, started = _completion_id(), int(time.time()), time.perf_counter()
        finish: FinishReason | None = None
        usage: Usage | None = None
        deltas = 0
        self.open_streams += 1
        active = metrics.ACTIVE_STREAMS.labels(alias.upstream)
        active.inc()
        try:
            async with aclosing(engine.stream(alias.model, request.messages, params)) as chunks:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason is not None:
                        finish = chunk.finish_reason
                    if chunk.delta:
                        if deltas == 0:
                            metrics.TIME_TO_FIRST_TOKEN.labels(alias.alias).observe(
                                time.perf_counter() - started
                            )
                        deltas += 1
                        yield ChatDelta(completion_id, alias.model, chunk.delta, created)
        finally:
            self.open_streams -= 1
            active.dec()
        if usage is None:
            # llama.cpp's server reports no usage on streams; it sends one chunk per generated token,
            # so the deltas are the completion count (the prompt count stays unknown: 0).
            usage = Usage(prompt_tokens=0, completion_tokens=deltas)
        self._count_tokens(alias.alias, usage)
        yield ChatDelta(
            completion_id, alias.model, "", created, finish_reason=finish or FinishReason.STOP, usage=usage
        )

    def _prepare(self, request: ChatRequest) -> tuple[AliasConfig, GenerationParams]:
        if not request.messages:
            raise errors.InvalidArgument(
                "messages must hold at least one message",
                reason="NO_MESSAGES",
                metadata={"field": "messages"},
            )
        alias = self._resolve(request.model)
        return alias, self._validated(request.params)

    def _validated(self, params: GenerationParams) -> GenerationParams:
        limit = self._config.max_tokens_limit
        max_tokens = params.max_tokens or self._config.default_max_tokens
        if max_tokens < 0 or max_tokens > limit:
            raise errors.InvalidArgument(
                f"max_tokens must be between 1 and {limit}, got {max_tokens}",
                reason="MAX_TOKENS_OUT_OF_RANGE",
                metadata={"field": "max_tokens", "limit": str(limit), "value": str(max_tokens)},
            )
        if params.temperature is not None and not 0.0 <= params.temperature <= 2.0:
            raise _bad_field("temperature", f"must be between 0 and 2, got {params.temperature}")
        if params.top_p is not None and not 0.0 < params.top_p <= 1.0:
            raise _bad_field("top_p", f"must be above 0 and at most 1, got {params.top_p}")
        if len(params.stop) > MAX_STOP_SEQUENCES or any(not s for s in params.stop):
            raise _bad_field("stop", f"takes up to {MAX_STOP_SEQUENCES} non-empty sequences")
        fmt = params.response_format
        if fmt.type is FormatType.JSON_SCHEMA and not isinstance(fmt.schema, dict):
            raise _bad_field("response_format", "json_schema needs a JSON Schema object")
        return replace(params, max_tokens=max_tokens)

    # -- embeddings ------------------------------------------------------------------------------

    async def embed(self, model: str, texts: Sequence[str], deadline: float | None = None) -> EmbedResult:
        name = model.strip() or self._config.default_embedding_model or ""
        alias = self._config.embedding_models.get(name)
        if alias is None:
            available = ", ".join(self._config.embedding_models) or "none"
            raise errors.NotFound(
                f"embedding model {name!r} not found; available: {available}",
                reason="MODEL_NOT_FOUND",
                metadata={"model": name, "available": available},
            )
        if not texts:
            raise _bad_field("input", "must hold at least one text")
        if len(texts) > self._config.max_embed_inputs:
            raise _bad_field(
                "input", f"takes at most {self._config.max_embed_inputs} texts, got {len(texts)}"
            )
        metrics.REQUESTS.labels(alias.alias).inc()
        result = await self._embedders[alias.alias].embed(alias.model, texts, deadline)
        usage = Usage(prompt_tokens=result.prompt_tokens)
        self._count_tokens(alias.alias, usage)
        # In-process models are named by their alias; an upstream's by the model it serves.
        served = alias.alias if alias.upstream == LOCAL_UPSTREAM else alias.model
        return EmbedResult(model=served, vectors=result.vectors, usage=usage)

    # -- helpers ---------------------------------------------------------------------------------

    def _count_tokens(self, alias: str, usage: Usage) -> None:
        metrics.TOKENS.labels(alias, "prompt").inc(usage.prompt_tokens)
        metrics.TOKENS.labels(alias, "completion").inc(usage.completion_tokens)


def parse_json_schema(text: str) -> dict[str, object]:
    """A JSON Schema sent as text (gRPC's `json_schema`); a 400 when it is not a JSON object."""
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad_field("response_format", f"json_schema is not valid JSON: {exc.msg}") from None
    if not isinstance(schema, dict):
        raise _bad_field("response_format", "json_schema must be a JSON object")
    return schema


def _bad_field(field: str, problem: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"{field} {problem}", reason="INVALID_FIELD", metadata={"field": field})


def _completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"
