"""The TTS service over real gRPC with the embedded engines (Piper for English, espeak-ng for Portuguese)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import numpy as np
import pytest
from aistack.common.v1 import audio_pb2
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_kit.testing import auth_metadata
from aistack_tts.testing import assert_error, decode, pcm16, wer
from prometheus_client import REGISTRY

AUTH = auth_metadata()
PT_TEXT = "Bom dia. O Sr. Silva pagou R$ 1.234,56 em 25/11/2026. Obrigado por ligar!"
if TYPE_CHECKING:
    Stub = pb_grpc.TtsServiceAsyncStub


def _transcribe(model: object, audio: np.ndarray, language: str) -> str:
    segments, _ = model.transcribe(audio, language=language, beam_size=1, vad_filter=False)  # type: ignore[attr-defined]
    return " ".join(segment.text for segment in segments)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("language", "text", "spoken", "bound"),
    [
        # Piper's neural voice: Whisper base transcribed it exactly when this was written.
        ("en", "Thank you for calling. How can I help you today?",
         "thank you for calling how can i help you today", 0.15),
        # espeak-ng is robotic; the bound still fails for silence, noise or the wrong language.
        ("pt", "Bom dia. Obrigado por ligar para a nossa empresa.",
         "bom dia obrigado por ligar para a nossa empresa", 0.3),
        # What the normalizer spells out must come out as speech too (Whisper writes it back in digits).
        ("en", "Your balance is $250 as of 11/25/2026.",
         "your balance is 250 as of november 25th 2026", 0.3),
    ],
)  # fmt: skip
async def test_round_trip_through_whisper(
    stub: Stub, whisper_base: object, language: str, text: str, spoken: str, bound: float
) -> None:
    reply = await stub.Synthesize(
        pb.SynthesizeRequest(text=text, language=language, sample_rate_hertz=16000), metadata=AUTH
    )
    decoded = decode(reply.audio)
    assert decoded.sample_rate == 16000 == reply.sample_rate_hertz
    heard = _transcribe(whisper_base, decoded.samples, language)
    assert wer(spoken, heard) <= bound, heard


async def test_stream_concatenates_to_the_unary_audio(stub: Stub) -> None:
    # espeak-ng is deterministic (Piper's VITS samples noise), so the bytes can be compared exactly;
    # 16 kHz makes both paths go through the resampler, whose state must carry across chunks.
    unary = await stub.Synthesize(
        pb.SynthesizeRequest(
            text=PT_TEXT, language="pt", sample_rate_hertz=16000, audio_format=audio_pb2.AUDIO_FORMAT_PCM16
        ),
        metadata=AUTH,
    )
    request = pb.StreamingSynthesizeRequest(text=PT_TEXT, language="pt", sample_rate_hertz=16000)
    chunks = [c async for c in stub.StreamingSynthesize(request, metadata=AUTH)]
    assert len(chunks) >= 3  # one per sentence at least
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert {c.sample_rate_hertz for c in chunks} == {16000}
    assert b"".join(c.audio for c in chunks) == unary.audio
    spoken = [c.text for c in chunks]
    assert spoken[0] == "Bom dia."
    assert any("mil duzentos e trinta e quatro reais e cinquenta e seis centavos" in s for s in spoken)
    assert abs(len(unary.audio) / 2 / 16000 - unary.audio_duration.ToNanoseconds() / 1e9) < 1e-3


async def test_stream_as_wav_has_one_header(stub: Stub) -> None:
    request = pb.StreamingSynthesizeRequest(
        text="Primeira frase. Segunda frase.", language="pt", audio_format=audio_pb2.AUDIO_FORMAT_WAV
    )
    chunks = [c.audio async for c in stub.StreamingSynthesize(request, metadata=AUTH)]
    assert chunks[0][:4] == b"RIFF"
    assert all(not chunk.startswith(b"RIFF") for chunk in chunks[1:])
    whole = decode(b"".join(chunks))
    assert whole.sample_rate == 22050
    assert whole.seconds > 1.0


@pytest.mark.parametrize(
    ("audio_format", "rate", "codec", "decoded_rate"),
    [
        (audio_pb2.AUDIO_FORMAT_WAV, 0, "pcm_s16le", 22050),
        (audio_pb2.AUDIO_FORMAT_UNSPECIFIED, 8000, "pcm_s16le", 8000),
        (audio_pb2.AUDIO_FORMAT_OGG_OPUS, 0, "opus", 48000),
        (audio_pb2.AUDIO_FORMAT_OGG_OPUS, 16000, "opus", 48000),
        (audio_pb2.AUDIO_FORMAT_MP3, 0, "mp3float", 22050),
        (audio_pb2.AUDIO_FORMAT_MP3, 44100, "mp3float", 44100),
    ],
)
async def test_every_format_decodes_to_the_right_rate_and_duration(
    stub: Stub, audio_format: audio_pb2.AudioFormat.ValueType, rate: int, codec: str, decoded_rate: int
) -> None:
    def request(fmt: audio_pb2.AudioFormat.ValueType) -> pb.SynthesizeRequest:
        return pb.SynthesizeRequest(text=PT_TEXT, language="pt", sample_rate_hertz=rate, audio_format=fmt)

    reference = await stub.Synthesize(request(audio_pb2.AUDIO_FORMAT_PCM16), metadata=AUTH)
    reply = await stub.Synthesize(request(audio_format), metadata=AUTH)
    expected_format = audio_format or audio_pb2.AUDIO_FORMAT_WAV
    assert reply.audio_format == expected_format
    decoded = decode(reply.audio)
    assert decoded.codec == codec
    # Opus always decodes at 48 kHz; the response reports the rate the stream was encoded at.
    assert decoded.sample_rate == decoded_rate
    seconds = reply.audio_duration.ToNanoseconds() / 1e9
    assert abs(decoded.seconds - seconds) < 0.06, (decoded.seconds, seconds)
    assert abs(len(reference.audio) / 2 / reference.sample_rate_hertz - seconds) < 0.01
    assert seconds > 5.0


async def test_pcm16_and_sample_rate_conversion_keep_the_duration(stub: Stub) -> None:
    native = await stub.Synthesize(
        pb.SynthesizeRequest(text=PT_TEXT, language="pt", audio_format=audio_pb2.AUDIO_FORMAT_PCM16),
        metadata=AUTH,
    )
    converted = await stub.Synthesize(
        pb.SynthesizeRequest(
            text=PT_TEXT, language="pt", audio_format=audio_pb2.AUDIO_FORMAT_PCM16, sample_rate_hertz=24000
        ),
        metadata=AUTH,
    )
    assert native.sample_rate_hertz == 22050 and converted.sample_rate_hertz == 24000
    assert abs(len(native.audio) / 2 / 22050 - len(converted.audio) / 2 / 24000) < 0.01
    assert np.abs(pcm16(converted.audio)).max() > 0.3


async def test_speaking_rate_changes_the_length(stub: Stub) -> None:
    async def seconds(rate: float) -> float:
        reply = await stub.Synthesize(
            pb.SynthesizeRequest(text=PT_TEXT, language="pt", speaking_rate=rate), metadata=AUTH
        )
        return reply.audio_duration.ToNanoseconds() / 1e9

    normal, fast, slow = await seconds(0), await seconds(2.0), await seconds(0.6)
    assert fast < 0.65 * normal
    assert slow > 1.3 * normal


async def test_rest_shaped_synthesize_audio_returns_a_wav_file(stub: Stub) -> None:
    body = await stub.SynthesizeAudio(pb.SynthesizeRequest(text="Olá mundo", language="pt"), metadata=AUTH)
    assert body.content_type == "audio/wav"
    decoded = decode(body.data)
    assert decoded.codec == "pcm_s16le" and decoded.seconds > 0.3
    english = await stub.SynthesizeAudio(
        pb.SynthesizeRequest(text="Hello world", language="en-US", audio_format=audio_pb2.AUDIO_FORMAT_MP3),
        metadata=AUTH,
    )
    assert english.content_type == "audio/mpeg"
    assert decode(english.data).codec == "mp3float"


async def test_voices_are_listed_and_default_per_language(stub: Stub) -> None:
    voices = (await stub.ListVoices(pb.ListVoicesRequest(), metadata=AUTH)).voices
    by_id = {v.voice_id: v for v in voices}
    assert by_id["en_US-joe-medium"].engine == "piper"
    assert by_id["espeak-ng-pt-br"].engine == "espeak-ng"
    assert not any(v.cloned for v in voices)
    portuguese = (await stub.ListVoices(pb.ListVoicesRequest(language="pt-BR"), metadata=AUTH)).voices
    assert [v.voice_id for v in portuguese] == ["espeak-ng-pt-br"]
    english = await stub.Synthesize(pb.SynthesizeRequest(text="Hello.", language="en"), metadata=AUTH)
    assert english.voice == "en_US-joe-medium"
    espeak_english = await stub.Synthesize(
        pb.SynthesizeRequest(text="Hello.", language="en", voice="espeak-ng-en-us"), metadata=AUTH
    )
    assert espeak_english.voice == "espeak-ng-en-us"


async def test_embedded_engines_refuse_cloning(stub: Stub) -> None:
    reference = await stub.Synthesize(pb.SynthesizeRequest(text=PT_TEXT, language="pt"), metadata=AUTH)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CreateVoice(
            pb.CreateVoiceRequest(display_name="Ana", reference_audio=reference.audio, language="pt"),
            metadata=AUTH,
        )
    assert_error(caught.value, grpc.StatusCode.FAILED_PRECONDITION, "VOICE_CLONING_UNSUPPORTED")
    assert "cannot clone" in (caught.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteVoice(pb.DeleteVoiceRequest(voice_id="espeak-ng-pt-br"), metadata=AUTH)
    assert_error(caught.value, grpc.StatusCode.FAILED_PRECONDITION, "BUILTIN_VOICE_NOT_DELETABLE")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.DeleteVoice(pb.DeleteVoiceRequest(voice_id="voice-0123456789abcdef"), metadata=AUTH)
    assert_error(caught.value, grpc.StatusCode.NOT_FOUND, "VOICE_NOT_FOUND")


@pytest.mark.parametrize(
    ("fields", "code", "reason"),
    [
        ({"text": "   "}, grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_TEXT"),
        ({"text": "a" * 1501}, grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG"),
        ({"text": "Olá", "voice": "nobody"}, grpc.StatusCode.NOT_FOUND, "VOICE_NOT_FOUND"),
        ({"text": "Bonjour", "language": "fr"}, grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_LANGUAGE"),
        ({"text": "Olá", "audio_format": 42}, grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_AUDIO_FORMAT"),
        ({"text": "Olá", "voice": "en_US-joe-medium"}, grpc.StatusCode.INVALID_ARGUMENT,
         "VOICE_LANGUAGE_MISMATCH"),
        ({"text": "Olá", "speaking_rate": 9.0}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SPEAKING_RATE"),
        ({"text": "Olá", "sample_rate_hertz": 4000}, grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SAMPLE_RATE"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_with_a_reason(
    stub: Stub, fields: dict[str, object], code: grpc.StatusCode, reason: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Synthesize(pb.SynthesizeRequest(**fields), metadata=AUTH)  # type: ignore[arg-type]
    assert_error(caught.value, code, reason)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        stream = stub.StreamingSynthesize(pb.StreamingSynthesizeRequest(**fields), metadata=AUTH)  # type: ignore[arg-type]
        async for _ in stream:
            pass
    assert_error(caught.value, code, reason)


async def test_streaming_refuses_containers_it_cannot_stream(stub: Stub) -> None:
    request = pb.StreamingSynthesizeRequest(text="Olá", audio_format=audio_pb2.AUDIO_FORMAT_MP3)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamingSynthesize(request, metadata=AUTH):
            pass
    assert_error(caught.value, grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_AUDIO_FORMAT")


async def test_metrics_count_audio_and_first_chunk(stub: Stub) -> None:
    def value(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    audio_before = value("aistack_tts_audio_seconds_total", {"engine": "espeak-ng", "language": "pt"})
    first_before = value("aistack_tts_time_to_first_chunk_seconds_count", {"engine": "espeak-ng"})
    reply = await stub.Synthesize(pb.SynthesizeRequest(text="Um teste.", language="pt"), metadata=AUTH)
    seconds = reply.audio_duration.ToNanoseconds() / 1e9
    audio_after = value("aistack_tts_audio_seconds_total", {"engine": "espeak-ng", "language": "pt"})
    assert audio_after - audio_before == pytest.approx(seconds, abs=1e-3)
    assert value("aistack_tts_time_to_first_chunk_seconds_count", {"engine": "espeak-ng"}) == first_before + 1
    assert value("aistack_tts_synthesis_seconds_count", {"engine": "espeak-ng"}) > 0


async def test_calls_without_a_token_are_refused(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListVoices(pb.ListVoicesRequest())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_cancelled_stream_frees_its_slot(stub: Stub) -> None:
    text = " ".join(f"Esta é a frase número {n}." for n in range(1, 40))
    for _ in range(3):  # more than TTS_MAX_CONCURRENT (2): a leaked slot would block the call below
        call = stub.StreamingSynthesize(
            pb.StreamingSynthesizeRequest(text=text, language="pt"), metadata=AUTH
        )
        first = await call.read()
        assert isinstance(first, pb.StreamingSynthesizeResponse) and first.text == "Esta é a frase número um."
        call.cancel()
    reply = await stub.Synthesize(
        pb.SynthesizeRequest(text="Ainda respondo.", language="pt"), metadata=AUTH, timeout=30
    )
    assert reply.audio_duration.ToNanoseconds() > 0
