"""espeak-ng (formant synthesis, a subprocess): the embedded Portuguese voice."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence

import numpy as np

from aistack_tts.engines.base import BuiltinVoice, CloningUnsupported, Conditioning, FloatAudio, VoiceRef

# espeak-ng's own default speed, in words per minute.
_DEFAULT_WPM = 175
_SAMPLE_RATE = 22050


class EspeakEngine:
    """espeak-ng voices, one per (voice id, espeak voice name, language)."""

    name = "espeak-ng"
    can_clone = False
    clone_languages: tuple[str, ...] = ()

    def __init__(self, binary: str, voices: Sequence[tuple[BuiltinVoice, str]]) -> None:
        self._binary = binary
        self._voices = {voice.voice_id: (voice, espeak_name) for voice, espeak_name in voices}
        self._path: str | None = None

    def load(self) -> None:
        self._path = shutil.which(self._binary)
        if self._path is None:
            raise FileNotFoundError(f"espeak-ng binary not found: {self._binary} (apt-get install espeak-ng)")
        # Fails here, not on the first request, if the voice data is missing.
        for _, espeak_name in self._voices.values():
            self._run("ok", espeak_name, _DEFAULT_WPM)

    def voices(self) -> Sequence[BuiltinVoice]:
        return [voice for voice, _ in self._voices.values()]

    def sample_rate(self, voice: VoiceRef) -> int:
        return _SAMPLE_RATE

    def synthesize(
        self, text: str, voice: VoiceRef, language: str, speaking_rate: float
    ) -> Iterator[FloatAudio]:
        _, espeak_name = self._voices[voice.voice_id]
        yield self._run(text, espeak_name, round(_DEFAULT_WPM * speaking_rate))

    def _run(self, text: str, espeak_name: str, wpm: int) -> FloatAudio:
        if self._path is None:
            raise RuntimeError("EspeakEngine.load() was not called")
        # Text on stdin (never argv: a leading "-" would be read as an option); -b 1: UTF-8 input.
        result = subprocess.run(
            [self._path, "-v", espeak_name, "-s", str(max(80, min(wpm, 450))), "-b", "1", "--stdin",
             "--stdout"],
            input=text.encode(),
            capture_output=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"espeak-ng failed ({result.returncode}): {result.stderr.decode()[:200]}")
        return _wav_samples(result.stdout)

    def clone(self, reference: FloatAudio, sample_rate: int) -> Conditioning:
        raise CloningUnsupported("espeak-ng is a formant synthesizer; it cannot clone a voice")

    def close(self) -> None:
        pass


def _wav_samples(data: bytes) -> FloatAudio:
    # espeak-ng writes a streaming header (sizes 0x7FFFFFFF): take everything after the data chunk id.
    position = data.find(b"data")
    if data[:4] != b"RIFF" or position < 0:
        raise RuntimeError("espeak-ng wrote no WAV data")
    pcm = data[position + 8 :]
    pcm = pcm[: len(pcm) - len(pcm) % 2]
    return (np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0).astype(np.float32)
