"""Bad streams, the session limit and the idle timeout: clear statuses, other sessions unaffected."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack.common.v1 import audio_pb2
from aistack_kit.errors import error_info_of
from asr_testkit import espeak_wav, needs_espeak, wav_samples, wer
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stream_testkit import MAX_SESSIONS, chunks, config, run_stream, seconds

pytestmark = [pytest.mark.slow, needs_espeak]

SENTENCES = [
    "Please send the invoice to my office.",
    "I would like to cancel my subscription today.",
    "My flight leaves early in the evening.",
    "Our team won the game last night.",
    "Could you repeat the account number please.",
]


def audio_of(text: str) -> tuple[bytes, int]:
    samples, rate = wav_samples(espeak_wav(text))
    return samples.tobytes(), rate


async def expect_error(
    stub: pb_grpc.AsrServiceStub, requests: list[pb.StreamingRecognizeRequest]
) -> tuple[grpc.StatusCode, str, grpc.aio.AioRpcError]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_stream(stub, requests)
    info = error_info_of(caught.value)
    assert info is not None, caught.value
    return caught.value.code(), info.reason, caught.value


@pytest.mark.parametrize(
    ("requests", "reason"),
    [
        ([pb.StreamingRecognizeRequest(audio_content=b"\0\0" * 160)], "CONFIG_REQUIRED"),
        ([config(), config()], "CONFIG_ALREADY_SET"),
        (
            [config(), pb.StreamingRecognizeRequest(audio_content=b"\0\0" * 1600), config()],
            "CONFIG_ALREADY_SET",
        ),
        ([config(encoding=audio_pb2.AUDIO_ENCODING_UNSPECIFIED)], "ENCODING_REQUIRED"),
        ([config(rate=0)], "BAD_SAMPLE_RATE"),
        ([config(rate=1_000_000)], "BAD_SAMPLE_RATE"),
        ([config(batch_window=12.0, max_batch_window=6.0)], "BAD_BATCH_WINDOW"),
        ([config(language="pt")], "UNSUPPORTED_LANGUAGE"),
    ],
    ids=[
        "audio-first",
        "config-twice",
        "config-later",
        "no-encoding",
        "no-rate",
        "bad-rate",
        "windows",
        "language",
    ],
)
async def test_bad_streams_are_invalid_argument(
    stub: pb_grpc.AsrServiceStub, requests: list[pb.StreamingRecognizeRequest], reason: str
) -> None:
    code, got, _ = await expect_error(stub, requests)
    assert (code, got) == (grpc.StatusCode.INVALID_ARGUMENT, reason)


async def test_unknown_model_is_not_found(stub: pb_grpc.AsrServiceStub) -> None:
    code, reason, error = await expect_error(stub, [config(model="whisper/nonexistent")])
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND")
    assert "whisper/base" in (error.details() or "")


async def test_session_limit_refuses_with_retry_info_and_others_finish(stub: pb_grpc.AsrServiceStub) -> None:
    release = asyncio.Event()
    held = []
    for text in SENTENCES[:MAX_SESSIONS]:
        audio, rate = audio_of(text)
        parts = chunks(audio, rate // 5 * 2)
        # Each session opens and sends a little audio, then waits until the extra session was refused.
        held.append(
            asyncio.create_task(run_stream(stub, [config(rate=rate), *parts], hold=release, hold_after=3))
        )
    await asyncio.sleep(1.5)

    extra_audio, rate = audio_of("This session is one too many.")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await run_stream(stub, [config(rate=rate), *chunks(extra_audio, 8000)])
    finally:
        release.set()  # a failure here must not leave the slots taken for the other tests
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info_of(caught.value)
    assert info is not None and info.reason == "TOO_MANY_SESSIONS"
    assert info.metadata["max_sessions"] == str(MAX_SESSIONS)
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    delay = error_details_pb2.RetryInfo()
    retry[0].Unpack(delay)
    assert delay.retry_delay.seconds == 3

    release.set()
    streams = await asyncio.gather(*held)
    for text, stream in zip(SENTENCES, streams, strict=True):
        assert stream.kinds()[-1] == "session_ended"
        assert wer(text, stream.text) <= 0.5, (text, stream.text)

    # The slots are free again.
    audio, rate = audio_of(SENTENCES[0])
    again = await run_stream(stub, [config(rate=rate), *chunks(audio, 8000)])
    assert wer(SENTENCES[0], again.text) <= 0.3


async def test_idle_session_ends_with_idle_timeout(stub: pb_grpc.AsrServiceStub) -> None:
    samples, rate = wav_samples(espeak_wav(SENTENCES[1]))
    silence = np.zeros(rate // 2, dtype="<i2")
    audio = np.concatenate([samples, silence]).tobytes()

    # The client goes quiet without half-closing.
    stream = await run_stream(stub, [config(rate=rate), *chunks(audio, 8000)], close=False)
    events = stream.events
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[0] == "session_started"
    assert kinds[-1] == "session_ended"
    assert "final_summary" not in kinds
    ended = events[-1].session_ended
    assert ended.reason == pb.SESSION_END_REASON_IDLE_TIMEOUT
    assert abs(seconds(ended.audio_duration) - len(audio) / 2 / rate) < 0.05
    # The audio received before the silence was still transcribed.
    text = " ".join(e.batch_processed.text for e in events if e.WhichOneof("event") == "batch_processed")
    assert wer(SENTENCES[1], text) <= 0.3, text
