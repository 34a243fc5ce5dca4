"""Live recognition sessions: config, audio in, windows out, through the per-model batchers.

Per session three parts run on the event loop: the reader (requests -> 16 kHz audio -> VAD windows),
the decoder loop (one window at a time, because each window's prompt is the previous window's text; the
windows of all sessions meet in the model's batcher) and the generator that sends events from a bounded
queue. Nothing here blocks on the model.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack_kit.config import Env
from aistack_kit.errors import AistackError, InvalidArgument, ResourceExhausted
from aistack_kit.grpc_types import Context
from aistack_kit.logs import log_fields
from faster_whisper.tokenizer import _LANGUAGE_CODES
from google.protobuf import duration_pb2

from aistack_asr import metrics as asr_metrics
from aistack_asr.audio import PcmDecoder
from aistack_asr.convert import duration, segment_to_proto
from aistack_asr.streaming import metrics
from aistack_asr.streaming.batcher import WindowBatcher
from aistack_asr.streaming.decoder import (
    DecodeRequest,
    WhisperModelLike,
    WindowDecoder,
    WindowOutput,
)
from aistack_asr.streaming.insights import InsightsProvider, InsightsSession, TranscribedWindow
from aistack_asr.streaming.settings import MAX_WINDOW_SECONDS, StreamingSettings
from aistack_asr.streaming.windowing import SAMPLE_RATE, Window, Windower

logger = logging.getLogger("aistack.asr.streaming")

# VAD runs on a thread once this much new audio is buffered: fewer hops, still well under a pause.
_VAD_STEP_SAMPLES = 3200
Reason = pb.SessionEndReason


class HasEnv(Protocol):
    """Service settings that carry the environment they were read from (AsrSettings)."""

    @property
    def env(self) -> Env: ...


class ModelSource(Protocol):
    """The registry, as streaming uses it."""

    async def acquire(self, name: str, *, allow_fallback: bool = False) -> WhisperModelLike: ...


def _seconds(value: duration_pb2.Duration) -> float:
    return value.seconds + value.nanos / 1e9


@dataclass(frozen=True)
class SessionConfig:
    session_id: str
    model: str
    allow_fallback: bool
    language: str | None
    encoding: int
    sample_rate_hertz: int
    batch_window: float
    max_batch_window: float
    interim_results: bool
    enable_insights: bool
    want_words: bool
    prompt_text: str


def _language(code: str) -> str | None:
    code = code.strip().lower().replace("_", "-")
    if not code:
        return None
    base = code.split("-", 1)[0]
    if base not in _LANGUAGE_CODES:
        raise InvalidArgument(
            f"unknown language {code!r}", reason="UNSUPPORTED_LANGUAGE", metadata={"language": code}
        )
    return base


def _repeats(text: str) -> bool:
    """A repetition loop: the same 3-word phrase three times, or one word four times running."""
    words = re.findall(r"\w+", text.lower())
    if re.search(r"\b(\w+)(?:\W+\1\b){3,}", text.lower()):
        return True
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - 2):
        gram = tuple(words[i : i + 3])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= 3:
            return True
    return False


class StreamingRecognizer:
    """`StreamingRecognize` behind the servicer: one instance per replica."""

    def __init__(
        self,
        registry: ModelSource,
        settings: StreamingSettings | HasEnv | None = None,
        *,
        insights: InsightsProvider | None = None,
    ) -> None:
        self._registry = registry
        # The app hands over its AsrSettings; streaming reads its own variables from the same source.
        if isinstance(settings, StreamingSettings):
            self.settings = settings
        else:
            self.settings = StreamingSettings.from_env(settings.env if settings is not None else None)
        self._insights = insights
        self._batchers: dict[str, WindowBatcher] = {}
        self._active = 0
        self._shutdown: asyncio.Event | None = None
        self._sessions: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Event | None = None

    async def start(self) -> None:
        self._shutdown = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        metrics.SESSIONS_MAX.set(self.settings.max_sessions)

    @property
    def active_sessions(self) -> int:
        return self._active

    def batcher_for(self, model: WhisperModelLike) -> WindowBatcher:
        batcher = self._batchers.get(model.name)
        if batcher is None or batcher.decoder.model is not model:
            if batcher is not None:
                # The registry reloaded the model: sessions already holding the old batcher finish on it.
                logger.info("new batcher for reloaded model", extra=log_fields(model=model.name))
            s = self.settings
            decoder = WindowDecoder(
                model,
                buckets_seconds=s.encoder_buckets_seconds,
                margin_frames=s.encoder_margin_frames,
                max_new_tokens=s.max_new_tokens,
                no_speech_threshold=s.no_speech_threshold,
                log_prob_threshold=s.log_prob_threshold,
            )
            batcher = WindowBatcher(
                decoder,
                max_batch_size=s.max_batch_size,
                max_wait_seconds=s.max_batch_wait_seconds,
                workers=s.workers,
            )
            self._batchers[model.name] = batcher
        return batcher

    async def begin_shutdown(self) -> None:
        """Ends every open session with SERVER_SHUTDOWN; call before the server's graceful stop."""
        if self._shutdown is None:
            await self.start()
        assert self._shutdown is not None and self._idle is not None
        self._shutdown.set()
        if self._active:
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=5.0)
            except TimeoutError:
                logger.warning("sessions still open at shutdown", extra=log_fields(sessions=self._active))

    async def close(self) -> None:
        await self.begin_shutdown()
        batchers = list(self._batchers.values())
        self._batchers.clear()
        for batcher in batchers:
            await asyncio.to_thread(batcher.close)

    def _session_config(
        self, request: pb.StreamingRecognizeRequest, context: Context | None
    ) -> SessionConfig:
        streaming = request.streaming_config
        config = streaming.config
        s = self.settings
        batch = (
            _seconds(streaming.batch_window)
            if streaming.HasField("batch_window")
            else s.default_batch_window_seconds
        )
        longest = (
            _seconds(streaming.max_batch_window)
            if streaming.HasField("max_batch_window")
            else max(s.default_max_batch_window_seconds, batch)
        )
        if not 1.0 <= batch <= MAX_WINDOW_SECONDS or not batch <= longest <= MAX_WINDOW_SECONDS:
            raise InvalidArgument(
                f"batch_window must be 1 to 30 s and max_batch_window between it and 30 s; got {batch:g} s "
                f"and {longest:g} s",
                reason="BAD_BATCH_WINDOW",
                metadata={"batch_window_seconds": f"{batch:g}", "max_batch_window_seconds": f"{longest:g}"},
            )
        session_id = streaming.session_id.strip()
        if not session_id and context is not None:
            metadata = {str(key): value for key, value in (context.invocation_metadata() or ())}
            session_id = str(metadata.get("x-session-affinity", ""))
        prompt = " ".join(p for p in (config.hotwords.strip(), config.initial_prompt.strip()) if p)
        return SessionConfig(
            session_id=str(session_id) or uuid.uuid4().hex,
            model=config.model,
            allow_fallback=config.allow_model_fallback,
            language=_language(config.language),
            encoding=config.encoding,
            sample_rate_hertz=config.sample_rate_hertz,
            batch_window=batch,
            max_batch_window=longest,
            interim_results=streaming.interim_results,
            enable_insights=streaming.enable_insights,
            want_words=config.enable_word_time_offsets,
            prompt_text=prompt,
        )

    async def recognize(
        self, requests: AsyncIterator[pb.StreamingRecognizeRequest], context: Context | None = None
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        if self._shutdown is None:
            await self.start()
        iterator = aiter(requests)
        try:
            first = await asyncio.wait_for(anext(iterator), self.settings.idle_timeout_seconds)
        except (StopAsyncIteration, TimeoutError):
            return
        if first.WhichOneof("streaming_request") != "streaming_config":
            raise InvalidArgument(
                "the first message of a stream must be streaming_config; audio came first",
                reason="CONFIG_REQUIRED",
            )
        config = self._session_config(first, context)
        decoder = PcmDecoder(config.encoding, config.sample_rate_hertz)
        if self._active >= self.settings.max_sessions:
            raise ResourceExhausted(
                f"this replica serves at most {self.settings.max_sessions} streaming sessions; retry later",
                reason="TOO_MANY_SESSIONS",
                metadata={"max_sessions": str(self.settings.max_sessions)},
                retry_after_seconds=self.settings.retry_after_seconds,
            )
        self._active += 1
        assert self._idle is not None
        self._idle.clear()
        metrics.SESSIONS.inc()
        try:
            model = await self._registry.acquire(config.model, allow_fallback=config.allow_fallback)
            if config.language not in (None, "en") and not model.multilingual:
                raise InvalidArgument(
                    f"model {model.name} transcribes English only, not {config.language!r}",
                    reason="UNSUPPORTED_LANGUAGE",
                    metadata={"language": config.language or "", "model": model.name},
                )
            insights: InsightsSession | None = None
            if config.enable_insights and self._insights is not None:
                insights = await self._insights.open(config.session_id, config.language or "")
            session = _Session(self, config, model, self.batcher_for(model), decoder, insights)
            async for event in session.run(iterator):
                yield event
        finally:
            self._active -= 1
            metrics.SESSIONS.dec()
            if self._active == 0:
                self._idle.set()


@dataclass
class _Item:
    """What the reader hands the decoder loop, in stream order."""

    window: Window | None = None
    arrival: float = 0.0
    interim: asyncio.Future[WindowOutput] | None = None
    interim_window: tuple[float, float] = (0.0, 0.0)
    end: int = 0


@dataclass
class _Transcript:
    texts: list[str] = field(default_factory=list)
    segments: list[pb.Segment] = field(default_factory=list)
    model_seconds: float = 0.0
    language: str = ""


class _Session:
    def __init__(
        self,
        owner: StreamingRecognizer,
        config: SessionConfig,
        model: WhisperModelLike,
        batcher: WindowBatcher,
        pcm: PcmDecoder,
        insights: InsightsSession | None,
    ) -> None:
        s = owner.settings
        self.owner = owner
        self.s = s
        self.config = config
        self.model = model
        self.batcher = batcher
        self.pcm = pcm
        self.insights = insights
        self.windower = Windower(
            batch_window_seconds=config.batch_window,
            max_window_seconds=config.max_batch_window,
            threshold=s.vad_threshold,
            min_pause_seconds=s.min_pause_seconds,
            speech_pad_seconds=s.speech_pad_seconds,
        )
        self.items: asyncio.Queue[_Item] = asyncio.Queue()
        self.out: asyncio.Queue[tuple[pb.StreamingRecognizeResponse, float | None] | BaseException] = (
            asyncio.Queue(s.output_queue_size)
        )
        base = batcher.decoder.encode_text(" " + config.prompt_text) if config.prompt_text else ()
        self.base_prompt = tuple(base[: s.prompt_max_tokens])
        self.carried: list[int] = []
        self.transcript = _Transcript(language=config.language or "")
        self.batch_index = 0
        self.arrivals: deque[tuple[int, float]] = deque()
        self.started = time.monotonic()
        self.pending_vad: list[np.ndarray] = []
        self.pending_samples = 0
        self.interim_inflight: asyncio.Future[WindowOutput] | None = None
        self.last_interim = 0

    # -- events ----------------------------------------------------------------------------------

    async def run(
        self, requests: AsyncIterator[pb.StreamingRecognizeRequest]
    ) -> AsyncIterator[pb.StreamingRecognizeResponse]:
        c = self.config
        yield pb.StreamingRecognizeResponse(
            session_started=pb.SessionStarted(
                session_id=c.session_id,
                model=self.model.name,
                batch_window=duration(c.batch_window),
                max_batch_window=duration(c.max_batch_window),
            )
        )
        logger.info("stream started", extra=log_fields(session_id=c.session_id, model=self.model.name))
        reader = asyncio.create_task(self._read(requests))
        decoder = asyncio.create_task(self._decode_loop())
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, BaseException):
                    raise item
                response, arrival = item
                if arrival is not None:
                    latency = time.monotonic() - arrival
                    response.batch_processed.latency.CopyFrom(duration(latency))
                    metrics.WINDOW_LATENCY.labels(self.model.name).observe(latency)
                yield response
                if response.WhichOneof("event") == "session_ended":
                    return
        finally:
            for task in (reader, decoder):
                task.cancel()
            if self.interim_inflight is not None:
                self.interim_inflight.cancel()
            await asyncio.gather(reader, decoder, return_exceptions=True)

    async def _put(self, response: pb.StreamingRecognizeResponse, arrival: float | None = None) -> None:
        # Bounded: a slow reader makes only its own session wait here.
        await self.out.put((response, arrival))

    # -- reading ---------------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[pb.StreamingRecognizeRequest]) -> None:
        try:
            reason = await self._read_until_end(requests)
        except AistackError as exc:
            await self.out.put(exc)
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("stream reader failed", extra=log_fields(session_id=self.config.session_id))
            await self.out.put(exc)
            return
        if reason != Reason.SESSION_END_REASON_SERVER_SHUTDOWN:
            await self._feed(self.pcm.flush(), time.monotonic(), force=True)
            window = self.windower.flush()
            if window is not None:
                await self.items.put(_Item(window=window, arrival=self._arrival_of(window.end_sample)))
        await self.items.put(_Item(end=reason))

    async def _read_until_end(self, requests: AsyncIterator[pb.StreamingRecognizeRequest]) -> int:
        shutdown = self.owner._shutdown
        assert shutdown is not None
        stop = asyncio.create_task(shutdown.wait())
        next_request: asyncio.Task[pb.StreamingRecognizeRequest] | None = None
        try:
            while True:
                if next_request is None:
                    next_request = asyncio.ensure_future(anext(requests))
                done, _ = await asyncio.wait(
                    {next_request, stop},
                    timeout=self.s.idle_timeout_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if stop in done:
                    return Reason.SESSION_END_REASON_SERVER_SHUTDOWN
                if not done:
                    return Reason.SESSION_END_REASON_IDLE_TIMEOUT
                try:
                    request = next_request.result()
                except StopAsyncIteration:
                    return Reason.SESSION_END_REASON_CLIENT_CLOSED
                next_request = None
                kind = request.WhichOneof("streaming_request")
                if kind == "streaming_config":
                    raise InvalidArgument(
                        "streaming_config may only be sent once, in the first message",
                        reason="CONFIG_ALREADY_SET",
                    )
                if kind != "audio_content" or not request.audio_content:
                    continue
                now = time.monotonic()
                await self._feed(self.pcm.push(request.audio_content), now)
                elapsed = now - self.started
                audio_seconds = self.windower.received_samples / SAMPLE_RATE
                if max(elapsed, audio_seconds) >= self.s.max_session_seconds:
                    return Reason.SESSION_END_REASON_MAX_DURATION
        finally:
            stop.cancel()
            if next_request is not None:
                next_request.cancel()

    async def _feed(self, samples: np.ndarray, arrival: float, *, force: bool = False) -> None:
        if samples.size:
            self.pending_vad.append(samples)
            self.pending_samples += samples.size
            total = self.windower.received_samples + self.pending_samples
            self.arrivals.append((total, arrival))
        if not self.pending_vad or (self.pending_samples < _VAD_STEP_SAMPLES and not force):
            return
        audio = np.concatenate(self.pending_vad)
        self.pending_vad, self.pending_samples = [], 0
        windows = await asyncio.to_thread(self.windower.push, audio)
        for window in windows:
            await self.items.put(_Item(window=window, arrival=self._arrival_of(window.end_sample)))
        if self.config.interim_results:
            self._maybe_interim()

    def _arrival_of(self, end_sample: int) -> float:
        """When the chunk holding the window's last sample arrived."""
        while len(self.arrivals) > 1 and self.arrivals[0][0] < end_sample:
            self.arrivals.popleft()
        return self.arrivals[0][1] if self.arrivals else time.monotonic()

    def _maybe_interim(self) -> None:
        # Paced by audio received, not wall time: one hypothesis per interval of new audio at most,
        # and never more than one in flight, so interims cannot crowd out final windows.
        if self.interim_inflight is not None and not self.interim_inflight.done():
            return
        received = self.windower.received_samples
        if received - self.last_interim < self.s.interim_interval_seconds * SAMPLE_RATE:
            return
        audio, voiced = self.windower.open_audio()
        if not voiced or audio.size < SAMPLE_RATE // 2:
            return
        self.last_interim = received
        request = DecodeRequest(audio=audio.copy(), language=self.config.language, prompt=self._prompt())
        self.interim_inflight = self.batcher.submit(request, interim=True)
        start = self.windower.window_start / SAMPLE_RATE
        end = self.windower.received_samples / SAMPLE_RATE
        self.items.put_nowait(_Item(interim=self.interim_inflight, interim_window=(start, end)))

    # -- decoding --------------------------------------------------------------------------------

    def _prompt(self) -> tuple[int, ...]:
        room = max(0, self.s.prompt_max_tokens - len(self.base_prompt))
        carried = self.carried[-room:] if room else []
        return (*self.base_prompt, *carried)

    async def _decode_loop(self) -> None:
        try:
            while True:
                item = await self.items.get()
                if item.end:
                    await self._finish(item.end)
                    return
                if item.interim is not None:
                    await self._emit_interim(item)
                elif item.window is not None:
                    await self._decode_window(item.window, item.arrival)
        except asyncio.CancelledError:
            raise
        except AistackError as exc:
            await self.out.put(exc)
        except Exception as exc:
            logger.exception("stream decoding failed", extra=log_fields(session_id=self.config.session_id))
            await self.out.put(exc)

    async def _emit_interim(self, item: _Item) -> None:
        assert item.interim is not None
        try:
            output = await item.interim
        except asyncio.CancelledError:
            return
        if not output.text:
            return
        start, end = item.interim_window
        await self._put(
            pb.StreamingRecognizeResponse(
                interim_result=pb.InterimResult(
                    text=output.text,
                    start_offset=duration(start),
                    end_offset=duration(end),
                    stability=float(min(1.0, max(0.0, math.exp(output.avg_logprob)))),
                )
            )
        )

    async def _decode_window(self, window: Window, arrival: float) -> None:
        if not window.has_speech:
            # Silence: nothing decoded, nothing carried over it.
            self.carried = []
            return
        if window.silence_before_seconds >= self.s.prompt_reset_silence_seconds:
            self.carried = []
        assert window.speech_start is not None and window.speech_end is not None
        audio = window.audio[window.speech_start : window.speech_end]
        prompt = self._prompt()
        output = await self.batcher.submit(
            DecodeRequest(
                audio=audio, language=self.config.language, prompt=prompt, want_words=self.config.want_words
            )
        )
        looping = output.compression_ratio > self.s.compression_ratio_threshold or _repeats(output.text)
        if (looping or not output.text) and prompt:
            # The prompt fed a loop, or made the decoder stop at once on speech VAD heard (a known
            # Whisper failure with prompts on short windows): decode again without it.
            logger.info("prompt reset", extra=log_fields(session_id=self.config.session_id, looping=looping))
            self.carried = []
            output = await self.batcher.submit(
                DecodeRequest(audio=audio, language=self.config.language, want_words=self.config.want_words)
            )
            looping = output.compression_ratio > self.s.compression_ratio_threshold or _repeats(output.text)
        self.transcript.model_seconds += output.model_seconds
        asr_metrics.record(self.model.name, "streaming", audio.size / SAMPLE_RATE, output.model_seconds)
        if looping or not output.text:
            self.carried = []
        else:
            self.carried = (self.carried + list(output.text_tokens))[-self.s.prompt_max_tokens :]
        if not output.text:
            return
        offset = (window.start_sample + window.speech_start) / SAMPLE_RATE
        segments = [segment_to_proto(segment, offset) for segment in output.segments]
        words = [word for segment in segments for word in segment.words]
        self.transcript.texts.append(output.text)
        self.transcript.segments.extend(segments)
        self.transcript.language = output.language
        event = pb.BatchProcessed(
            batch_index=self.batch_index,
            text=output.text,
            start_offset=duration(window.start_seconds),
            end_offset=duration(window.end_seconds),
            segments=segments,
            words=words,
            language=output.language,
        )
        await self._put(pb.StreamingRecognizeResponse(batch_processed=event), arrival)
        if self.insights is not None:
            found = await self.insights.on_window(
                TranscribedWindow(
                    session_id=self.config.session_id,
                    batch_index=self.batch_index,
                    text=output.text,
                    language=output.language,
                    start_seconds=window.start_seconds,
                    end_seconds=window.end_seconds,
                    segments=tuple(
                        replace(s, start=s.start + offset, end=s.end + offset) for s in output.segments
                    ),
                )
            )
            for insight in found:
                await self._put(pb.StreamingRecognizeResponse(insight=insight))
        self.batch_index += 1

    async def _finish(self, reason: int) -> None:
        c = self.config
        audio_seconds = self.windower.received_samples / SAMPLE_RATE
        if self.insights is not None:
            for insight in await self.insights.close():
                await self._put(pb.StreamingRecognizeResponse(insight=insight))
        if reason == Reason.SESSION_END_REASON_CLIENT_CLOSED:
            await self._put(
                pb.StreamingRecognizeResponse(
                    final_summary=pb.FinalSummary(
                        text=" ".join(self.transcript.texts),
                        segments=self.transcript.segments,
                        audio_duration=duration(audio_seconds),
                        batch_count=self.batch_index,
                        processing_duration=duration(self.transcript.model_seconds),
                        language=self.transcript.language,
                        model=self.model.name,
                    )
                )
            )
        logger.info(
            "stream ended",
            extra=log_fields(
                session_id=c.session_id,
                reason=Reason.Name(pb.SessionEndReason.ValueType(reason)),
                audio_seconds=round(audio_seconds, 2),
                windows=self.batch_index,
            ),
        )
        await self._put(
            pb.StreamingRecognizeResponse(
                session_ended=pb.SessionEnded(
                    session_id=c.session_id,
                    reason=pb.SessionEndReason.ValueType(reason),
                    audio_duration=duration(audio_seconds),
                )
            )
        )


__all__: Sequence[str] = ("ModelSource", "SessionConfig", "StreamingRecognizer")
