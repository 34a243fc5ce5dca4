"""Unary recognition end to end: a real server on port 0, real Whisper weights, speech made here."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import pytest_asyncio
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack.common.v1 import audio_pb2
from aistack_asr.app import AsrCapability
from aistack_asr.config import AsrSettings
from aistack_kit.config import Env
from aistack_kit.errors import error_info_of
from aistack_kit.server import RunningServer
from aistack_kit.testing import auth_metadata, start_test_server
from asr_testkit import (
    espeak_wav,
    ffmpeg_convert,
    make_wav,
    needs_espeak,
    needs_ffmpeg,
    needs_piper,
    piper_wav,
    run_asr_cli,
    wav_samples,
    wer,
)
from google.api import httpbody_pb2
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from prometheus_client import REGISTRY

pytestmark = [pytest.mark.slow, needs_espeak, needs_ffmpeg]

LINEAR16 = audio_pb2.AUDIO_ENCODING_LINEAR16
REPO = Path(__file__).resolve().parents[2]
MISSING_MEDIUM = "/nonexistent/models/whisper/medium"
MAX_UPLOAD = 4 * 1024 * 1024
MAX_SECONDS = 200
MAX_PENDING = 2

EN_PIPER = "Please check the balance of my savings account before Friday."
EN_ESPEAK = "Please call me back tomorrow morning about the invoice."
PT_ESPEAK = "Bom dia, eu gostaria de falar sobre a minha conta de telefone."


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server() -> AsyncIterator[RunningServer]:
    settings = AsrSettings.from_env(
        Env(
            {
                "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
                # A production-style entry whose weights are not on this machine.
                "AISTACK_ASR_MODELS": json.dumps({"whisper/medium": MISSING_MEDIUM}),
                "AISTACK_ASR_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
                "AISTACK_ASR_MAX_AUDIO_SECONDS": str(MAX_SECONDS),
                "AISTACK_ASR_MAX_PENDING_REQUESTS": str(MAX_PENDING),
            }
        )
    )
    running = await start_test_server(AsrCapability(settings), "asr")
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def stub(server: RunningServer) -> AsyncIterator[pb_grpc.AsrServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.AsrServiceStub(channel)


async def recognize(
    stub: pb_grpc.AsrServiceAsyncStub, audio: bytes, **config: object
) -> pb.RecognizeResponse:
    request = pb.RecognizeRequest(audio=audio, config=pb.RecognitionConfig(**config))  # type: ignore[arg-type]
    response: pb.RecognizeResponse = await stub.Recognize(request, metadata=auth_metadata(), timeout=120)
    return response


def seconds(value: duration_pb2.Duration) -> float:
    return value.ToNanoseconds() / 1e9


def upload(content_type: str, data: bytes) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(content_type=content_type, data=data)


def multipart(files: dict[str, tuple[str, bytes, str]], fields: dict[str, str]) -> tuple[str, bytes]:
    """The body and content type an HTTP client builds for `curl -F` style uploads (httpx's encoder)."""
    request = httpx.Request("POST", "http://asr/api/v1/asr", files=files, data=fields)
    return request.headers["content-type"], request.read()


# -- accuracy ---------------------------------------------------------------------------------------


@needs_piper
async def test_english_piper_meets_wer_bound_with_detection_and_word_timings(
    stub: pb_grpc.AsrServiceAsyncStub,
) -> None:
    wav = piper_wav(EN_PIPER)
    samples, rate = wav_samples(wav)
    response = await recognize(stub, wav, enable_word_time_offsets=True)

    assert wer(EN_PIPER, response.text) <= 0.10, response.text
    assert response.model == "whisper/base" and not response.model_fallback_used
    # No language given: detected and reported with its probability.
    assert response.language == "en" and response.language_probability > 0.5
    duration = samples.size / rate
    assert abs(seconds(response.audio_duration) - duration) < 0.05
    assert seconds(response.processing_duration) > 0
    words = [w for s in response.segments for w in s.words]
    assert len(words) >= len(EN_PIPER.split()) - 1
    previous_end = 0.0
    for word in words:
        start, end = seconds(word.start_offset), seconds(word.end_offset)
        assert previous_end - 1e-6 <= start <= end <= duration + 1e-6, (word.word, start, end)
        assert 0.0 < word.probability <= 1.0
        previous_end = end
    for segment in response.segments:
        assert segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1 and segment.compression_ratio > 0


async def test_english_espeak_meets_wer_bound(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    response = await recognize(stub, espeak_wav(EN_ESPEAK), language="en")
    # Robotic formant speech: base makes a slip or two; a broken pipeline is near 1.0.
    assert wer(EN_ESPEAK, response.text) <= 0.25, response.text
    assert response.language == "en" and response.language_probability == 1.0


async def test_portuguese_with_language_meets_wer_bound(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    response = await recognize(stub, espeak_wav(PT_ESPEAK, "pt-br"), language="pt-BR")
    assert wer(PT_ESPEAK, response.text) <= 0.25, response.text
    assert response.language == "pt"


# -- inputs -----------------------------------------------------------------------------------------


def _speech_for_formats() -> tuple[str, bytes]:
    from asr_testkit import piper_available

    return (EN_PIPER, piper_wav(EN_PIPER)) if piper_available() else (EN_ESPEAK, espeak_wav(EN_ESPEAK))


@pytest.mark.parametrize(
    ("suffix", "args"),
    [
        (".mp3", ()),
        (".ogg", ("-c:a", "libopus")),
        (".flac", ()),
        (".m4a", ()),
        # Telephony: 8 kHz G.711 mu-law in a WAV container.
        (".wav", ("-ar", "8000", "-ac", "1", "-c:a", "pcm_mulaw")),
    ],
    ids=["mp3", "ogg-opus", "flac", "m4a", "wav-8k-mulaw"],
)
async def test_container_formats(
    stub: pb_grpc.AsrServiceAsyncStub, suffix: str, args: tuple[str, ...]
) -> None:
    text, wav = _speech_for_formats()
    response = await recognize(stub, ffmpeg_convert(wav, suffix, *args), language="en")
    assert wer(text, response.text) <= 0.2, response.text
    assert abs(seconds(response.audio_duration) - seconds_of(wav)) < 0.2


def seconds_of(wav: bytes) -> float:
    samples, rate = wav_samples(wav)
    return samples.size / rate


@pytest.mark.parametrize(
    ("encoding", "fmt", "rate"),
    [
        (audio_pb2.AUDIO_ENCODING_LINEAR16, "s16le", 16000),
        (audio_pb2.AUDIO_ENCODING_LINEAR16, "s16le", 8000),
        (audio_pb2.AUDIO_ENCODING_MULAW, "mulaw", 8000),
        (audio_pb2.AUDIO_ENCODING_ALAW, "alaw", 8000),
    ],
    ids=["linear16-16k", "linear16-8k", "mulaw-8k", "alaw-8k"],
)
async def test_headerless_audio_with_encoding_and_rate(
    stub: pb_grpc.AsrServiceAsyncStub, encoding: int, fmt: str, rate: int
) -> None:
    text, wav = _speech_for_formats()
    raw = ffmpeg_convert(wav, ".raw", "-f", fmt, "-ar", str(rate), "-ac", "1")
    response = await recognize(stub, raw, encoding=encoding, sample_rate_hertz=rate, language="en")
    assert wer(text, response.text) <= 0.2, response.text


async def test_multipart_upload_with_options(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    content_type, body = multipart(
        {"file": ("call.wav", espeak_wav(PT_ESPEAK, "pt-br"), "audio/wav")},
        {"language": "pt", "model": "whisper/base", "word_timestamps": "true", "beam_size": "2"},
    )
    response = await stub.RecognizeUpload(upload(content_type, body), metadata=auth_metadata(), timeout=120)
    assert wer(PT_ESPEAK, response.text) <= 0.25, response.text
    assert response.language == "pt" and response.model == "whisper/base"
    assert any(s.words for s in response.segments)


async def test_json_body_with_base64_audio(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    body = json.dumps(
        {
            "audio": base64.b64encode(espeak_wav(EN_ESPEAK)).decode(),
            "config": {"language": "en", "model": "tiny.en", "enableWordTimeOffsets": False},
        }
    ).encode()
    response = await stub.RecognizeUpload(
        upload("application/json", body), metadata=auth_metadata(), timeout=120
    )
    # The alias resolves to the canonical name, loaded on first use.
    assert response.model == "whisper/tiny.en"
    assert wer(EN_ESPEAK, response.text) <= 0.25, response.text


async def test_raw_audio_body(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    text, wav = _speech_for_formats()
    response = await stub.RecognizeUpload(
        upload("audio/mpeg", ffmpeg_convert(wav, ".mp3")), metadata=auth_metadata(), timeout=120
    )
    # No options travel with a raw body: defaults apply and the language is detected.
    assert wer(text, response.text) <= 0.2, response.text
    assert response.language == "en" and response.model == "whisper/base"


# -- hallucination guards ---------------------------------------------------------------------------


def _noise(seconds: float, amplitude: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * 16000)) * amplitude).astype(np.float32)


async def test_silence_and_noise_give_no_text(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    audio = np.concatenate([np.zeros(3 * 16000, np.float32), _noise(3, 0.05, 1), _noise(2, 0.2, 2)])
    response = await recognize(stub, make_wav(audio, 16000))
    assert response.text == "" and not response.segments
    assert abs(seconds(response.audio_duration) - 8.0) < 0.01


async def test_without_vad_the_thresholds_still_drop_invented_text(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    # Without VAD, base decodes this noise into a repetition loop ("1-0-0-0-..."); the compression-ratio
    # guard must drop it. Greedy only: the sampling fallbacks on noise cost tens of seconds on 2 cores.
    audio = np.concatenate([np.zeros(3 * 16000, np.float32), _noise(3, 0.05, 1), _noise(2, 0.2, 2)])
    response = await recognize(stub, make_wav(audio, 16000), enable_vad_filter=False, temperatures=[0.0])
    assert len(response.text.split()) <= 1, response.text


async def test_speech_then_noise_adds_no_invented_words(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    speech, rate = wav_samples(espeak_wav(PT_ESPEAK, "pt-br"))
    speech16 = np.interp(
        np.arange(0, speech.size, rate / 16000), np.arange(speech.size), speech.astype(np.float32) / 32768
    ).astype(np.float32)
    audio = np.concatenate([speech16, np.zeros(16000 * 3, np.float32), _noise(5, 0.05, 3)])
    response = await recognize(stub, make_wav(audio, 16000), language="pt")
    assert wer(PT_ESPEAK, response.text) <= 0.25, response.text
    assert all(seconds(s.start_offset) < speech16.size / 16000 for s in response.segments)


async def test_utterances_across_a_pause_keep_their_own_times(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    # Two utterances 3 s apart: two VAD regions packed into one window, times mapped back to the file.
    first, rate = wav_samples(espeak_wav(EN_ESPEAK))
    second, _ = wav_samples(espeak_wav(PT_ESPEAK, "pt-br"))
    pause = 3.0
    audio = np.concatenate([first, np.zeros(int(pause * rate), "<i2"), second]).astype(np.float32) / 32768
    response = await recognize(stub, make_wav(audio, rate), language="pt", enable_word_time_offsets=True)
    second_start = first.size / rate + pause
    late = [w for s in response.segments for w in s.words if seconds(w.start_offset) >= second_start - 0.5]
    assert wer(PT_ESPEAK, " ".join(w.word for w in late)) <= 0.25, response.text
    early = [
        w for s in response.segments for w in s.words if seconds(w.end_offset) <= first.size / rate + 0.5
    ]
    assert len(early) >= 5, response.text
    assert not [
        w for s in response.segments for w in s.words
        if first.size / rate + 0.5 < seconds(w.start_offset) < second_start - 0.5
    ], "words placed inside the pause"  # fmt: skip


# -- errors -----------------------------------------------------------------------------------------


def _bad_requests() -> list[tuple[str, pb.RecognizeRequest, grpc.StatusCode, str]]:
    wav = espeak_wav("hello")
    pcm = np.zeros(16000, "<i2").tobytes()
    return [
        (
            "corrupt",
            pb.RecognizeRequest(audio=b"RIFF" + b"\x00garbage" * 500),
            grpc.StatusCode.INVALID_ARGUMENT,
            "AUDIO_DECODE_FAILED",
        ),
        ("empty", pb.RecognizeRequest(audio=b""), grpc.StatusCode.INVALID_ARGUMENT, "EMPTY_AUDIO"),
        (
            "declared rate differs from the file",
            pb.RecognizeRequest(audio=wav, config=pb.RecognitionConfig(sample_rate_hertz=8000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "SAMPLE_RATE_MISMATCH",
        ),
        (
            "impossible rate for raw PCM",
            pb.RecognizeRequest(
                audio=pcm,
                config=pb.RecognitionConfig(encoding=LINEAR16, sample_rate_hertz=100),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_SAMPLE_RATE",
        ),
        (
            "odd byte count for LINEAR16",
            pb.RecognizeRequest(
                audio=pcm[:-1],
                config=pb.RecognitionConfig(encoding=LINEAR16, sample_rate_hertz=16000),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_AUDIO_LENGTH",
        ),
        (
            "too long",
            pb.RecognizeRequest(
                audio=np.zeros(8000 * (MAX_SECONDS + 5), "<i2").tobytes(),
                config=pb.RecognitionConfig(encoding=LINEAR16, sample_rate_hertz=8000),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "AUDIO_TOO_LONG",
        ),
        (
            "too large",
            pb.RecognizeRequest(audio=b"\x00" * (MAX_UPLOAD + 1)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UPLOAD_TOO_LARGE",
        ),
        (
            "unknown language",
            pb.RecognizeRequest(audio=wav, config=pb.RecognitionConfig(language="klingon")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "UNSUPPORTED_LANGUAGE",
        ),
        (
            "Portuguese on an English-only model",
            pb.RecognizeRequest(audio=wav, config=pb.RecognitionConfig(language="pt", model="tiny.en")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "LANGUAGE_NOT_SUPPORTED_BY_MODEL",
        ),
        (
            "beam too wide",
            pb.RecognizeRequest(audio=wav, config=pb.RecognitionConfig(beam_size=1000)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_BEAM_SIZE",
        ),
    ]


async def test_bad_requests_get_clear_errors_and_the_server_keeps_serving(
    stub: pb_grpc.AsrServiceAsyncStub,
) -> None:
    for name, request, code, reason in _bad_requests():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Recognize(request, metadata=auth_metadata(), timeout=60)
        info = error_info_of(caught.value)
        assert caught.value.code() == code, (name, caught.value.details())
        assert info is not None and info.reason == reason and info.domain == "asr.aistack", (name, info)
    response = await recognize(stub, espeak_wav(EN_ESPEAK), language="en")
    assert wer(EN_ESPEAK, response.text) <= 0.25


def _bad_uploads() -> list[tuple[str, httpbody_pb2.HttpBody, str]]:
    wav = espeak_wav("hello")
    content_type, good = multipart({"file": ("a.wav", wav, "audio/wav")}, {"language": "en"})
    unknown_field = multipart({"file": ("a.wav", wav, "audio/wav")}, {"langauge": "en"})
    no_file = (
        "multipart/form-data; boundary=b0",
        b'--b0\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n--b0--\r\n',
    )
    bad_bool = multipart({"file": ("a.wav", wav, "audio/wav")}, {"word_timestamps": "maybe"})
    return [
        ("no boundary", upload("multipart/form-data", good), "MULTIPART_NO_BOUNDARY"),
        ("truncated", upload(content_type, good[: len(good) // 2]), "MULTIPART_TRUNCATED"),
        ("unknown field", upload(*unknown_field), "UNKNOWN_FORM_FIELD"),
        ("no file", upload(*no_file), "MULTIPART_NO_FILE"),
        ("bad boolean", upload(*bad_bool), "BAD_FORM_FIELD"),
        ("bad JSON", upload("application/json", b'{"audio": "not base64!!"}'), "INVALID_JSON"),
        ("unknown JSON field", upload("application/json", b'{"sound": ""}'), "INVALID_JSON"),
        ("content type", upload("text/html", b"<html></html>"), "UNSUPPORTED_CONTENT_TYPE"),
        ("oversized body", upload("audio/wav", b"\x00" * (MAX_UPLOAD + 1)), "UPLOAD_TOO_LARGE"),
        ("corrupt raw audio", upload("audio/wav", b"RIFF0000WAVEfmt nonsense"), "AUDIO_DECODE_FAILED"),
        ("empty raw audio", upload("audio/wav", b""), "EMPTY_AUDIO"),
    ]


async def test_bad_uploads_get_clear_errors(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    for name, body, reason in _bad_uploads():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecognizeUpload(body, metadata=auth_metadata(), timeout=60)
        info = error_info_of(caught.value)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, caught.value.details())
        assert info is not None and info.reason == reason, (name, info)


async def test_unknown_model_is_not_found_listing_available(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize(stub, espeak_wav("hello"), model="whisper/large-v9")
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert info is not None and info.reason == "MODEL_NOT_FOUND"
    assert info.metadata["available"].split(",")[0] == "whisper/base"
    assert "whisper/tiny.en" in info.metadata["available"].split(",")
    assert "whisper/base" in str(caught.value.details())


async def test_configured_but_missing_model_names_its_path_and_can_fall_back(
    stub: pb_grpc.AsrServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize(stub, espeak_wav("hello"), model="medium")
    info = error_info_of(caught.value)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert info is not None and info.reason == "MODEL_NOT_INSTALLED"
    assert info.metadata["path"] == MISSING_MEDIUM and MISSING_MEDIUM in str(caught.value.details())

    response = await recognize(stub, espeak_wav(EN_ESPEAK), model="medium", allow_model_fallback=True)
    assert response.model == "whisper/tiny.en" and response.model_fallback_used
    assert wer(EN_ESPEAK, response.text) <= 0.3, response.text


async def test_overload_is_resource_exhausted_with_a_retry_delay(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    wav = espeak_wav(EN_ESPEAK)
    results = await asyncio.gather(
        *(recognize(stub, wav, language="en") for _ in range(MAX_PENDING + 3)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    served = [r for r in results if isinstance(r, pb.RecognizeResponse)]
    assert len(served) >= MAX_PENDING and len(refused) >= 1 and len(served) + len(refused) == len(results)
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info_of(error)
        assert info is not None and info.reason == "TOO_MANY_REQUESTS"
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None
        retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
        assert len(retry) == 1
    # Once the burst is over, requests are served again.
    assert wer(EN_ESPEAK, (await recognize(stub, wav, language="en")).text) <= 0.25


LONG_TALK = (
    "Good afternoon, thank you for calling customer support.",
    "My internet connection has been dropping every evening this week.",
    "Could you tell me the reference number of your last invoice?",
    "The technician will visit your address on Thursday morning.",
    "I would also like to change the payment date to the tenth.",
    "Your new plan includes twenty gigabytes of mobile data.",
    "Is there anything else I can help you with today?",
    "No, that is all, thank you very much for your help.",
)


async def test_a_cancelled_request_frees_the_worker(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    # Over two minutes of varied speech: tens of seconds of work for base on 2 cores.
    clips = [wav_samples(espeak_wav(sentence)) for sentence in LONG_TALK]
    rate = clips[0][1]
    pause = np.zeros(rate // 3, "<i2")
    talk = np.concatenate([part for _ in range(5) for samples, _ in clips for part in (samples, pause)])
    assert 120 < talk.size / rate < MAX_SECONDS
    opus = ffmpeg_convert(
        make_wav(talk.astype(np.float32) / 32768, rate), ".ogg", "-c:a", "libopus", "-b:a", "24k"
    )
    request = pb.RecognizeRequest(audio=opus, config=pb.RecognitionConfig(language="en"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Recognize(request, metadata=auth_metadata(), timeout=2.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # One worker: this request waits for the abandoned one unless that one stopped early.
    started = time.perf_counter()
    response = await recognize(stub, espeak_wav(EN_ESPEAK), language="en")
    waited = time.perf_counter() - started
    # Seen: about 5 s when the abandoned work stops, about 20 s when it runs on.
    assert waited < 12, f"the abandoned transcription kept the worker ({waited:.1f} s)"
    assert wer(EN_ESPEAK, response.text) <= 0.25


# -- models, auth, metrics --------------------------------------------------------------------------


async def test_list_models(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    response = await stub.ListModels(pb.ListModelsRequest(), metadata=auth_metadata())
    names = [m.name for m in response.models]
    assert names[0] == "whisper/base" and response.models[0].is_default and response.models[0].loaded
    assert "whisper/tiny.en" in names
    # Configured but not installed here: not offered.
    assert "whisper/medium" not in names
    tiny = next(m for m in response.models if m.name == "whisper/tiny.en")
    assert list(tiny.languages) == ["en"] and "tiny.en" in tiny.aliases
    assert {"pt", "en"} <= set(response.models[0].languages)
    assert response.models[0].device == "cpu" and response.models[0].compute_type.startswith("int8")
    assert response.fallback_model == "whisper/tiny.en"


async def test_calls_without_a_token_are_refused(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    for call in (
        stub.ListModels(pb.ListModelsRequest()),
        stub.Recognize(pb.RecognizeRequest(audio=espeak_wav("hello"))),
        stub.ListModels(pb.ListModelsRequest(), metadata=auth_metadata("wrong-token-0123456789")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info_of(caught.value)
        assert info is not None and info.reason == "INVALID_TOKEN"


async def test_metrics_count_audio_and_requests(stub: pb_grpc.AsrServiceAsyncStub) -> None:
    labels = {"model": "whisper/base", "mode": "unary"}

    def sample(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (sample("aistack_asr_requests_total"), sample("aistack_asr_audio_seconds_total"))
    wav = espeak_wav("hello")
    await recognize(stub, wav, language="en")
    assert sample("aistack_asr_requests_total") == before[0] + 1
    assert sample("aistack_asr_audio_seconds_total") == pytest.approx(before[1] + seconds_of(wav), abs=0.01)
    assert sample("aistack_asr_processing_seconds_count") >= 1
    assert sample("aistack_asr_real_time_factor_count") >= 1


# -- the CLI ----------------------------------------------------------------------------------------


async def test_cli_transcribes_a_file(server: RunningServer, tmp_path: Path) -> None:
    path = tmp_path / "call.ogg"
    path.write_bytes(ffmpeg_convert(espeak_wav(PT_ESPEAK, "pt-br"), ".ogg", "-c:a", "libopus"))
    code, out, err = await run_asr_cli(
        server.port, "transcribe", str(path), "--language", "pt", "--word-timestamps"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert wer(PT_ESPEAK, lines[0]) <= 0.25, out
    # One line per word: start, end, probability, word.
    assert len(lines) - 1 >= len(PT_ESPEAK.split()) - 2
    assert "whisper/base" in err and "language pt" in err

    code, out, err = await run_asr_cli(server.port, "transcribe", str(path), "--model", "whisper/huge")
    assert code == 1 and "NOT_FOUND [MODEL_NOT_FOUND]" in err and "whisper/base" in err


async def test_cli_lists_models(server: RunningServer) -> None:
    code, out, err = await run_asr_cli(server.port, "models")
    assert code == 0, err
    assert out.splitlines()[0].startswith("whisper/base") and "default" in out.splitlines()[0]
    assert "fallback: whisper/tiny.en" in out
