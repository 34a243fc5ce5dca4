"""LlmService over gRPC: protobuf <-> domain only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from aistack.llm.v1 import llm_service_pb2 as pb
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aistack_kit import errors
from aistack_kit.grpc_types import Context

from aistack_llm.service import LlmService, parse_json_schema
from aistack_llm.types import (
    ChatRequest,
    FinishReason,
    FormatType,
    GenerationParams,
    Message,
    ModelInfo,
    ResponseFormat,
    Role,
    Usage,
)

_ROLES = {pb.ROLE_SYSTEM: Role.SYSTEM, pb.ROLE_USER: Role.USER, pb.ROLE_ASSISTANT: Role.ASSISTANT}
_FINISH = {
    FinishReason.STOP: pb.FINISH_REASON_STOP,
    FinishReason.LENGTH: pb.FINISH_REASON_LENGTH,
    FinishReason.CONTENT_FILTER: pb.FINISH_REASON_CONTENT_FILTER,
}
_FORMATS = {
    pb.ResponseFormat.TYPE_UNSPECIFIED: FormatType.TEXT,
    pb.ResponseFormat.TYPE_TEXT: FormatType.TEXT,
    pb.ResponseFormat.TYPE_JSON_OBJECT: FormatType.JSON_OBJECT,
    pb.ResponseFormat.TYPE_JSON_SCHEMA: FormatType.JSON_SCHEMA,
}


class LlmServicer(pb_grpc.LlmServiceServicer):
    def __init__(self, service: LlmService) -> None:
        self._service = service

    async def Chat(self, request: pb.ChatRequest, context: Context) -> pb.ChatResponse:
        result = await self._service.chat(_chat_request(request), context.time_remaining())
        return pb.ChatResponse(
            id=result.id,
            model=result.model,
            message=pb.ChatMessage(role=pb.ROLE_ASSISTANT, content=result.content),
            finish_reason=_FINISH[result.finish_reason],
            usage=_usage(result.usage),
        )

    async def StreamChat(
        self, request: pb.StreamChatRequest, context: Context
    ) -> AsyncIterator[pb.StreamChatResponse]:
        # A cancelled call or a passed deadline cancels this task; the CancelledError unwinds through
        # the domain stream into the upstream response, which closes and stops generation there.
        async with aclosing(self._service.stream_chat(_chat_request(request))) as deltas:
            async for delta in deltas:
                message = pb.StreamChatResponse(id=delta.id, model=delta.model, delta=delta.delta)
                if delta.finish_reason is not None:
                    message.finish_reason = _FINISH[delta.finish_reason]
                if delta.usage is not None:
                    message.usage.CopyFrom(_usage(delta.usage))
                yield message

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[_model(m) for m in self._service.list_models()])

    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        result = await self._service.embed(request.model, list(request.inputs), context.time_remaining())
        return pb.EmbedResponse(
            embeddings=[pb.Embedding(index=i, values=v) for i, v in enumerate(result.vectors)],
            model=result.model,
            usage=_usage(result.usage),
        )


def _chat_request(request: pb.ChatRequest | pb.StreamChatRequest) -> ChatRequest:
    messages = []
    for index, message in enumerate(request.messages):
        role = _ROLES.get(message.role)
        if role is None:
            raise errors.InvalidArgument(
                f"messages[{index}].role must be ROLE_SYSTEM, ROLE_USER or ROLE_ASSISTANT",
                reason="UNKNOWN_ROLE",
                metadata={"field": f"messages[{index}].role"},
            )
        messages.append(Message(role, message.content))
    config = request.generation_config
    fmt = config.response_format
    schema = parse_json_schema(fmt.json_schema) if fmt.type == pb.ResponseFormat.TYPE_JSON_SCHEMA else None
    params = GenerationParams(
        temperature=config.temperature if config.HasField("temperature") else None,
        top_p=config.top_p if config.HasField("top_p") else None,
        max_tokens=config.max_tokens or None,
        stop=tuple(config.stop),
        seed=config.seed if config.HasField("seed") else None,
        response_format=ResponseFormat(type=_FORMATS.get(fmt.type, FormatType.TEXT), schema=schema),
    )
    return ChatRequest(model=request.model, messages=messages, params=params)


def _usage(usage: Usage) -> pb.Usage:
    return pb.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def _model(model: ModelInfo) -> pb.Model:
    return pb.Model(
        id=model.id,
        upstream_model=model.upstream_model,
        upstream=model.upstream,
        embedding=model.embedding,
        is_default=model.is_default,
    )
