"""TtsService: protobuf in, domain calls, protobuf out."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aistack.common.v1 import audio_pb2
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_kit import errors
from aistack_kit.grpc_types import Context
from google.api import httpbody_pb2
from google.protobuf import duration_pb2, timestamp_pb2

from aistack_tts.audio import OutputFormat, wav_header
from aistack_tts.synthesizer import SynthesisRequest, Synthesizer, VoiceInfo

_FORMATS = {
    audio_pb2.AUDIO_FORMAT_UNSPECIFIED: None,
    audio_pb2.AUDIO_FORMAT_WAV: OutputFormat.WAV,
    audio_pb2.AUDIO_FORMAT_PCM16: OutputFormat.PCM16,
    audio_pb2.AUDIO_FORMAT_OGG_OPUS: OutputFormat.OGG_OPUS,
    audio_pb2.AUDIO_FORMAT_MP3: OutputFormat.MP3,
}
_FORMAT_ENUMS = {fmt: enum for enum, fmt in _FORMATS.items() if fmt is not None}


def _format(value: int) -> OutputFormat | None:
    if value not in _FORMATS:
        raise errors.InvalidArgument(
            f"unsupported audio_format {value}",
            reason="UNSUPPORTED_AUDIO_FORMAT",
            metadata={"audio_format": str(value)},
        )
    return _FORMATS[value]  # type: ignore[index]


def _request(message: pb.SynthesizeRequest | pb.StreamingSynthesizeRequest) -> SynthesisRequest:
    return SynthesisRequest(
        text=message.text,
        language=message.language,
        voice=message.voice,
        audio_format=_format(message.audio_format),
        sample_rate_hertz=message.sample_rate_hertz,
        speaking_rate=message.speaking_rate,
    )


def _voice(info: VoiceInfo) -> pb.Voice:
    voice = pb.Voice(
        voice_id=info.voice_id,
        display_name=info.display_name,
        languages=list(info.languages),
        engine=info.engine,
        cloned=info.cloned,
    )
    if info.create_time is not None:
        created = timestamp_pb2.Timestamp()
        created.FromDatetime(info.create_time)
        voice.create_time.CopyFrom(created)
    return voice


class TtsServicer(pb_grpc.TtsServiceServicer):
    def __init__(self, synthesizer: Synthesizer) -> None:
        self._synthesizer = synthesizer

    async def Synthesize(self, request: pb.SynthesizeRequest, context: Context) -> pb.SynthesizeResponse:
        result = await self._synthesizer.synthesize(_request(request))
        duration = duration_pb2.Duration()
        duration.FromNanoseconds(round(result.duration_seconds * 1e9))
        return pb.SynthesizeResponse(
            audio=result.audio,
            audio_format=_FORMAT_ENUMS[result.audio_format],
            sample_rate_hertz=result.sample_rate_hertz,
            audio_duration=duration,
            voice=result.voice_id,
        )

    async def SynthesizeAudio(self, request: pb.SynthesizeRequest, context: Context) -> httpbody_pb2.HttpBody:
        result = await self._synthesizer.synthesize(_request(request))
        content_type = result.audio_format.content_type
        if result.audio_format is OutputFormat.PCM16:
            content_type += f";rate={result.sample_rate_hertz};channels=1"
        return httpbody_pb2.HttpBody(content_type=content_type, data=result.audio)

    async def StreamingSynthesize(
        self, request: pb.StreamingSynthesizeRequest, context: Context
    ) -> AsyncIterator[pb.StreamingSynthesizeResponse]:
        plan = await self._synthesizer.plan(_request(request), streaming=True)
        index = 0
        async for chunk in self._synthesizer.stream(plan):
            data = chunk.pcm16
            if index == 0 and plan.audio_format is OutputFormat.WAV:
                data = wav_header(plan.output_rate, None) + data
            yield pb.StreamingSynthesizeResponse(
                audio=data, sample_rate_hertz=plan.output_rate, chunk_index=index, text=chunk.sentence
            )
            index += 1

    async def CreateVoice(self, request: pb.CreateVoiceRequest, context: Context) -> pb.CreateVoiceResponse:
        info = await self._synthesizer.create_voice(
            request.display_name, request.reference_audio, request.language
        )
        return pb.CreateVoiceResponse(voice=_voice(info))

    async def ListVoices(self, request: pb.ListVoicesRequest, context: Context) -> pb.ListVoicesResponse:
        return pb.ListVoicesResponse(
            voices=[_voice(v) for v in await self._synthesizer.list_voices(request.language)]
        )

    async def DeleteVoice(self, request: pb.DeleteVoiceRequest, context: Context) -> pb.DeleteVoiceResponse:
        await self._synthesizer.delete_voice(request.voice_id)
        return pb.DeleteVoiceResponse()
