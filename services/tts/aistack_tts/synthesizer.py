"""The TTS domain: validates requests, routes voices to engines, runs synthesis off the event loop,
and owns cloned voices. The servicer translates protobuf to these calls and nothing else.

Unary and streaming synthesis share one path (`stream`): sentence by sentence, chunk by chunk, through
one resampler per request. The unary answer is the concatenation of exactly what a stream would send,
then encoded.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from aistack_kit import errors

from aistack_tts import audio, metrics
from aistack_tts.audio import OutputFormat
from aistack_tts.engines.base import BuiltinVoice, CloningUnsupported, Engine, FloatAudio, VoiceRef
from aistack_tts.normalize import normalize, split_sentences
from aistack_tts.voices import VoiceStore, VoiceStoreError

LANGUAGES = ("pt", "en")
_LANGUAGE_ALIASES = {"pt": "pt", "pt-br": "pt", "pt_br": "pt", "por": "pt", "en": "en", "en-us": "en",
                     "en_us": "en", "en-gb": "en", "eng": "en"}  # fmt: skip
MIN_SPEAKING_RATE = 0.25
MAX_SPEAKING_RATE = 4.0
MAX_DISPLAY_NAME_CHARS = 100


@dataclass(frozen=True)
class Limits:
    max_text_chars: int = 5000
    max_sentence_chars: int = 250
    max_reference_bytes: int = 20 * 1024 * 1024
    min_reference_seconds: float = 2.0
    max_reference_seconds: float = 30.0
    max_concurrent: int = 2


@dataclass(frozen=True)
class VoiceInfo:
    voice_id: str
    display_name: str
    languages: tuple[str, ...]
    engine: str
    cloned: bool
    create_time: datetime | None = None


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    language: str = ""
    voice: str = ""
    audio_format: OutputFormat | None = None
    sample_rate_hertz: int = 0
    speaking_rate: float = 0.0


@dataclass(frozen=True)
class Plan:
    """A validated request: what to say, with which engine and voice, at which rate."""

    sentences: tuple[str, ...]
    language: str
    engine: Engine
    voice: VoiceRef
    engine_rate: int
    output_rate: int
    audio_format: OutputFormat
    speaking_rate: float


@dataclass(frozen=True)
class Chunk:
    pcm16: bytes
    sentence: str
    sentence_index: int


@dataclass(frozen=True)
class SynthesisResult:
    audio: bytes
    audio_format: OutputFormat
    sample_rate_hertz: int
    duration_seconds: float
    voice_id: str


def parse_language(code: str) -> str:
    if not code.strip():
        return "pt"
    language = _LANGUAGE_ALIASES.get(code.strip().lower())
    if language is None:
        raise errors.InvalidArgument(
            f"unsupported language {code!r}; supported: pt (pt-BR), en",
            reason="UNSUPPORTED_LANGUAGE",
            metadata={"language": code, "supported": ",".join(LANGUAGES)},
        )
    return language


class Synthesizer:
    def __init__(
        self,
        engines: Sequence[Engine],
        store: VoiceStore,
        limits: Limits,
        default_voices: Mapping[str, str] | None = None,
    ) -> None:
        self._engines = list(engines)
        self._store = store
        self._limits = limits
        self._default_voices = dict(default_voices or {})
        self._builtin: dict[str, tuple[BuiltinVoice, Engine]] = {}
        self._slots = asyncio.Semaphore(limits.max_concurrent)
        self._loaded = False

    # --- lifecycle -----------------------------------------------------------------------------

    def load(self) -> None:
        """Loads every engine and opens the voice store (blocking: call from a thread)."""
        for engine in self._engines:
            engine.load()
            for voice in engine.voices():
                self._builtin.setdefault(voice.voice_id, (voice, engine))
        self._store.open()
        for language in LANGUAGES:
            if language not in self._default_voices:
                first = next((v for v, _ in self._builtin.values() if language in v.languages), None)
                if first is not None:
                    self._default_voices[language] = first.voice_id
        self._loaded = True

    def close(self) -> None:
        for engine in self._engines:
            engine.close()

    @property
    def default_voices(self) -> Mapping[str, str]:
        return dict(self._default_voices)

    # --- voices --------------------------------------------------------------------------------

    def _cloning_engine(self) -> Engine | None:
        return next((engine for engine in self._engines if engine.can_clone), None)

    async def list_voices(self, language: str = "") -> list[VoiceInfo]:
        # The cloned voices are read from disk: off the event loop.
        return await asyncio.to_thread(self._list_voices, language)

    def _list_voices(self, language: str) -> list[VoiceInfo]:
        wanted = parse_language(language) if language.strip() else None
        engines = {engine.name for engine in self._engines}
        voices = [
            VoiceInfo(v.voice_id, v.display_name, v.languages, engine.name, cloned=False)
            for v, engine in self._builtin.values()
        ]
        for stored in self._store.list_voices():
            # A voice cloned by an engine this deployment does not run cannot be spoken here.
            if stored.engine in engines:
                voices.append(
                    VoiceInfo(
                        stored.voice_id,
                        stored.display_name,
                        stored.languages,
                        stored.engine,
                        cloned=True,
                        create_time=stored.create_time,
                    )
                )
        return [v for v in voices if wanted is None or wanted in v.languages]

    async def create_voice(self, display_name: str, reference: bytes, language: str) -> VoiceInfo:
        engine = self._cloning_engine()
        if engine is None:
            names = ", ".join(e.name for e in self._engines)
            raise errors.FailedPrecondition(
                f"voice cloning is not available: the engines running here ({names}) cannot clone voices; "
                "it needs the XTTS-v2 engine (TTS_ENGINE=xtts)",
                reason="VOICE_CLONING_UNSUPPORTED",
                metadata={"engines": names},
            )
        name = display_name.strip()
        if not name:
            raise errors.InvalidArgument("display_name is required", reason="DISPLAY_NAME_REQUIRED")
        if len(name) > MAX_DISPLAY_NAME_CHARS:
            raise errors.InvalidArgument(
                f"display_name is longer than {MAX_DISPLAY_NAME_CHARS} characters",
                reason="DISPLAY_NAME_TOO_LONG",
            )
        if language.strip():
            spoken = parse_language(language)
            if spoken not in engine.clone_languages:
                raise errors.InvalidArgument(
                    f"{engine.name} cannot clone {spoken}", reason="UNSUPPORTED_LANGUAGE"
                )
        if not reference:
            raise errors.InvalidArgument("reference_audio is required", reason="REFERENCE_AUDIO_REQUIRED")
        if len(reference) > self._limits.max_reference_bytes:
            raise errors.InvalidArgument(
                f"reference_audio is larger than {self._limits.max_reference_bytes} bytes",
                reason="REFERENCE_AUDIO_TOO_LARGE",
                metadata={"max_bytes": str(self._limits.max_reference_bytes)},
            )
        rate = 22050
        try:
            samples = await asyncio.to_thread(
                audio.decode_to_mono, reference, rate, self._limits.max_reference_seconds
            )
        except audio.DecodeError as exc:
            raise errors.InvalidArgument(
                f"reference_audio could not be decoded: {exc}", reason="AUDIO_DECODE_FAILED"
            ) from None
        seconds = samples.size / rate
        if seconds < self._limits.min_reference_seconds:
            raise errors.InvalidArgument(
                f"reference_audio has {seconds:.1f} s of audio; at least "
                f"{self._limits.min_reference_seconds:g} s of speech are needed",
                reason="REFERENCE_AUDIO_TOO_SHORT",
                metadata={
                    "seconds": f"{seconds:.2f}",
                    "min_seconds": f"{self._limits.min_reference_seconds:g}",
                },
            )
        if float(np.sqrt(np.mean(np.square(samples)))) < 1e-3:
            raise errors.InvalidArgument("reference_audio is silent", reason="REFERENCE_AUDIO_SILENT")
        async with self._slots:
            try:
                conditioning = await asyncio.to_thread(engine.clone, samples, rate)
            except CloningUnsupported as exc:
                raise errors.FailedPrecondition(str(exc), reason="VOICE_CLONING_UNSUPPORTED") from None
        stored = await asyncio.to_thread(
            self._store.create, name, engine.clone_languages, engine.name, conditioning
        )
        metrics.VOICES_CLONED.labels(engine.name).inc()
        return VoiceInfo(stored.voice_id, stored.display_name, stored.languages, stored.engine, True,
                         stored.create_time)  # fmt: skip

    async def delete_voice(self, voice_id: str) -> None:
        if not voice_id.strip():
            raise errors.InvalidArgument("voice_id is required", reason="VOICE_ID_REQUIRED")
        if voice_id in self._builtin:
            raise errors.FailedPrecondition(
                f"voice {voice_id} is built in and cannot be deleted",
                reason="BUILTIN_VOICE_NOT_DELETABLE",
                metadata={"voice": voice_id},
            )
        if not await asyncio.to_thread(self._store.delete, voice_id):
            raise _voice_not_found(voice_id)

    # --- synthesis -----------------------------------------------------------------------------

    async def plan(self, request: SynthesisRequest, *, streaming: bool) -> Plan:
        """Validates the request and resolves its voice (a cloned voice's conditioning is read from disk,
        hence the thread)."""
        return await asyncio.to_thread(self._plan, request, streaming)

    def _plan(self, request: SynthesisRequest, streaming: bool) -> Plan:
        if not self._loaded:
            raise errors.Unavailable("the TTS engines are still loading", reason="NOT_READY")
        text = request.text.strip()
        if not text:
            raise errors.InvalidArgument("text is empty", reason="EMPTY_TEXT")
        if len(text) > self._limits.max_text_chars:
            raise errors.InvalidArgument(
                f"text has {len(text)} characters; the limit is {self._limits.max_text_chars}",
                reason="TEXT_TOO_LONG",
                metadata={"characters": str(len(text)), "max_characters": str(self._limits.max_text_chars)},
            )
        language = parse_language(request.language)
        fmt = request.audio_format
        if fmt is None:
            fmt = OutputFormat.PCM16 if streaming else OutputFormat.WAV
        if streaming and fmt not in (OutputFormat.PCM16, OutputFormat.WAV):
            raise errors.InvalidArgument(
                f"streaming supports PCM16 and WAV, not {fmt.name}",
                reason="UNSUPPORTED_AUDIO_FORMAT",
                metadata={"audio_format": fmt.name},
            )
        rate = request.speaking_rate or 1.0
        if not MIN_SPEAKING_RATE <= rate <= MAX_SPEAKING_RATE:
            raise errors.InvalidArgument(
                f"speaking_rate must be between {MIN_SPEAKING_RATE} and {MAX_SPEAKING_RATE}, got {rate:g}",
                reason="INVALID_SPEAKING_RATE",
            )
        sample_rate = request.sample_rate_hertz
        if sample_rate and not audio.MIN_SAMPLE_RATE <= sample_rate <= audio.MAX_SAMPLE_RATE:
            raise errors.InvalidArgument(
                f"sample_rate_hertz must be 0 or between {audio.MIN_SAMPLE_RATE} and {audio.MAX_SAMPLE_RATE}",
                reason="INVALID_SAMPLE_RATE",
                metadata={"sample_rate_hertz": str(sample_rate)},
            )
        engine, voice, languages = self._resolve_voice(request.voice.strip(), language)
        if language not in languages:
            raise errors.InvalidArgument(
                f"voice {voice.voice_id} does not speak {language} (it speaks {', '.join(languages)})",
                reason="VOICE_LANGUAGE_MISMATCH",
                metadata={"voice": voice.voice_id, "language": language},
            )
        engine_rate = engine.sample_rate(voice)
        output_rate = audio.encoded_rate(fmt, sample_rate or engine_rate)
        sentences = tuple(split_sentences(normalize(text, language), self._limits.max_sentence_chars))
        if not sentences:
            raise errors.InvalidArgument("text has nothing to speak", reason="EMPTY_TEXT")
        return Plan(sentences, language, engine, voice, engine_rate, output_rate, fmt, rate)

    def _resolve_voice(self, voice_id: str, language: str) -> tuple[Engine, VoiceRef, tuple[str, ...]]:
        if not voice_id:
            default = self._default_voices.get(language)
            if default is None:
                raise errors.FailedPrecondition(
                    f"no default voice for {language}; pass a voice id", reason="NO_DEFAULT_VOICE"
                )
            voice_id = default
        if voice_id in self._builtin:
            builtin, engine = self._builtin[voice_id]
            return engine, VoiceRef(voice_id), builtin.languages
        stored = self._store.get(voice_id)
        if stored is None:
            raise _voice_not_found(voice_id)
        engine_for = next((e for e in self._engines if e.name == stored.engine), None)
        if engine_for is None:
            raise errors.FailedPrecondition(
                f"voice {voice_id} was cloned with {stored.engine}, which is not running here",
                reason="VOICE_ENGINE_UNAVAILABLE",
                metadata={"voice": voice_id, "engine": stored.engine},
            )
        try:
            conditioning = self._store.conditioning(voice_id)
        except VoiceStoreError as exc:
            raise errors.FailedPrecondition(
                str(exc), reason="VOICE_DAMAGED", metadata={"voice": voice_id}
            ) from None
        return engine_for, VoiceRef(voice_id, conditioning), stored.languages

    async def stream(self, plan: Plan) -> AsyncIterator[Chunk]:
        """PCM16 chunks at `plan.output_rate`, each sent as soon as the engine produced it."""
        engine_name = plan.engine.name
        started = time.perf_counter()
        first = True
        total_bytes = 0
        resampler = audio.StreamResampler(plan.engine_rate, plan.output_rate)
        async with self._slots:
            for index, sentence in enumerate(plan.sentences):
                pieces = plan.engine.synthesize(sentence, plan.voice, plan.language, plan.speaking_rate)
                try:
                    while True:
                        samples = await asyncio.to_thread(_next_resampled, pieces, resampler)
                        if samples is None:
                            break
                        if not samples:
                            continue
                        if first:
                            metrics.FIRST_CHUNK_SECONDS.labels(engine_name).observe(
                                time.perf_counter() - started
                            )
                            first = False
                        total_bytes += len(samples)
                        yield Chunk(samples, sentence, index)
                finally:
                    await asyncio.to_thread(_close, pieces)
            tail = resampler.flush()
            if tail:
                total_bytes += len(tail)
                yield Chunk(tail, plan.sentences[-1], len(plan.sentences) - 1)
        elapsed = time.perf_counter() - started
        seconds = total_bytes / 2 / plan.output_rate
        metrics.SYNTHESIS_SECONDS.labels(engine_name).observe(elapsed)
        metrics.AUDIO_SECONDS.labels(engine_name, plan.language).inc(seconds)
        metrics.CHARACTERS.labels(engine_name, plan.language).inc(sum(len(s) for s in plan.sentences))
        if seconds > 0:
            metrics.REAL_TIME_FACTOR.labels(engine_name).observe(elapsed / seconds)

    async def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        plan = await self.plan(request, streaming=False)
        pcm = b"".join([chunk.pcm16 async for chunk in self.stream(plan)])
        encoded = await asyncio.to_thread(audio.encode, pcm, plan.output_rate, plan.audio_format)
        return SynthesisResult(
            audio=encoded,
            audio_format=plan.audio_format,
            sample_rate_hertz=plan.output_rate,
            duration_seconds=len(pcm) / 2 / plan.output_rate,
            voice_id=plan.voice.voice_id,
        )


_END: FloatAudio | None = None


def _next_resampled(pieces: Iterator[FloatAudio], resampler: audio.StreamResampler) -> bytes | None:
    samples = next(pieces, _END)
    if samples is None:
        return None
    return resampler.push(samples)


def _close(pieces: Iterator[FloatAudio]) -> None:
    close = getattr(pieces, "close", None)
    if close is None:
        return
    # ValueError: a cancelled call left `next()` running in its worker thread; the generator is closed
    # when that returns and it is collected (XTTS's lock is released then).
    with contextlib.suppress(ValueError):
        close()


def _voice_not_found(voice_id: str) -> errors.NotFound:
    return errors.NotFound(
        f"voice {voice_id!r} not found; ListVoices shows the voices available",
        reason="VOICE_NOT_FOUND",
        metadata={"voice": voice_id},
    )
