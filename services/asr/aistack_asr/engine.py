"""Whole-file transcription behind a narrow interface, and its faster-whisper implementation.

Hallucination guards (Whisper's best-known failure is inventing text on silence and noise):
- VAD gating: Silero VAD (shipped in faster-whisper) finds speech; audio outside it never reaches the
  decoder, and audio with no speech returns an empty transcript without decoding at all.
- No text carried across a silence: VAD cuts speech into regions at pauses of `silence_reset_seconds` or
  more. Consecutive regions are packed into one 30 s window when they fit (a call's short utterances then
  share one encoder pass, as faster-whisper's own VAD does) and decoded without a prompt from earlier
  text; each decode starts from the caller's initial prompt only. Only inside one long stretch of speech
  (a region longer than a window) does the previous window's text condition the next, as Whisper was
  trained to.
- Thresholds: windows whose no-speech probability is high and log-probability low are skipped by the
  decoder; segments that still fail them afterwards (or whose compression ratio shows a repetition loop)
  are dropped here.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from faster_whisper.vad import VadOptions, get_speech_timestamps

from aistack_asr.audio import SAMPLE_RATE
from aistack_asr.registry import LoadedModel

# Whisper's window: 30 s of audio per encoder pass, padded when shorter.
WINDOW_SAMPLES = 30 * SAMPLE_RATE


@dataclass(frozen=True)
class TranscribeOptions:
    # Whisper language code (`pt`); None: detect.
    language: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = True
    beam_size: int = 5
    initial_prompt: str | None = None
    hotwords: str | None = None
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class GuardSettings:
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    silence_reset_seconds: float = 2.0
    vad_threshold: float = 0.5
    # Padding kept around detected speech, so word edges are not clipped.
    speech_pad_seconds: float = 0.4


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class Segment:
    text: str
    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    # The sampling temperature of the decode that produced it; the streaming decoder is greedy only.
    temperature: float = 0.0
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    # Empty when no speech was found and none was asked for.
    language: str
    language_probability: float
    duration_seconds: float
    # Speech the decoder saw (after VAD gating).
    speech_seconds: float
    dropped_segments: int = 0
    regions: tuple[tuple[float, float], ...] = field(default=())


class TranscriptionStopped(Exception):
    """The caller gave up (cancelled, deadline); raised at the next segment so the worker is freed."""


class Transcriber(Protocol):
    """Blocking whole-file transcription; callers run it off the event loop.

    `stop`, when set, ends the work at the next segment with `TranscriptionStopped`.
    """

    def transcribe(
        self,
        model: LoadedModel,
        audio: np.ndarray,
        options: TranscribeOptions,
        stop: threading.Event | None = None,
    ) -> Transcript: ...


class FasterWhisperTranscriber:
    def __init__(self, guards: GuardSettings | None = None) -> None:
        self._guards = guards or GuardSettings()

    def speech_regions(self, audio: np.ndarray) -> list[tuple[int, int]]:
        """Sample ranges of speech, merged across pauses shorter than `silence_reset_seconds`."""
        g = self._guards
        options = VadOptions(
            threshold=g.vad_threshold,
            min_silence_duration_ms=int(g.silence_reset_seconds * 1000),
            speech_pad_ms=int(g.speech_pad_seconds * 1000),
        )
        return [(int(c["start"]), int(c["end"])) for c in get_speech_timestamps(audio, options, SAMPLE_RATE)]

    def pack(self, regions: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """Consecutive regions grouped so that each group's speech fits one 30 s window.

        A short region alone would cost a whole (padded) 30 s encoder pass; packed, several utterances of a
        call share one pass, as faster-whisper's own VAD does. A region longer than a window is its own group.
        """
        groups: list[list[tuple[int, int]]] = []
        size = 0
        for start, end in regions:
            if groups and size + (end - start) <= WINDOW_SAMPLES:
                groups[-1].append((start, end))
                size += end - start
            else:
                groups.append([(start, end)])
                size = end - start
        return groups

    def transcribe(
        self,
        model: LoadedModel,
        audio: np.ndarray,
        options: TranscribeOptions,
        stop: threading.Event | None = None,
    ) -> Transcript:
        duration = audio.size / SAMPLE_RATE
        regions = self.speech_regions(audio) if options.vad_filter else [(0, audio.size)]
        language = options.language if model.multilingual else "en"
        language_probability = 1.0 if language else 0.0
        segments: list[Segment] = []
        dropped = 0
        for group in self.pack(regions):
            timeline = _Timeline(group)
            # Decoded text becomes the prompt of the next 30 s window only inside one long stretch of
            # speech; packed utterances (separated by pauses) never prompt each other.
            carry = len(group) == 1
            found, info = self._decode(model, timeline.audio(audio), options, language, carry, stop)
            if language is None:
                # Detected once, on the first speech; later groups are decoded in the same language
                # so that one noisy stretch cannot switch the transcript's language.
                language, language_probability = info.language, float(info.language_probability)
            for segment in found:
                if self.fails_guards(segment):
                    dropped += 1
                    continue
                segments.append(timeline.restore(segment, duration))
        return Transcript(
            text=" ".join(s.text for s in segments if s.text),
            segments=tuple(segments),
            language=language or "",
            language_probability=language_probability,
            duration_seconds=duration,
            speech_seconds=sum(end - start for start, end in regions) / SAMPLE_RATE,
            dropped_segments=dropped,
            regions=tuple((s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in regions),
        )

    def _decode(
        self,
        model: LoadedModel,
        audio: np.ndarray,
        options: TranscribeOptions,
        language: str | None,
        carry: bool,
        stop: threading.Event | None,
    ) -> tuple[list[Segment], _Info]:
        g = self._guards
        found, info = model.whisper.transcribe(
            audio,
            language=language,
            beam_size=options.beam_size,
            temperature=list(options.temperatures),
            compression_ratio_threshold=g.compression_ratio_threshold,
            log_prob_threshold=g.log_prob_threshold,
            no_speech_threshold=g.no_speech_threshold,
            condition_on_previous_text=carry,
            initial_prompt=options.initial_prompt or None,
            hotwords=options.hotwords or None,
            word_timestamps=options.word_timestamps,
            vad_filter=False,
        )
        segments = []
        # faster-whisper decodes lazily, window by window: checking between segments frees the worker
        # soon after the caller is gone.
        for s in found:
            if stop is not None and stop.is_set():
                raise TranscriptionStopped
            segments.append(
                Segment(
                    text=s.text.strip(),
                    start=float(s.start),
                    end=float(s.end),
                    avg_logprob=float(s.avg_logprob),
                    no_speech_prob=float(s.no_speech_prob),
                    compression_ratio=float(s.compression_ratio),
                    temperature=float(s.temperature or 0.0),
                    words=tuple(
                        Word(w.word.strip(), float(w.start), float(w.end), float(w.probability))
                        for w in (s.words or ())
                    ),
                )
            )
        return segments, _Info(info.language, float(info.language_probability))

    def fails_guards(self, segment: Segment) -> bool:
        """Segments to drop: repetition loops, and text on audio the model itself rates as non-speech."""
        g = self._guards
        if not segment.text:
            return True
        if segment.compression_ratio > g.compression_ratio_threshold:
            return True
        if segment.no_speech_prob <= g.no_speech_threshold:
            return False
        # Likely non-speech: keep the text only if greedy decoding was confident about it. Text that
        # needed temperature sampling on such audio is what Whisper invents on noise.
        return segment.avg_logprob < g.log_prob_threshold or segment.temperature > 0.0


@dataclass(frozen=True)
class _Info:
    language: str
    language_probability: float


class _Timeline:
    """Speech regions joined end to end for one decode, and the way back to times in the original audio."""

    def __init__(self, regions: list[tuple[int, int]]) -> None:
        self._regions = regions
        # Start of each region in the joined audio (seconds) and in the original audio (seconds).
        self._joined: list[float] = []
        self._original: list[float] = []
        self._lengths: list[float] = []
        position = 0
        for start, end in regions:
            self._joined.append(position / SAMPLE_RATE)
            self._original.append(start / SAMPLE_RATE)
            self._lengths.append((end - start) / SAMPLE_RATE)
            position += end - start

    def audio(self, audio: np.ndarray) -> np.ndarray:
        if len(self._regions) == 1:
            start, end = self._regions[0]
            return audio[start:end]
        return np.concatenate([audio[start:end] for start, end in self._regions])

    def time(self, joined: float, *, end: bool = False) -> float:
        # An end time exactly on a join belongs to the region before it, a start time to the one after.
        index = (bisect_left if end else bisect_right)(self._joined, joined) - 1
        index = max(index, 0)
        return self._original[index] + min(max(joined - self._joined[index], 0.0), self._lengths[index])

    def restore(self, segment: Segment, duration: float) -> Segment:
        """Times in the original audio, kept inside it and in order."""
        start = min(self.time(segment.start), duration)
        words: list[Word] = []
        last = start
        for w in segment.words:
            word_start = max(min(self.time(w.start), duration), last)
            word_end = max(min(self.time(w.end, end=True), duration), word_start)
            words.append(Word(w.word, word_start, word_end, w.probability))
            last = word_end
        return Segment(
            text=segment.text,
            start=start,
            end=max(min(self.time(segment.end, end=True), duration), last),
            avg_logprob=segment.avg_logprob,
            no_speech_prob=segment.no_speech_prob,
            compression_ratio=segment.compression_ratio,
            temperature=segment.temperature,
            words=tuple(words),
        )


def words_of(segments: Sequence[Segment]) -> list[Word]:
    return [w for s in segments for w in s.words]
