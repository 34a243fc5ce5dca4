"""RapidOCR: the PP-OCR family as ONNX on onnxruntime, the embedded default.

The `rapidocr` wheel ships three models (PP-OCRv6 small detection and recognition, the mobile 0/180
text-line classifier). RapidOCR downloads a model whenever its config names no `model_path`, so every
model path is set explicitly and each file's SHA-256 is checked at start-up: the service never reaches
the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aistack_ocr.engine import EngineInfo, EngineLine, EngineLoadError, EnginePage, Image

logger = logging.getLogger("aistack.ocr.rapidocr")

# The files rapidocr==3.10.0 ships in rapidocr/models, with their digests. Another version of the wheel
# fails start-up here instead of reading with models nobody checked.
SHIPPED_MODELS = {
    "det": ("PP-OCRv6_det_small.onnx", "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    "rec": ("PP-OCRv6_rec_small.onnx", "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"),
    "cls": (
        "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    ),
}

# Languages the PP-OCRv6 small recognizer reads (RapidOCR's own list for it, as ISO codes where it uses
# names), so a request for `pt,en` is checked against what the model can do.
_NAME_TO_CODE = {"french": "fr", "german": "de", "japan": "ja", "ch": "zh", "chinese_cht": "zh"}

# A crop votes "upside down" only when the classifier is this sure.
_FLIP_SCORE = 0.9
# Crops classified per page to decide its orientation: the longest lines say enough.
_ORIENTATION_SAMPLE = 12
# Darkest channel below this is ink (colored and light-gray text included); margin kept around it.
_INK_LEVEL = 235
_MARGIN = 48


@dataclass(frozen=True)
class RapidOcrSettings:
    # Folder holding the three ONNX files; None: the rapidocr wheel's own `models` folder.
    model_dir: Path | None = None
    # onnxruntime intra-op threads per session; 0: onnxruntime's default (all cores).
    threads: int = 0
    # Run on onnxruntime's CUDA provider (needs onnxruntime-gpu).
    use_cuda: bool = False
    # Pages are scaled down to this longest side before detection.
    max_side_pixels: int = 2000
    # Lines read with a lower score are dropped.
    min_score: float = 0.5


def shipped_model_dir() -> Path:
    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise EngineLoadError(
            "the rapidocr package is not installed: pip install -r requirements/ocr.txt (rapidocr==3.10.0)"
        )
    return Path(spec.origin).parent / "models"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _side_lengths(box: Any) -> tuple[float, float]:
    corners = np.asarray(box, dtype=np.float64)
    width = float(np.linalg.norm(corners[1] - corners[0]))
    height = float(np.linalg.norm(corners[3] - corners[0]))
    return width, height


def ink_box(image: Image) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around every non-background pixel plus a margin; None: a blank page."""
    ink = image.min(axis=2) < _INK_LEVEL
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        return None
    columns = np.flatnonzero(ink.any(axis=0))
    height, width = ink.shape
    return (
        max(int(columns[0]) - _MARGIN, 0),
        max(int(rows[0]) - _MARGIN, 0),
        min(int(columns[-1]) + 1 + _MARGIN, width),
        min(int(rows[-1]) + 1 + _MARGIN, height),
    )


def rotate_clockwise(image: Image, degrees: int) -> Image:
    """The image turned clockwise by a multiple of 90 degrees."""
    turns = (degrees // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=-turns)) if turns else image


class RapidOcrEngine:
    """RapidOCR behind `OcrEngine`. `read` is safe from several threads: it never changes RapidOCR's
    settings per call (RapidOCR stores per-call overrides on the instance), and onnxruntime sessions
    may run concurrently."""

    def __init__(self, settings: RapidOcrSettings | None = None) -> None:
        self._settings = settings or RapidOcrSettings()
        self._reader: Any = None
        self._detector: Any = None
        self._classifier: Any = None
        self._info = EngineInfo(name="rapidocr/pp-ocrv6-small")

    @property
    def info(self) -> EngineInfo:
        return self._info

    def _model_paths(self) -> dict[str, Path]:
        folder = self._settings.model_dir or shipped_model_dir()
        if not folder.is_dir():
            raise EngineLoadError(
                f"RapidOCR model folder {folder} does not exist (AISTACK_OCR_RAPID_MODEL_DIR)"
            )
        paths = {}
        for role, (name, expected) in SHIPPED_MODELS.items():
            path = folder / name
            if not path.is_file():
                raise EngineLoadError(f"RapidOCR {role} model {path} is missing")
            actual = _sha256(path)
            if actual != expected:
                raise EngineLoadError(
                    f"RapidOCR {role} model {path} has SHA-256 {actual}, expected {expected}: "
                    "install rapidocr==3.10.0 or update the manifest in rapid_engine.py"
                )
            paths[role] = path
        return paths

    def _params(self, paths: dict[str, Path], *, det: bool, cls: bool, rec: bool) -> dict[str, Any]:
        settings = self._settings
        params: dict[str, Any] = {
            "Global.log_level": "error",
            "Global.use_det": det,
            "Global.use_cls": cls,
            "Global.use_rec": rec,
            "Global.max_side_len": settings.max_side_pixels,
            "Global.text_score": settings.min_score,
            "Det.model_path": str(paths["det"]),
            "Cls.model_path": str(paths["cls"]),
            "Rec.model_path": str(paths["rec"]),
            "EngineConfig.onnxruntime.use_cuda": settings.use_cuda,
        }
        if settings.threads:
            params["EngineConfig.onnxruntime.intra_op_num_threads"] = settings.threads
        return params

    def load(self) -> None:
        try:
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise EngineLoadError(
                f"cannot import rapidocr ({exc}): pip install -r requirements/ocr.txt"
            ) from exc
        paths = self._model_paths()
        # Three instances because RapidOCR picks its stages per instance: the reader (detect + recognize),
        # and, for rotation detection, a detector and a 0/180 classifier.
        self._reader = RapidOCR(params=self._params(paths, det=True, cls=False, rec=True))
        self._detector = RapidOCR(params=self._params(paths, det=True, cls=False, rec=False))
        self._classifier = RapidOCR(params=self._params(paths, det=False, cls=True, rec=False))
        languages = frozenset(
            _NAME_TO_CODE.get(name, name)
            for name in RapidOCR.list_supported_langs("rec", "PP-OCRv6", "small")  # type: ignore[no-untyped-call]
        )
        self._info = EngineInfo(name="rapidocr/pp-ocrv6-small", languages=languages)
        # RapidOCR builds its onnxruntime sessions on first use; do it now so the first caller does not pay.
        warm = np.full((64, 256, 3), 255, dtype=np.uint8)
        self._reader(warm)
        self._detector(warm)
        self._classifier(warm)
        logger.info("rapidocr loaded from %s", paths["det"].parent)

    def read(self, image: Image, *, detect_rotation: bool) -> EnginePage:
        if self._reader is None:
            raise EngineLoadError("RapidOCR engine used before load()")
        # PP-OCRv6 small's detector misses a lone short line on a large, otherwise blank page (its
        # probability map stays near 0); reading only the inked part of the page avoids that, and saves
        # the detector the margins. A blank page is not read at all.
        box = ink_box(image)
        rotation = 0
        if detect_rotation and box is not None:
            rotation = self._orientation(image[box[1] : box[3], box[0] : box[2]])
        upright = rotate_clockwise(image, rotation)
        height, width = upright.shape[:2]
        box = ink_box(upright) if rotation else box
        if box is None:
            return EnginePage(lines=[], width=int(width), height=int(height), rotation_degrees=rotation)
        left, top, right, bottom = box
        # RapidOCR takes OpenCV's BGR order for arrays.
        result = self._reader(np.ascontiguousarray(upright[top:bottom, left:right, ::-1]))
        lines: list[EngineLine] = []
        if getattr(result, "txts", None) is not None and result.boxes is not None:
            for corners, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
                if text.strip():
                    polygon = tuple((float(x) + left, float(y) + top) for x, y in corners)
                    lines.append(EngineLine(text=text, confidence=float(score), polygon=polygon))
        return EnginePage(lines=lines, width=int(width), height=int(height), rotation_degrees=rotation)

    def _orientation(self, image: Image) -> int:
        """Clockwise degrees that make the page upright.

        Text lines are far wider than tall; on a page turned by 90 degrees the detector's boxes stand
        upright. Which way up is then the 0/180 classifier's vote over the longest lines.
        """
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        detected = self._detector(bgr)
        boxes = getattr(detected, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return 0
        sides = [_side_lengths(box) for box in boxes]
        elongated = [(w, h) for w, h in sides if max(w, h) >= 2 * min(w, h)]
        standing = sum(1 for w, h in elongated if h > w)
        base = 90 if elongated and standing > len(elongated) / 2 else 0
        order = sorted(range(len(boxes)), key=lambda i: -max(sides[i]))[:_ORIENTATION_SAMPLE]
        flips = votes = 0
        for index in order:
            corners = np.asarray(boxes[index])
            x0, y0 = np.floor(corners.min(axis=0)).astype(int)
            x1, y1 = np.ceil(corners.max(axis=0)).astype(int)
            crop = bgr[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)]
            if crop.size == 0:
                continue
            crop = rotate_clockwise(crop, base)
            if crop.shape[0] > crop.shape[1] * 1.5:
                continue  # not a text line in this orientation: no vote
            classified = self._classifier(crop)
            results = getattr(classified, "cls_res", None) or []
            if not results:
                continue
            label, score = results[0]
            votes += 1
            if label == "180" and float(score) >= _FLIP_SCORE:
                flips += 1
        if votes and flips > votes / 2:
            base += 180
        return base % 360

    def close(self) -> None:
        self._reader = self._detector = self._classifier = None
