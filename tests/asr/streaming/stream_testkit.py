"""Streaming test helpers: session configs, PCM chunks, and a client that collects a session's events."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import grpc
import numpy as np
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack.common.v1 import audio_pb2
from aistack_kit.testing import auth_metadata
from google.protobuf import duration_pb2

MAX_SESSIONS = 5
IDLE_TIMEOUT = 2.0


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
    data: bytes = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return data


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
    metadata: Sequence[tuple[str, str]] = (),
) -> Stream:
    """Sends `requests` (sleeping `pause` between them; waiting for `hold` after `hold_after` of them),
    half-closes (unless `close` is False), and collects every event.

    Writes go through `call.write` on their own task, as a real client does, and audio waits for
    `session_started`: the server's status (an error, a limit) is then what `read` raises.
    """
    call = cast(
        "grpc.aio.StreamStreamCall[pb.StreamingRecognizeRequest, pb.StreamingRecognizeResponse]",
        stub.StreamingRecognize(metadata=(*auth_metadata(), *metadata), timeout=180),  # type: ignore[call-arg]
    )

    opened = asyncio.Event()

    async def send() -> None:
        try:
            for index, request in enumerate(requests):
                if index == 1:
                    # Audio only once the session is accepted: a refused open then reads as the server's
                    # status, not as a failed write racing it.
                    await opened.wait()
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
        while (event := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
            assert isinstance(event, pb.StreamingRecognizeResponse)
            stream.events.append(event)
            opened.set()
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return stream
