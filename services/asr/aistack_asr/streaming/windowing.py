"""Cutting a live stream into windows at pauses, with Silero VAD run incrementally.

A window closes at the first pause (at least `min_pause` of non-speech) that reaches past
`batch_window`, cut in the middle of the pause, so no word is split. With no pause by `max_window` it is
cut at the quietest 32 ms boundary between the two bounds. Cuts fall on VAD frame boundaries (512
samples), which keeps the speech probabilities of the rest of the stream aligned without re-running the
model. Only the voiced part of a window (plus a little padding) is decoded; a window without speech is
not decoded at all, which is what keeps Whisper from inventing text on silence.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import SileroVADModel, get_vad_model

SAMPLE_RATE = 16_000
FRAME = 512
_CONTEXT = 64
FRAMES_PER_SECOND = SAMPLE_RATE / FRAME
# A window needs this much voiced audio (about 100 ms) to be worth decoding.
MIN_SPEECH_FRAMES = 3


@functools.lru_cache(maxsize=1)
def shared_vad_model() -> SileroVADModel:
    # One ONNX session for every stream: InferenceSession.run is thread-safe and the state is per stream.
    model: SileroVADModel = get_vad_model()
    return model


class StreamingVad:
    """Silero v6 over a stream: speech probability per 512-sample frame, state carried across calls."""

    def __init__(self, model: SileroVADModel | None = None) -> None:
        self._session = (model or shared_vad_model()).session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, audio: np.ndarray) -> np.ndarray:
        """Probabilities of the frames this audio completes (possibly none)."""
        data = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        count = data.size // FRAME
        self._pending = data[count * FRAME :]
        if count == 0:
            return np.zeros(0, dtype=np.float32)
        frames = data[: count * FRAME].reshape(count, FRAME)
        # Each frame is preceded by the last 64 samples of the one before, as the model was trained.
        contexts = np.concatenate([self._context[None, :], frames[:-1, -_CONTEXT:]], axis=0)
        self._context = frames[-1, -_CONTEXT:].copy()
        batch = np.concatenate([contexts, frames], axis=1)
        output, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        return np.asarray(output, dtype=np.float32).reshape(-1)[:count]


@dataclass(frozen=True)
class Window:
    """A closed stretch of the stream. Sample positions are from the session start."""

    start_sample: int
    end_sample: int
    audio: np.ndarray
    # The voiced part to decode, as sample offsets inside the window; None: no speech.
    speech_start: int | None
    speech_end: int | None
    # Silence between the previous window's last speech and this window's first (inf: none before).
    silence_before_seconds: float
    cut: str  # "pause", "max" or "end"

    @property
    def has_speech(self) -> bool:
        return self.speech_start is not None

    @property
    def start_seconds(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.end_sample / SAMPLE_RATE


class Windower:
    """Accumulates a stream's audio and closes windows; one per session, one caller at a time."""

    def __init__(
        self,
        *,
        batch_window_seconds: float,
        max_window_seconds: float,
        threshold: float = 0.5,
        min_pause_seconds: float = 0.3,
        speech_pad_seconds: float = 0.3,
        vad: StreamingVad | None = None,
    ) -> None:
        self._vad = vad or StreamingVad()
        self._threshold = threshold
        self._silence_threshold = max(threshold - 0.15, 0.01)
        self._min_frames = math.ceil(batch_window_seconds * FRAMES_PER_SECOND)
        self._max_frames = max(self._min_frames, math.floor(max_window_seconds * FRAMES_PER_SECOND))
        self._pause_frames = max(2, math.ceil(min_pause_seconds * FRAMES_PER_SECOND))
        self._pad = int(speech_pad_seconds * SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []
        self._buffered = 0
        self._probs = np.zeros(0, dtype=np.float32)
        self.window_start = 0
        self._last_speech_end: int | None = None

    @property
    def received_samples(self) -> int:
        return self.window_start + self._buffered

    def _audio(self) -> np.ndarray:
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0] if self._chunks else np.zeros(0, dtype=np.float32)

    def push(self, audio: np.ndarray) -> list[Window]:
        """Adds audio; returns the windows it closed, in order."""
        if audio.size:
            self._chunks.append(audio.astype(np.float32, copy=False))
            self._buffered += audio.size
            probs = self._vad.push(audio)
            if probs.size:
                self._probs = np.concatenate([self._probs, probs])
        closed = []
        while (cut := self._find_cut()) is not None:
            frame, how = cut
            closed.append(self._close(frame * FRAME, how))
        return closed

    def flush(self) -> Window | None:
        """Closes what is left (end of stream); None when nothing was buffered."""
        if self._buffered == 0:
            return None
        return self._close(self._buffered, "end")

    def open_audio(self) -> tuple[np.ndarray, bool]:
        """The open window's audio and whether it holds speech yet (for interim hypotheses)."""
        voiced = int(np.count_nonzero(self._probs >= self._threshold)) >= MIN_SPEECH_FRAMES
        return self._audio(), voiced

    def _find_cut(self) -> tuple[int, str] | None:
        probs = self._probs
        n = probs.size
        if n < self._min_frames:
            return None
        silent = probs < self._silence_threshold
        run_start = None
        for i in range(n + 1):
            if i < n and silent[i]:
                if run_start is None:
                    run_start = i
                continue
            if run_start is not None:
                run_end = i
                length = run_end - run_start
                ongoing = i == n
                if length >= self._pause_frames and run_end >= self._min_frames:
                    middle = run_start + self._pause_frames // 2 if ongoing else (run_start + run_end) // 2
                    return min(max(middle, self._min_frames), run_end), "pause"
                run_start = None
        if n >= self._max_frames:
            return self._quietest_boundary(), "max"
        return None

    def _quietest_boundary(self) -> int:
        probs = self._probs
        audio = self._audio()
        best, best_score = self._max_frames, (math.inf, math.inf)
        for boundary in range(self._min_frames, self._max_frames + 1):
            if boundary >= probs.size:
                break
            around = audio[max(0, boundary * FRAME - 256) : boundary * FRAME + 256]
            energy = float(np.sqrt(np.mean(around**2))) if around.size else 0.0
            score = (round(float(max(probs[boundary - 1], probs[boundary])), 1), energy)
            if score < best_score:
                best, best_score = boundary, score
        return best

    def _close(self, length: int, how: str) -> Window:
        audio = self._audio()
        window_audio, rest = audio[:length], audio[length:]
        frames = min(self._probs.size, math.ceil(length / FRAME))
        window_probs = self._probs[:frames]
        self._probs = self._probs[length // FRAME :] if how != "end" else np.zeros(0, dtype=np.float32)
        voiced = np.flatnonzero(window_probs >= self._threshold)
        start = self.window_start
        speech_start = speech_end = None
        silence_before = math.inf
        if voiced.size >= MIN_SPEECH_FRAMES:
            first, last = int(voiced[0]) * FRAME, min(length, (int(voiced[-1]) + 1) * FRAME)
            speech_start = max(0, first - self._pad)
            speech_end = min(length, last + self._pad)
            if self._last_speech_end is not None:
                silence_before = (start + first - self._last_speech_end) / SAMPLE_RATE
            self._last_speech_end = start + last
        self._chunks = [rest] if rest.size else []
        self._buffered = rest.size
        self.window_start = start + length
        return Window(
            start_sample=start,
            end_sample=start + length,
            audio=window_audio,
            speech_start=speech_start,
            speech_end=speech_end,
            silence_before_seconds=silence_before,
            cut=how,
        )
