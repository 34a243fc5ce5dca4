"""Live recognition end to end: concurrent sessions through one batcher, windows, interim results."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_kit.server import RunningServer
from asr_testkit import espeak_wav, needs_espeak, piper_available, piper_wav, run_asr_cli, wav_samples, wer
from prometheus_client import REGISTRY
from stream_testkit import Stream, chunks, config, run_stream, seconds

pytestmark = [pytest.mark.slow, needs_espeak]

RATE = 22_050  # espeak-ng's and Piper's own rate: the server resamples the stream
EN = [
    (
        "Please call me back tomorrow morning about the invoice.",
        "My internet connection drops every evening after dinner.",
    ),
    (
        "I would like to cancel my subscription today.",
        "The package was delivered to the wrong address on Monday.",
    ),
    (
        "Thank you for waiting, an agent will be with you shortly.",
        "Your new credit card will arrive in five business days.",
    ),
]
PT = (
    "Bom dia, eu gostaria de falar sobre a minha conta de telefone.",
    "O valor da fatura veio muito alto este mês.",
)
# Slow espeak-ng Portuguese with gaps between words: the default rate is too fast for Whisper base.
PT_VOICE = "pt-br"


def speech(text: str, voice: str = "en-us", *, piper: bool = False) -> np.ndarray:
    if piper:
        samples, rate = wav_samples(piper_wav(text))
    else:
        samples, rate = wav_samples(espeak_wav(text, voice))
    assert rate == RATE
    return np.asarray(samples, dtype="<i2")


def two_sentences(first: np.ndarray, second: np.ndarray, gap: float = 1.0) -> tuple[bytes, float]:
    """Both sentences with `gap` seconds of silence between them; returns the bytes and the gap's start."""
    silence = np.zeros(int(gap * RATE), dtype="<i2")
    audio = np.concatenate([first, silence, second]).astype("<i2")
    return audio.tobytes(), first.size / RATE


def check_stream(stream: Stream) -> None:
    """Events in protocol order with monotonic, consistent offsets."""
    kinds = stream.kinds()
    assert kinds[0] == "session_started"
    assert kinds[-2:] == ["final_summary", "session_ended"]
    assert set(kinds[1:-2]) <= {"batch_processed", "interim_result"}
    assert stream.events[-1].session_ended.reason == pb.SESSION_END_REASON_CLIENT_CLOSED
    windows = stream.windows
    assert [w.batch_index for w in windows] == list(range(len(windows)))
    previous_end = 0.0
    for window in windows:
        start, end = seconds(window.start_offset), seconds(window.end_offset)
        assert previous_end - 1e-6 <= start < end
        previous_end = end
        assert window.text.strip()
        assert seconds(window.latency) > 0
        last = start
        for segment in window.segments:
            assert start - 1e-6 <= seconds(segment.start_offset) <= seconds(segment.end_offset) <= end + 1e-6
            assert seconds(segment.start_offset) >= last - 1e-6
            last = seconds(segment.start_offset)
    summary = stream.events[-2].final_summary
    assert summary.text == " ".join(w.text for w in windows)
    assert summary.batch_count == len(windows)
    assert [s.text for s in summary.segments] == [s.text for w in windows for s in w.segments]


def batches_of_two_or_more() -> float:
    count = REGISTRY.get_sample_value("aistack_asr_batch_size_count", {"model": "whisper/tiny.en"}) or 0.0
    single = (
        REGISTRY.get_sample_value("aistack_asr_batch_size_bucket", {"model": "whisper/tiny.en", "le": "1.0"})
        or 0.0
    )
    return count - single


async def test_concurrent_sessions_get_their_own_text(stub: pb_grpc.AsrServiceStub) -> None:
    sessions: list[tuple[str, bytes, float, pb.StreamingRecognizeRequest]] = []
    for first, second in EN:
        audio, _ = two_sentences(speech(first), speech(second))
        sessions.append((f"{first} {second}", audio, 0.0, config(rate=RATE)))
    if piper_available():
        first, second = (
            "Please check the balance of my savings account.",
            "I need it before Friday afternoon.",
        )
        audio, _ = two_sentences(speech(first, piper=True), speech(second, piper=True))
        sessions.append((f"{first} {second}", audio, 0.0, config(rate=RATE, words=True)))
    else:
        first, second = "The meeting has been moved to Thursday at noon.", "Please bring the signed contract."
        audio, _ = two_sentences(speech(first), speech(second))
        sessions.append((f"{first} {second}", audio, 0.0, config(rate=RATE, words=True)))
    batched_before = batches_of_two_or_more()

    # 100 ms chunks, all sessions at once: their windows meet in the tiny.en batcher.
    results = await asyncio.gather(
        *(
            run_stream(stub, [cfg, *chunks(audio, RATE // 10 * 2)], pause=0.005)
            for _, audio, _, cfg in sessions
        )
    )
    texts = [text for text, *_ in sessions]
    for index, (stream, text) in enumerate(zip(results, texts, strict=True)):
        check_stream(stream)
        assert len(stream.windows) >= 2, stream.kinds()
        assert not stream.of("interim_result")
        assert wer(text, stream.text) <= 0.25, (text, stream.text)
        for other_index, other in enumerate(texts):
            if other_index != index:
                assert wer(other, stream.text) > 0.7, (other, stream.text)
    words = [word for window in results[-1].windows for word in window.words]
    assert len(words) >= 8
    starts = [seconds(w.start_offset) for w in words]
    assert starts == sorted(starts)
    assert all(seconds(w.start_offset) <= seconds(w.end_offset) for w in words)
    assert batches_of_two_or_more() > batched_before, "windows of concurrent sessions were never batched"


async def test_portuguese_session_with_base(stub: pb_grpc.AsrServiceStub) -> None:
    audio, _ = two_sentences(speech(PT[0], PT_VOICE), speech(PT[1], PT_VOICE))
    stream = await run_stream(
        stub, [config(model="whisper/base", language="pt-BR", rate=RATE), *chunks(audio, 4410)]
    )
    check_stream(stream)
    assert stream.events[0].session_started.model == "whisper/base"
    assert {w.language for w in stream.windows} == {"pt"}
    assert wer(" ".join(PT), stream.text) <= 0.4, stream.text


async def test_window_is_cut_in_the_pause(stub: pb_grpc.AsrServiceStub) -> None:
    first, second = EN[0]
    a, b = speech(first), speech(second)
    audio, gap_start = two_sentences(a, b, gap=1.2)
    # batch_window 2.5 s, shorter than the first sentence: the window waits for the pause after it.
    assert gap_start > 2.5
    stream = await run_stream(
        stub, [config(rate=RATE, batch_window=2.5, max_batch_window=12.0), *chunks(audio, 3000)]
    )
    check_stream(stream)
    assert len(stream.windows) == 2, [w.text for w in stream.windows]
    cut = seconds(stream.windows[0].end_offset)
    # espeak-ng adds a little silence of its own around each sentence
    assert gap_start - 0.4 <= cut <= gap_start + 1.2 + 0.4, (cut, gap_start)
    assert wer(first, stream.windows[0].text) <= 0.3
    assert wer(second, stream.windows[1].text) <= 0.3


async def test_long_speech_without_pause_is_cut_by_max_window(stub: pb_grpc.AsrServiceStub) -> None:
    text = "the cat sat on the mat and the dog ran around the big red barn while the farmer sang a happy song"
    samples = speech(text)
    stream = await run_stream(
        stub, [config(rate=RATE, batch_window=2.0, max_batch_window=3.0), *chunks(samples.tobytes(), 8820)]
    )
    check_stream(stream)
    windows = stream.windows
    assert len(windows) >= 2
    for window in windows[:-1]:
        assert seconds(window.end_offset) - seconds(window.start_offset) <= 3.0 + 1e-6
    assert wer(text, stream.text) <= 0.35, stream.text


async def test_interim_results_only_when_asked(stub: pb_grpc.AsrServiceStub) -> None:
    first, second = EN[1]
    audio, _ = two_sentences(speech(first), speech(second))
    # Paced at about four times real time so the open window has something to show.
    stream = await run_stream(
        stub,
        [
            config(rate=RATE, batch_window=4.0, max_batch_window=8.0, interim=True),
            *chunks(audio, RATE // 5 * 2),
        ],
        pause=0.05,
    )
    check_stream(stream)
    interims = stream.of("interim_result")
    assert interims, stream.kinds()
    kinds = stream.kinds()
    for position, kind in enumerate(kinds):
        if kind != "interim_result":
            continue
        interim = stream.events[position].interim_result
        assert interim.text.strip()
        assert 0.0 <= interim.stability <= 1.0
        following = [
            e.batch_processed for e in stream.events[position:] if e.WhichOneof("event") == "batch_processed"
        ]
        assert following, "an interim result came after the last window"
        assert following[0].start_offset == interim.start_offset


async def test_cli_streams_a_file(
    stub: pb_grpc.AsrServiceStub, server: RunningServer, tmp_path: Path
) -> None:
    text = "Please call me back tomorrow morning about the invoice."
    path = tmp_path / "call.wav"
    path.write_bytes(espeak_wav(text))  # 22.05 kHz: the CLI converts it with ffmpeg
    code, out, err = await run_asr_cli(
        server.port,
        "stream",
        str(path),
        "--model",
        "whisper/tiny.en",
        "--language",
        "en",
        "--speed",
        "4",
        "--json",
    )
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "session_started" and kinds[-2:] == ["final_summary", "session_ended"], kinds
    assert len(events[0]["session_started"]["sessionId"]) == 32  # the CLI's fresh uuid per session
    assert wer(text, events[-2]["final_summary"]["text"]) <= 0.3


async def test_silence_and_noise_produce_no_text(stub: pb_grpc.AsrServiceStub) -> None:
    text = EN[2][0]
    rng = np.random.default_rng(7)

    def noise(seconds: float) -> np.ndarray:
        # Faint hiss, as an open line sounds between utterances.
        return (rng.normal(0, 0.003, int(seconds * RATE)) * 32767).astype("<i2")

    sentence = speech(text)
    audio = np.concatenate([noise(7.0), sentence, noise(7.0)]).astype("<i2")
    stream = await run_stream(
        stub, [config(rate=RATE, model="whisper/base"), *chunks(audio.tobytes(), RATE // 5 * 2)]
    )
    check_stream(stream)
    assert wer(text, stream.text) <= 0.3, stream.text
    speech_start, speech_end = 7.0, 7.0 + sentence.size / RATE
    for window in stream.windows:
        # Only the window holding the sentence has text: none is invented for the noise around it.
        assert seconds(window.start_offset) < speech_end and seconds(window.end_offset) > speech_start
        for segment in window.segments:
            assert speech_start - 1.0 <= seconds(segment.start_offset) <= speech_end + 1.0
