"""The narrow interface every synthesis engine implements, and the errors engines raise."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]
# Speaker conditioning of a cloned voice, as named arrays (stored as .npz, never pickled).
Conditioning = Mapping[str, npt.NDArray[np.float32]]


@dataclass(frozen=True)
class BuiltinVoice:
    voice_id: str
    display_name: str
    languages: tuple[str, ...]


@dataclass(frozen=True)
class VoiceRef:
    """What an engine needs to speak with a voice: a built-in id, or a cloned voice's conditioning."""

    voice_id: str
    conditioning: Conditioning | None = field(default=None)


class CloningUnsupported(Exception):
    """The engine has no voice cloning."""


class Engine(Protocol):
    """One synthesis backend. Every method but `name`/`can_clone` may block: callers use a thread."""

    @property
    def name(self) -> str:
        """`piper`, `espeak-ng`, `xtts-v2`: reported in Voice.engine and metric labels."""

    @property
    def can_clone(self) -> bool: ...

    @property
    def clone_languages(self) -> tuple[str, ...]:
        """Languages a cloned voice of this engine speaks (empty when it cannot clone)."""

    def load(self) -> None:
        """Loads weights; raises with a message naming what is missing."""

    def voices(self) -> Sequence[BuiltinVoice]: ...

    def sample_rate(self, voice: VoiceRef) -> int: ...

    def synthesize(
        self, text: str, voice: VoiceRef, language: str, speaking_rate: float
    ) -> Iterator[FloatAudio]:
        """Speaks one sentence (already normalized) as float32 mono chunks in [-1, 1] at `sample_rate`.

        Chunks come as soon as the engine has them (XTTS streams inside a sentence)."""

    def clone(self, reference: FloatAudio, sample_rate: int) -> Conditioning:
        """Speaker conditioning from reference speech; raises CloningUnsupported if it cannot clone."""

    def close(self) -> None: ...
