"""`aistack asr transcribe FILE`: the transcript of an audio file (any format ffmpeg reads)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from google.protobuf import json_format

from aistack_client.client import AistackClient


def register(subparsers: Any) -> None:
    asr: argparse.ArgumentParser = subparsers.add_parser("asr", help="speech recognition")
    commands = asr.add_subparsers(dest="asr_command", required=True, metavar="command")

    transcribe = commands.add_parser("transcribe", help="transcribe an audio file")
    transcribe.add_argument("file", type=Path, help="audio file: wav, mp3, ogg/opus, flac, m4a, ...")
    transcribe.add_argument("--language", default="", help="language code (pt, en); default: detected")
    transcribe.add_argument("--model", default="", help="model name or alias; default: the service's")
    transcribe.add_argument(
        "--word-timestamps", action="store_true", help="print each word with its start and end"
    )
    transcribe.add_argument(
        "--allow-fallback", action="store_true", help="use the fallback model if this one is not available"
    )
    transcribe.add_argument("--json", action="store_true", help="print the whole response as JSON")
    transcribe.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    transcribe.set_defaults(handler=run_transcribe)

    models = commands.add_parser("models", help="list the models of the ASR service")
    models.set_defaults(handler=run_models)


def _seconds(value: Any) -> float:
    return float(value.ToNanoseconds()) / 1e9


async def run_transcribe(args: argparse.Namespace, client: AistackClient) -> int:
    try:
        audio = args.file.read_bytes()
    except OSError as exc:
        print(f"aistack: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    request = pb.RecognizeRequest(
        audio=audio,
        config=pb.RecognitionConfig(
            language=args.language,
            model=args.model,
            enable_word_time_offsets=args.word_timestamps,
            allow_model_fallback=args.allow_fallback,
        ),
    )
    response = await client.stub(pb_grpc.AsrServiceStub).Recognize(request, timeout=args.timeout)
    if args.json:
        print(json.dumps(json_format.MessageToDict(response), ensure_ascii=False, indent=2))
        return 0
    print(response.text)
    if args.word_timestamps:
        for segment in response.segments:
            for word in segment.words:
                start, end = _seconds(word.start_offset), _seconds(word.end_offset)
                print(f"{start:8.2f} {end:8.2f}  {word.probability:.2f}  {word.word}")
    fallback = " (fallback)" if response.model_fallback_used else ""
    print(
        f"[{response.model}{fallback}, language {response.language} "
        f"({response.language_probability:.2f}), audio {_seconds(response.audio_duration):.1f} s, "
        f"processed in {_seconds(response.processing_duration):.2f} s]",
        file=sys.stderr,
    )
    return 0


async def run_models(args: argparse.Namespace, client: AistackClient) -> int:
    response = await client.stub(pb_grpc.AsrServiceStub).ListModels(pb.ListModelsRequest(), timeout=30)
    for model in response.models:
        flags = [f for f, on in (("default", model.is_default), ("loaded", model.loaded)) if on]
        languages = "multilingual" if len(model.languages) > 1 else ",".join(model.languages)
        print(
            f"{model.name:28} {model.device:7} {model.compute_type:14} {languages:13} "
            f"{' '.join(flags):15} aliases: {', '.join(model.aliases)}"
        )
    print(f"fallback: {response.fallback_model}")
    return 0
