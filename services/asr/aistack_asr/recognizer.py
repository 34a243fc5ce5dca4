"""Whole-file recognition as a domain operation: limits, options, model choice, decoding, metrics.

The servicer translates protobuf (or an HTTP upload) into a `RecognitionRequest`; everything the
two entry points share happens here. Decoding and the model run on threads, never on the event loop:
decoding on the default pool, the model on a pool sized like the model's CTranslate2 workers, so extra
requests queue instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aistack.common.v1 import audio_pb2
from aistack_kit.errors import InvalidArgument, ResourceExhausted

from aistack_asr import metrics
from aistack_asr.audio import decode_audio
from aistack_asr.config import MAX_BEAM_SIZE, AsrSettings
from aistack_asr.engine import GuardSettings, TranscribeOptions, Transcriber, Transcript
from aistack_asr.registry import WHISPER_LANGUAGES, ModelRegistry

# Longest initial prompt / hotwords accepted; Whisper keeps at most ~223 prompt tokens anyway.
MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True)
class RecognitionRequest:
    audio: bytes
    encoding: int = audio_pb2.AUDIO_ENCODING_UNSPECIFIED
    sample_rate_hertz: int = 0
    model: str = ""
    allow_model_fallback: bool = False
    language: str = ""
    word_timestamps: bool = False
    # None: the replica's default (on).
    vad_filter: bool | None = None
    # 0: the replica's default.
    beam_size: int = 0
    initial_prompt: str = ""
    hotwords: str = ""
    # Empty: the replica's default schedule.
    temperatures: tuple[float, ...] = ()


@dataclass(frozen=True)
class Recognition:
    transcript: Transcript
    model: str
    model_fallback_used: bool
    processing_seconds: float


def guard_settings(settings: AsrSettings) -> GuardSettings:
    return GuardSettings(
        no_speech_threshold=settings.no_speech_threshold,
        log_prob_threshold=settings.log_prob_threshold,
        compression_ratio_threshold=settings.compression_ratio_threshold,
        silence_reset_seconds=settings.silence_reset_seconds,
        vad_threshold=settings.vad_threshold,
    )


def normalize_language(language: str) -> str | None:
    """BCP-47 (`pt-BR`, `en_US`, `PT`) to Whisper's code (`pt`); empty: None (detect)."""
    value = language.strip()
    if not value:
        return None
    code = value.replace("_", "-").split("-", 1)[0].lower()
    if code not in WHISPER_LANGUAGES:
        raise InvalidArgument(
            f"unsupported language {language!r}; use a Whisper language code such as pt or en",
            reason="UNSUPPORTED_LANGUAGE",
            metadata={"language": language},
        )
    return code


def _check_temperatures(temperatures: Sequence[float]) -> None:
    for value in temperatures:
        if not 0.0 <= value <= 1.0:
            raise InvalidArgument(
                f"temperatures must be between 0 and 1, got {value:g}",
                reason="BAD_TEMPERATURE",
                metadata={"temperature": f"{value:g}"},
            )


class Recognizer:
    def __init__(self, registry: ModelRegistry, transcriber: Transcriber, settings: AsrSettings) -> None:
        self._registry = registry
        self._transcriber = transcriber
        self._settings = settings
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="asr-transcribe")
        self._pending = 0
        # Mean wall time of recent requests, for the retry hint when full.
        self._recent_seconds = 2.0

    def options(self, request: RecognitionRequest) -> TranscribeOptions:
        """Validated decoding options; bad values are INVALID_ARGUMENT before any work is done."""
        if not 0 <= request.beam_size <= MAX_BEAM_SIZE:
            raise InvalidArgument(
                f"beam_size must be between 1 and {MAX_BEAM_SIZE} (0: default), got {request.beam_size}",
                reason="BAD_BEAM_SIZE",
                metadata={"beam_size": str(request.beam_size)},
            )
        _check_temperatures(request.temperatures)
        for name, text in (("initial_prompt", request.initial_prompt), ("hotwords", request.hotwords)):
            if len(text) > MAX_PROMPT_CHARS:
                raise InvalidArgument(
                    f"{name} is longer than {MAX_PROMPT_CHARS} characters",
                    reason="PROMPT_TOO_LONG",
                    metadata={"field": name, "max_chars": str(MAX_PROMPT_CHARS)},
                )
        return TranscribeOptions(
            language=normalize_language(request.language),
            word_timestamps=request.word_timestamps,
            vad_filter=True if request.vad_filter is None else request.vad_filter,
            beam_size=request.beam_size or self._settings.beam_size,
            initial_prompt=request.initial_prompt.strip() or None,
            hotwords=request.hotwords.strip() or None,
            temperatures=tuple(request.temperatures) or self._settings.temperatures,
        )

    def check_upload_size(self, size: int) -> None:
        limit = self._settings.max_upload_bytes
        if size > limit:
            raise InvalidArgument(
                f"the upload is {size} bytes; this service accepts at most {limit} bytes",
                reason="UPLOAD_TOO_LARGE",
                metadata={"bytes": str(size), "max_upload_bytes": str(limit)},
            )

    async def recognize(self, request: RecognitionRequest) -> Recognition:
        self.check_upload_size(len(request.audio))
        options = self.options(request)
        limit = self._settings.max_pending
        if self._pending >= limit:
            # Queueing without bound would only turn overload into timeouts and memory growth.
            retry = max(1.0, self._recent_seconds * self._pending / self._settings.workers)
            raise ResourceExhausted(
                f"this replica is transcribing {self._pending} requests, its limit; retry later",
                reason="TOO_MANY_REQUESTS",
                metadata={"max_pending_requests": str(limit)},
                retry_after_seconds=round(retry, 1),
            )
        self._pending += 1
        try:
            return await self._recognize(request, options)
        finally:
            self._pending -= 1

    async def _recognize(self, request: RecognitionRequest, options: TranscribeOptions) -> Recognition:
        started = time.perf_counter()
        requested = self._registry.resolve(request.model)
        model = await self._registry.acquire(requested, allow_fallback=request.allow_model_fallback)
        if options.language not in (None, "en") and not model.multilingual:
            raise InvalidArgument(
                f"model {model.name} transcribes English only; choose a multilingual model for "
                f"language {options.language!r}",
                reason="LANGUAGE_NOT_SUPPORTED_BY_MODEL",
                metadata={"model": model.name, "language": options.language or ""},
            )
        audio = await asyncio.to_thread(
            decode_audio,
            request.audio,
            request.encoding,
            request.sample_rate_hertz,
            max_seconds=self._settings.max_audio_seconds,
        )
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        try:
            transcript = await loop.run_in_executor(
                self._pool, self._transcriber.transcribe, model, audio, options, stop
            )
        except asyncio.CancelledError:
            # The caller cancelled or its deadline passed: let the worker thread stop early.
            stop.set()
            raise
        elapsed = time.perf_counter() - started
        self._recent_seconds = 0.8 * self._recent_seconds + 0.2 * elapsed
        metrics.record(model.name, "unary", transcript.duration_seconds, elapsed)
        return Recognition(transcript, model.name, model.name != requested, elapsed)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
