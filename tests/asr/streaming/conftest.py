"""A real ASR server (aistack_asr.app, real Whisper weights) and a streaming client for the tests."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest_asyncio
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack.common.v1 import audio_pb2
from aistack_asr.app import AsrCapability
from aistack_asr.config import AsrSettings
from aistack_kit.config import Env
from aistack_kit.server import RunningServer
from aistack_kit.testing import auth_metadata, start_test_server
from google.protobuf import duration_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/asr: the shared speech kit

REPO = Path(__file__).resolve().parents[3]
MAX_SESSIONS = 5
IDLE_TIMEOUT = 2.0


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def server() -> AsyncIterator[RunningServer]:
    env = {
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_PRELOAD_MODELS": json.dumps(["whisper/base", "whisper/tiny.en"]),
        "AISTACK_ASR_STREAM_MAX_SESSIONS": str(MAX_SESSIONS),
        "AISTACK_ASR_STREAM_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "AISTACK_ASR_STREAM_RETRY_AFTER_SECONDS": "3",
    }
    running = await start_test_server(AsrCapability(AsrSettings.from_env(Env(env))), "asr")
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stub(server: RunningServer) -> AsyncIterator[pb_grpc.AsrServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.AsrServiceStub(channel)


def seconds(value: duration_pb2.Duration) -> float:
    return value.ToNanoseconds() / 1e9


def config(
    *,
    model: str = "whisper/tiny.en",
    language: str = "en",
    rate: int = 16_000,
    batch_window: float | None = 3.0,
    max_batch_window: float | None = 8.0,
    interim: bool = False,
    words: bool = False,
    encoding: int = audio_pb2.AUDIO_ENCODING_LINEAR16,
) -> pb.StreamingRecognizeRequest:
    streaming = pb.StreamingRecognitionConfig(
        config=pb.RecognitionConfig(
            model=model,
            language=language,
            encoding=encoding,  # type: ignore[arg-type]
            sample_rate_hertz=rate,
            enable_word_time_offsets=words,
        ),
        interim_results=interim,
    )
    if batch_window is not None:
        streaming.batch_window.FromNanoseconds(int(batch_window * 1e9))
    if max_batch_window is not None:
        streaming.max_batch_window.FromNanoseconds(int(max_batch_window * 1e9))
    return pb.StreamingRecognizeRequest(streaming_config=streaming)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def chunks(data: bytes, size: int) -> list[pb.StreamingRecognizeRequest]:
    return [pb.StreamingRecognizeRequest(audio_content=data[i : i + size]) for i in range(0, len(data), size)]


@dataclass
class Stream:
    """The events of one session, in order."""

    events: list[pb.StreamingRecognizeResponse] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [str(e.WhichOneof("event")) for e in self.events]

    def of(self, kind: str) -> list[pb.StreamingRecognizeResponse]:
        return [e for e in self.events if e.WhichOneof("event") == kind]

    @property
    def windows(self) -> list[pb.BatchProcessed]:
        return [e.batch_processed for e in self.of("batch_processed")]

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.windows)


async def run_stream(
    stub: pb_grpc.AsrServiceStub,
    requests: Sequence[pb.StreamingRecognizeRequest],
    *,
    pause: float = 0.0,
    hold: asyncio.Event | None = None,
    hold_after: int = 0,
    close: bool = True,
) -> Stream:
    """Sends `requests` (sleeping `pause` between them; waiting for `hold` after `hold_after` of them),
    half-closes (unless `close` is False), and collects every event.

    Writes go through `call.write` on their own task, as a real client does: when the server ends the
    call early (an error, a limit) a pending write fails, and the server's status is what `read` raises.
    """
    call = stub.StreamingRecognize(metadata=auth_metadata(), timeout=180)

    async def send() -> None:
        try:
            for index, request in enumerate(requests):
                if hold is not None and index == hold_after:
                    await hold.wait()
                await call.write(request)
                if pause:
                    await asyncio.sleep(pause)
            if close:
                await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass  # the call is over; its status comes from the reading side

    writer = asyncio.create_task(send())
    stream = Stream()
    try:
        while (event := await call.read()) is not grpc.aio.EOF:
            stream.events.append(event)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return stream
