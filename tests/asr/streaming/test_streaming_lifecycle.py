"""How sessions end besides a client's half-close: the longest session, and the replica shutting down.

These drive a second StreamingRecognizer (own limits) directly over the server's real model registry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import cast

import grpc
import numpy as np
import pytest
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_asr.app import AsrCapability
from aistack_asr.config import AsrSettings
from aistack_asr.streaming import StreamingRecognizer, StreamingSettings
from aistack_kit.config import Env
from aistack_kit.server import RunningServer
from aistack_kit.testing import start_test_server
from asr_testkit import espeak_wav, needs_espeak, wav_samples, wer
from stream_testkit import chunks, config, run_stream, seconds

pytestmark = [pytest.mark.slow, needs_espeak]

TEXT = "Please call me back tomorrow morning about the invoice."
REPO = Path(__file__).resolve().parents[3]


async def collect(
    recognizer: StreamingRecognizer, requests: AsyncIterator[pb.StreamingRecognizeRequest]
) -> list[pb.StreamingRecognizeResponse]:
    return [event async for event in recognizer.recognize(requests, None)]


def kinds(events: list[pb.StreamingRecognizeResponse]) -> list[str]:
    return [str(e.WhichOneof("event")) for e in events]


async def test_session_ends_at_max_duration(server: RunningServer) -> None:
    registry = server.capability.registry  # type: ignore[attr-defined]
    recognizer = StreamingRecognizer(registry, StreamingSettings(max_session_seconds=3.0))
    await recognizer.start()
    samples, rate = wav_samples(espeak_wav(TEXT))
    audio = np.concatenate([samples, samples]).astype("<i2").tobytes()  # about 6 s

    async def requests() -> AsyncIterator[pb.StreamingRecognizeRequest]:
        yield config(rate=rate, batch_window=2.0, max_batch_window=4.0)
        for offset in range(0, len(audio), 4410):
            yield pb.StreamingRecognizeRequest(audio_content=audio[offset : offset + 4410])
            await asyncio.sleep(0)

    try:
        events = await collect(recognizer, requests())
    finally:
        await recognizer.close()
    assert kinds(events)[0] == "session_started"
    assert kinds(events)[-1] == "session_ended"
    assert "final_summary" not in kinds(events)
    ended = events[-1].session_ended
    assert ended.reason == pb.SESSION_END_REASON_MAX_DURATION
    assert 3.0 <= seconds(ended.audio_duration) < 3.3
    text = " ".join(e.batch_processed.text for e in events if e.WhichOneof("event") == "batch_processed")
    assert text.strip()
    assert wer(TEXT, text) < 0.6  # the first ~3 s of the sentence


async def test_shutdown_ends_open_sessions(server: RunningServer) -> None:
    registry = server.capability.registry  # type: ignore[attr-defined]
    recognizer = StreamingRecognizer(registry, StreamingSettings())
    await recognizer.start()
    samples, rate = wav_samples(espeak_wav(TEXT))
    forever = asyncio.Event()

    async def requests() -> AsyncIterator[pb.StreamingRecognizeRequest]:
        yield config(rate=rate)
        yield pb.StreamingRecognizeRequest(audio_content=samples.tobytes())
        await forever.wait()  # a live caller that is still talking

    sessions = [asyncio.create_task(collect(recognizer, requests())) for _ in range(2)]
    await asyncio.sleep(1.0)
    assert recognizer.active_sessions == 2
    await recognizer.close()
    for events in await asyncio.wait_for(asyncio.gather(*sessions), 10):
        assert kinds(events)[0] == "session_started"
        assert kinds(events)[-1] == "session_ended"
        assert events[-1].session_ended.reason == pb.SESSION_END_REASON_SERVER_SHUTDOWN
    assert recognizer.active_sessions == 0


async def test_a_slow_reader_does_not_stall_other_sessions(server: RunningServer) -> None:
    registry = server.capability.registry  # type: ignore[attr-defined]
    # A tiny event queue, and short windows so the stalled session has more events than fit in it.
    recognizer = StreamingRecognizer(registry, StreamingSettings(output_queue_size=4))
    await recognizer.start()
    samples, rate = wav_samples(espeak_wav(TEXT))
    gap = np.zeros(rate // 2, dtype="<i2")
    long_audio = np.concatenate([samples, gap] * 4).astype("<i2").tobytes()

    async def requests(audio: bytes) -> AsyncIterator[pb.StreamingRecognizeRequest]:
        yield config(rate=rate, batch_window=1.0, max_batch_window=2.0, interim=True)
        for offset in range(0, len(audio), 4410):
            yield pb.StreamingRecognizeRequest(audio_content=audio[offset : offset + 4410])
            await asyncio.sleep(0)

    stalled = cast(
        AsyncGenerator[pb.StreamingRecognizeResponse, None], recognizer.recognize(requests(long_audio), None)
    )
    try:
        first = await anext(stalled)  # session_started, then this reader stops reading
        assert first.WhichOneof("event") == "session_started"
        await asyncio.sleep(1.0)
        started = asyncio.get_running_loop().time()
        events = await asyncio.wait_for(collect(recognizer, requests(samples.tobytes())), 30)
        assert kinds(events)[-1] == "session_ended"
        assert wer(TEXT, " ".join(e.batch_processed.text for e in events if e.batch_processed.text)) <= 0.3
        assert asyncio.get_running_loop().time() - started < 15
        assert recognizer.active_sessions == 1  # the stalled one is still open, waiting for its reader
        # Its reader comes back: nothing was lost while it waited.
        rest = [event async for event in stalled]
        texts = [e.batch_processed.text for e in rest if e.WhichOneof("event") == "batch_processed"]
        assert len(texts) >= 4
        assert kinds(rest)[-2:] == ["final_summary", "session_ended"]
    finally:
        await stalled.aclose()
        await recognizer.close()


async def test_server_stop_ends_open_grpc_sessions_with_server_shutdown() -> None:
    # Its own replica (the package server stays up): stopping it must reach live callers as a last
    # SESSION_ENDED event, not as a cancelled call, because the kit drains the capability first.
    env = {
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_PRELOAD_MODELS": json.dumps(["whisper/tiny.en"]),
        "AISTACK_ASR_DEFAULT_MODEL": "whisper/tiny.en",
    }
    replica = await start_test_server(AsrCapability(AsrSettings.from_env(Env(env))), "asr")
    samples, rate = wav_samples(espeak_wav(TEXT))
    hold = asyncio.Event()  # never set: the caller is still talking when the replica stops
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            stub = pb_grpc.AsrServiceStub(channel)
            requests = [config(rate=rate), *chunks(samples.astype("<i2").tobytes(), 8820)]
            session = asyncio.create_task(
                run_stream(stub, requests, hold=hold, hold_after=len(requests), close=False)
            )
            for _ in range(100):
                if replica.capability.streaming.active_sessions:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.1)
            await replica.stop()
            stream = await asyncio.wait_for(session, 30)
    finally:
        await replica.stop()
    assert stream.kinds()[0] == "session_started"
    assert stream.kinds()[-1] == "session_ended"
    assert stream.events[-1].session_ended.reason == pb.SESSION_END_REASON_SERVER_SHUTDOWN
