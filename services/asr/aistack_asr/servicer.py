"""AsrService: protobuf (and REST uploads) in, domain calls, protobuf out. No decoding logic here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_kit.errors import Unavailable
from aistack_kit.grpc_types import Context
from google.api import httpbody_pb2

from aistack_asr.convert import duration, segment_to_proto
from aistack_asr.recognizer import Recognition, RecognitionRequest, Recognizer
from aistack_asr.registry import ModelRegistry
from aistack_asr.upload import request_from_http_body


class StreamingRecognizer(Protocol):
    """What the servicer needs of `aistack_asr.streaming.StreamingRecognizer` (live recognition)."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def recognize(
        self, requests: AsyncIterator[pb.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]: ...


def to_domain(request: pb.RecognizeRequest) -> RecognitionRequest:
    config = request.config
    return RecognitionRequest(
        audio=request.audio,
        encoding=int(config.encoding),
        sample_rate_hertz=config.sample_rate_hertz,
        model=config.model,
        allow_model_fallback=config.allow_model_fallback,
        language=config.language,
        word_timestamps=config.enable_word_time_offsets,
        vad_filter=config.enable_vad_filter if config.HasField("enable_vad_filter") else None,
        beam_size=config.beam_size,
        initial_prompt=config.initial_prompt,
        hotwords=config.hotwords,
        temperatures=tuple(config.temperatures),
    )


def to_response(result: Recognition) -> pb.RecognizeResponse:
    transcript = result.transcript
    return pb.RecognizeResponse(
        text=transcript.text,
        segments=[segment_to_proto(s) for s in transcript.segments],
        language=transcript.language,
        language_probability=transcript.language_probability,
        audio_duration=duration(transcript.duration_seconds),
        processing_duration=duration(result.processing_seconds),
        model=result.model,
        model_fallback_used=result.model_fallback_used,
    )


class AsrServicer(pb_grpc.AsrServiceServicer):
    def __init__(
        self,
        recognizer: Recognizer,
        registry: ModelRegistry,
        streaming: StreamingRecognizer | None,
    ) -> None:
        self._recognizer = recognizer
        self._registry = registry
        self._streaming = streaming

    async def Recognize(self, request: pb.RecognizeRequest, context: Context) -> pb.RecognizeResponse:
        return to_response(await self._recognizer.recognize(to_domain(request)))

    async def RecognizeUpload(self, request: httpbody_pb2.HttpBody, context: Context) -> pb.RecognizeResponse:
        # Refuse an oversized body before parsing it, whatever its shape.
        self._recognizer.check_upload_size(len(request.data))
        parsed = request_from_http_body(request.content_type, request.data)
        return to_response(await self._recognizer.recognize(to_domain(parsed)))

    async def ListModels(self, request: pb.ListModelsRequest, context: Context) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelInfo(
                    name=m.name,
                    aliases=m.aliases,
                    loaded=m.loaded,
                    device="cuda:0" if m.device == "cuda" else m.device,
                    compute_type=m.compute_type,
                    languages=m.languages,
                    is_default=m.is_default,
                )
                for m in self._registry.list_models()
                if m.installed or m.loaded
            ],
            fallback_model=self._registry.fallback_name,
        )

    async def StreamingRecognize(
        self, request_iterator: AsyncIterator[pb.StreamingRecognizeRequest], context: Context
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        if self._streaming is None:
            raise Unavailable(
                "live recognition is not available on this replica", reason="STREAMING_UNAVAILABLE"
            )
        async for response in self._streaming.recognize(request_iterator, context):
            yield response
