"""Real-time factor and time to first chunk: the engines called directly vs through the TTS service.

    .venv/bin/python bench/tts/rtf.py [--repeats 5]

"Direct" runs the engine in this process on the same normalized sentences the service would make.
"Service" starts `python -m aistack_tts` as its own process and calls it over gRPC on loopback:
Synthesize (whole WAV) for the RTF, StreamingSynthesize for the time to the first audio chunk.
RTF = wall time / audio seconds (below 1: faster than real time). Medians over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass

import grpc
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_edge.testing import free_port, start_service
from aistack_kit.config import Env
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from aistack_tts.app import TtsConfig
from aistack_tts.engines.base import Engine, VoiceRef
from aistack_tts.normalize import normalize, split_sentences

TEXTS = {
    "en": {
        "short": "Thank you for calling. How can I help you today?",
        "long": (
            "Thank you for calling. Your current balance is $1,234.56, due on 11/25/2026. "
            "You can pay by card, by bank transfer, or at any of our stores. "
            "If you already paid, please disregard this message. "
            "Would you like me to send the invoice to your email address? "
            "I can also set up automatic payments for the next months."
        ),
    },
    "pt": {
        "short": "Bom dia. Obrigado por ligar para a nossa empresa.",
        "long": (
            "Bom dia, Sr. Silva. O valor da sua fatura é R$ 1.234,56, com vencimento em 25/11/2026. "
            "O senhor pode pagar com cartão, boleto ou Pix. "
            "Se o pagamento já foi feito, por favor desconsidere esta mensagem. "
            "Deseja que eu envie a segunda via para o seu e-mail? "
            "Também posso cadastrar o débito automático para os próximos meses."
        ),
    },
}
VOICES = {"en": "en_US-joe-medium", "pt": "espeak-ng-pt-br"}


@dataclass
class Row:
    path: str
    language: str
    text: str
    audio_seconds: float
    wall_seconds: float
    first_chunk_seconds: float

    @property
    def rtf(self) -> float:
        return self.wall_seconds / self.audio_seconds


def _direct(engine: Engine, language: str, text: str) -> tuple[float, float, float]:
    voice = VoiceRef(VOICES[language])
    rate = engine.sample_rate(voice)
    started = time.perf_counter()
    first = 0.0
    samples = 0
    for sentence in split_sentences(normalize(text, language)):
        for chunk in engine.synthesize(sentence, voice, language, 1.0):
            if not first:
                first = time.perf_counter() - started
            samples += chunk.size
    return samples / rate, time.perf_counter() - started, first


def _service(stub: pb_grpc.TtsServiceStub, language: str, text: str) -> tuple[float, float, float]:
    metadata = auth_metadata()
    started = time.perf_counter()
    reply = stub.Synthesize(pb.SynthesizeRequest(text=text, language=language), metadata=metadata)
    wall = time.perf_counter() - started
    started = time.perf_counter()
    first = 0.0
    for _ in stub.StreamingSynthesize(
        pb.StreamingSynthesizeRequest(text=text, language=language), metadata=metadata
    ):
        if not first:
            first = time.perf_counter() - started
    return reply.audio_duration.ToNanoseconds() / 1e9, wall, first


def _median(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return (
        statistics.median(r[0] for r in rows),
        statistics.median(r[1] for r in rows),
        statistics.median(r[2] for r in rows),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print rows as JSON instead of a table")
    args = parser.parse_args()

    config = TtsConfig.from_env(Env({}))
    engines = {engine.name: engine for engine in config.engines()}
    for engine in engines.values():
        engine.load()
    by_language = {"en": engines["piper"], "pt": engines["espeak-ng"]}

    rows: list[Row] = []
    port = free_port()
    env = {"API_TOKENS": json.dumps([TEST_TOKEN]), "TTS_VOICES_DIR": "/tmp/aistack-bench-voices"}
    with (
        start_service("aistack_tts", port, env, timeout=120),
        grpc.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        stub = pb_grpc.TtsServiceStub(channel)
        for language, texts in TEXTS.items():
            engine = by_language[language]
            for label, text in texts.items():
                _direct(engine, language, text)  # warm-ups
                _service(stub, language, text)
                direct, service = [], []
                # Interleaved, so both paths see the same load on a shared machine.
                for _ in range(args.repeats):
                    direct.append(_direct(engine, language, text))
                    service.append(_service(stub, language, text))
                rows.append(Row(f"direct ({engine.name})", language, label, *_median(direct)))
                rows.append(Row("service (gRPC)", language, label, *_median(service)))

    if args.json:
        print(json.dumps([{**row.__dict__, "rtf": row.rtf} for row in rows], indent=1))
        return
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}; median of {args.repeats}")  # fmt: skip
    print("| path | language | text | audio s | wall s | RTF | first chunk s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row.path} | {row.language} | {row.text} | {row.audio_seconds:.2f} | {row.wall_seconds:.3f} "
            f"| {row.rtf:.3f} | {row.first_chunk_seconds:.3f} |"
        )


if __name__ == "__main__":
    main()
