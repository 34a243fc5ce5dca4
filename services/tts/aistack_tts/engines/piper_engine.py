"""Piper (VITS, ONNX): the embedded neural English voice."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from aistack_tts.engines.base import BuiltinVoice, CloningUnsupported, Conditioning, FloatAudio, VoiceRef


class PiperEngine:
    """One Piper voice file (`.onnx` + `.onnx.json`) speaking one language."""

    name = "piper"
    can_clone = False
    clone_languages: tuple[str, ...] = ()

    def __init__(self, model_path: Path, voice: BuiltinVoice) -> None:
        self._model_path = model_path
        self._voice = voice
        self._piper: object | None = None
        self._rate = 22050

    def load(self) -> None:
        from piper import PiperVoice  # type: ignore[import-untyped, unused-ignore]

        if not self._model_path.is_file():
            raise FileNotFoundError(f"Piper voice model not found: {self._model_path}")
        piper = PiperVoice.load(self._model_path)
        self._rate = int(piper.config.sample_rate)
        self._piper = piper

    def voices(self) -> Sequence[BuiltinVoice]:
        return (self._voice,)

    def sample_rate(self, voice: VoiceRef) -> int:
        return self._rate

    def synthesize(
        self, text: str, voice: VoiceRef, language: str, speaking_rate: float
    ) -> Iterator[FloatAudio]:
        from piper import SynthesisConfig

        if self._piper is None:
            raise RuntimeError("PiperEngine.load() was not called")
        # length_scale stretches phoneme durations: rate 2 = half as long. Peak-normalized per sentence
        # by Piper; 0.9 leaves headroom for the lossy encoders.
        config = SynthesisConfig(length_scale=1.0 / speaking_rate, volume=0.9)
        for chunk in self._piper.synthesize(text, config):  # type: ignore[attr-defined]
            yield np.asarray(chunk.audio_float_array, dtype=np.float32)

    def clone(self, reference: FloatAudio, sample_rate: int) -> Conditioning:
        raise CloningUnsupported("Piper voices are fixed; it cannot clone a voice")

    def close(self) -> None:
        self._piper = None
