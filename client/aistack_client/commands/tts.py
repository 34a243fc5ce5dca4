"""`aistack tts "text" --language pt -o out.wav`: speech from text; `aistack tts --list-voices`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from aistack.common.v1 import audio_pb2
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc

from aistack_client.client import AistackClient

_FORMATS = {
    "wav": audio_pb2.AUDIO_FORMAT_WAV,
    "pcm16": audio_pb2.AUDIO_FORMAT_PCM16,
    "ogg": audio_pb2.AUDIO_FORMAT_OGG_OPUS,
    "opus": audio_pb2.AUDIO_FORMAT_OGG_OPUS,
    "mp3": audio_pb2.AUDIO_FORMAT_MP3,
}
_SUFFIXES = {".wav": "wav", ".pcm": "pcm16", ".raw": "pcm16", ".ogg": "ogg", ".opus": "ogg", ".mp3": "mp3"}


def register(subparsers: Any) -> None:
    tts: argparse.ArgumentParser = subparsers.add_parser(
        "tts", help="text to speech", description="Synthesize speech; the audio goes to -o FILE."
    )
    tts.add_argument("text", nargs="?", help='text to speak ("-": read standard input)')
    tts.add_argument("-o", "--output", type=Path, help="audio file to write (format from its extension)")
    tts.add_argument("--language", default="", help="pt (default) or en")
    tts.add_argument("--voice", default="", help="voice id (see --list-voices); default: the language's")
    tts.add_argument(
        "--format", choices=sorted(_FORMATS), help="wav, pcm16, ogg, mp3 (default: from -o, else wav)"
    )
    tts.add_argument(
        "--sample-rate", type=int, default=0, help="output sample rate in Hz (default: the voice's)"
    )
    tts.add_argument("--speed", type=float, default=0.0, help="speaking rate, 1 = normal (0.25 to 4)")
    tts.add_argument(
        "--stream",
        action="store_true",
        help="stream sentence by sentence (wav or pcm16), writing as it arrives",
    )
    tts.add_argument("--list-voices", action="store_true", help="list the voices and exit")
    tts.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    tts.set_defaults(handler=run)


async def run(args: argparse.Namespace, client: AistackClient) -> int:
    stub = client.stub(pb_grpc.TtsServiceStub)
    if args.list_voices:
        listed = await stub.ListVoices(pb.ListVoicesRequest(language=args.language), timeout=30)
        for voice in listed.voices:
            kind = "cloned" if voice.cloned else "built-in"
            print(
                f"{voice.voice_id}\t{','.join(voice.languages)}\t{voice.engine}\t{kind}\t{voice.display_name}"
            )
        return 0
    if not args.text or args.output is None:
        print("aistack tts: give the text and -o FILE (or --list-voices)", file=sys.stderr)
        return 2
    text = sys.stdin.read() if args.text == "-" else args.text
    name = args.format or _SUFFIXES.get(args.output.suffix.lower(), "wav")
    audio_format = _FORMATS[name]
    try:
        out = args.output.open("wb")
    except OSError as exc:
        print(f"aistack: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
        return 2
    with out:
        if args.stream:
            request = pb.StreamingSynthesizeRequest(
                text=text, language=args.language, voice=args.voice, audio_format=audio_format,
                sample_rate_hertz=args.sample_rate, speaking_rate=args.speed,
            )  # fmt: skip
            async for chunk in stub.StreamingSynthesize(request, timeout=args.timeout):
                out.write(chunk.audio)
                out.flush()
                print(f"[{chunk.chunk_index}] {chunk.text}", file=sys.stderr)
            return 0
        reply = await stub.Synthesize(
            pb.SynthesizeRequest(
                text=text, language=args.language, voice=args.voice, audio_format=audio_format,
                sample_rate_hertz=args.sample_rate, speaking_rate=args.speed,
            ),
            timeout=args.timeout,
        )  # fmt: skip
        out.write(reply.audio)
    seconds = reply.audio_duration.ToNanoseconds() / 1e9
    print(
        f"[{reply.voice}, {seconds:.2f} s at {reply.sample_rate_hertz} Hz -> {args.output}]", file=sys.stderr
    )
    return 0
