"""The narrow interface every OCR engine implements, and the domain types it returns.

An engine reads one upright-or-rotated page image; everything about documents (PDF pages, text layers,
limits, reading order, threads) lives outside it, so RapidOCR and PaddleOCR are swapped by configuration
and a test can hand the pipeline any engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

# RGB, uint8, height x width x 3.
Image = npt.NDArray[np.uint8]
# Corners of a text region, clockwise from top-left, in pixels of the (rotated) page image.
Polygon = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class EngineLine:
    """A text line as an engine found it (not yet in reading order)."""

    text: str
    confidence: float
    polygon: Polygon


@dataclass(frozen=True)
class EnginePage:
    """What an engine read on one page image.

    `rotation_degrees` is the clockwise rotation the engine applied to make the page upright (0, 90, 180,
    270); `width`/`height` and every polygon refer to that upright image.
    """

    lines: list[EngineLine]
    width: int
    height: int
    rotation_degrees: int = 0


@dataclass(frozen=True)
class EngineInfo:
    """Identity of a loaded engine, reported with every response."""

    # `rapidocr/pp-ocrv6-small`, `paddleocr/pp-ocrv6-medium`.
    name: str
    # Language codes the loaded recognition model reads (`pt`, `en`, ...).
    languages: frozenset[str] = field(default_factory=frozenset)


class OcrEngine(Protocol):
    """One OCR model stack. `read` may be called from several worker threads at once."""

    @property
    def info(self) -> EngineInfo: ...

    def load(self) -> None:
        """Loads (and warms) the models; raises `EngineLoadError` naming what is missing."""

    def read(self, image: Image, *, detect_rotation: bool) -> EnginePage:
        """Reads one page image. With `detect_rotation`, undoes page rotation (90/180/270) first."""

    def close(self) -> None:
        """Frees the models."""


class EngineLoadError(RuntimeError):
    """The engine cannot start: a package, a model folder or a model file is missing or wrong."""
