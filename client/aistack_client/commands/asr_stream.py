"""`aistack asr stream FILE` (or `--mic`): live recognition, audio sent as it would be spoken.

The file is decoded to 16 kHz mono LINEAR16 (WAV directly, anything else through ffmpeg) and sent in
100 ms chunks at real time (`--speed 2` twice as fast, `--speed 0` as fast as possible); `--mic` reads the
default microphone through ALSA's `arecord` (no Python audio library needed). Each closed window is
printed as it arrives, then the final summary when the file ends (or on Ctrl-C with `--mic`). Every
session carries a fresh `x-session-affinity` uuid, so Envoy keeps the whole session on one replica.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack.common.v1 import audio_pb2
from google.protobuf import json_format

from aistack_client.client import AFFINITY_HEADER, AistackClient

RATE = 16_000
CHUNK_SECONDS = 0.1


def register(subparsers: Any) -> None:
    asr = subparsers.choices.get("asr")
    if asr is None:
        asr = subparsers.add_parser("asr", help="speech recognition")
        asr.add_subparsers(dest="asr_command", required=True, metavar="command")
    commands = next(a for a in asr._actions if isinstance(a, argparse._SubParsersAction))
    stream = commands.add_parser(
        "stream", help="live recognition of a file sent in real time, or the microphone"
    )
    source = stream.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", type=Path, help="audio file (wav, or anything ffmpeg reads)")
    source.add_argument(
        "--mic", action="store_true", help="the default microphone (needs arecord, alsa-utils)"
    )
    stream.add_argument("--language", default="", help="language code (pt, en); default: detected")
    stream.add_argument("--model", default="", help="model name or alias; default: the service's")
    stream.add_argument("--window", type=float, default=5.0, help="shortest window in seconds (default 5)")
    stream.add_argument(
        "--max-window", type=float, default=10.0, help="longest window in seconds (default 10)"
    )
    stream.add_argument("--interim", action="store_true", help="also show hypotheses of the open window")
    stream.add_argument("--words", action="store_true", help="print word timings")
    stream.add_argument("--speed", type=float, default=1.0, help="times real time; 0: as fast as possible")
    stream.add_argument("--json", action="store_true", help="print every event as one JSON line")
    stream.set_defaults(handler=run_stream)


def _seconds(value: Any) -> float:
    return float(value.ToNanoseconds()) / 1e9


def read_pcm(path: Path) -> bytes:
    """16 kHz mono signed 16-bit little-endian samples of an audio file."""
    try:
        with wave.open(str(path)) as source:
            if source.getnchannels() == 1 and source.getsampwidth() == 2 and source.getframerate() == RATE:
                frames: bytes = source.readframes(source.getnframes())
                return frames
    except (wave.Error, EOFError):
        pass  # not a plain PCM WAV: let ffmpeg decode it
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise OSError("ffmpeg is needed for files other than 16 kHz mono 16-bit WAV")
    result = subprocess.run(
        [ffmpeg, "-loglevel", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar", str(RATE), "-"],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise OSError(result.stderr.decode(errors="replace").strip() or "ffmpeg failed")
    return result.stdout


async def file_chunks(pcm: bytes, speed: float) -> AsyncIterator[bytes]:
    size = int(RATE * CHUNK_SECONDS) * 2
    start = time.monotonic()
    for index, offset in enumerate(range(0, len(pcm), size)):
        if speed > 0:
            delay = start + index * CHUNK_SECONDS / speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield pcm[offset : offset + size]


async def mic_chunks(stop: asyncio.Event) -> AsyncIterator[bytes]:
    arecord = shutil.which("arecord")
    if arecord is None:
        raise OSError("--mic needs arecord (Debian package alsa-utils)")
    process = await asyncio.create_subprocess_exec(
        arecord, "-q", "-f", "S16_LE", "-r", str(RATE), "-c", "1", "-t", "raw", stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        while not stop.is_set() and (chunk := await process.stdout.read(int(RATE * CHUNK_SECONDS) * 2)):
            yield chunk
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        await process.wait()


def _print_event(event: pb.StreamingRecognizeResponse, args: argparse.Namespace) -> None:
    kind = event.WhichOneof("event")
    if args.json:
        print(
            json.dumps({kind: json_format.MessageToDict(getattr(event, str(kind)))}, ensure_ascii=False),
            flush=True,
        )
        return
    if kind == "session_started":
        started = event.session_started
        print(f"[session {started.session_id} on {started.model}]", file=sys.stderr)
    elif kind == "interim_result":
        interim = event.interim_result
        print(f"\r\033[K… {interim.text}", end="", file=sys.stderr, flush=True)
    elif kind == "batch_processed":
        window = event.batch_processed
        if args.interim:
            print("\r\033[K", end="", file=sys.stderr)
        print(
            f"[{_seconds(window.start_offset):7.2f} - {_seconds(window.end_offset):7.2f}] {window.text}"
            f"   ({window.language}, {_seconds(window.latency):.2f} s)",
            flush=True,
        )
        if args.words:
            for word in window.words:
                start, end = _seconds(word.start_offset), _seconds(word.end_offset)
                print(f"{'':4}{start:8.2f} {end:8.2f}  {word.probability:.2f}  {word.word}")
    elif kind == "final_summary":
        summary = event.final_summary
        print(f"\n{summary.text}")
        print(
            f"[{summary.model}, {summary.batch_count} windows, "
            f"audio {_seconds(summary.audio_duration):.1f} s, "
            f"model time {_seconds(summary.processing_duration):.2f} s]",
            file=sys.stderr,
        )
    elif kind == "session_ended":
        reason = pb.SessionEndReason.Name(event.session_ended.reason)
        print(f"[ended: {reason.removeprefix('SESSION_END_REASON_').lower()}]", file=sys.stderr)


async def run_stream(args: argparse.Namespace, client: AistackClient) -> int:
    if args.mic:
        # Ctrl-C ends the recording and half-closes the stream, so the final summary still arrives.
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        audio = mic_chunks(stop)
    else:
        try:
            pcm = read_pcm(args.file)
        except OSError as exc:
            print(f"aistack: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        audio = file_chunks(pcm, args.speed)
    streaming = pb.StreamingRecognitionConfig(
        config=pb.RecognitionConfig(
            model=args.model,
            language=args.language,
            encoding=audio_pb2.AUDIO_ENCODING_LINEAR16,
            sample_rate_hertz=RATE,
            enable_word_time_offsets=args.words,
        ),
        interim_results=args.interim,
        session_id=uuid.uuid4().hex,
    )
    streaming.batch_window.FromNanoseconds(int(args.window * 1e9))
    streaming.max_batch_window.FromNanoseconds(int(args.max_window * 1e9))
    stub = client.stub(pb_grpc.AsrServiceStub)
    call = stub.StreamingRecognize(metadata=((AFFINITY_HEADER, streaming.session_id),))  # type: ignore[call-arg]
    opened = asyncio.Event()

    async def send() -> None:
        try:
            await call.write(pb.StreamingRecognizeRequest(streaming_config=streaming))
            # Audio only once the session is accepted, so a refusal reads as the server's status.
            await opened.wait()
            async for chunk in audio:
                await call.write(pb.StreamingRecognizeRequest(audio_content=chunk))
            await call.done_writing()
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            pass  # the call ended; its status comes from the reading side

    writer = asyncio.create_task(send())
    try:
        while (event := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
            assert isinstance(event, pb.StreamingRecognizeResponse)
            opened.set()
            _print_event(event, args)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    return 0
