"""PaddleOCR 3.x: the production engine (GPU, TensorRT), with models from the model folder only.

Written against PaddleOCR 3.x's `PaddleOCR(...)` / `.predict(...)` API (`paddleocr/_pipelines/ocr.py`):
model names and directories per module, `device`, `use_tensorrt`, `precision`; `predict` returns one
result per image with parallel `rec_texts` / `rec_scores` / `rec_polys` and, when the document
preprocessor runs, `doc_preprocessor_res` (`angle`, `output_img`).

PaddleOCR downloads any model whose directory is not given, so every directory is given and checked
before PaddleOCR is even imported: a missing folder is a start-up error naming it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from aistack_kit import errors
from aistack_kit.logs import log_fields

from aistack_ocr.engine import EngineInfo, EngineLine, EngineLoadError, EnginePage, Image
from aistack_ocr.rapid_engine import rotate_clockwise

logger = logging.getLogger("aistack.ocr.paddleocr")

# A PaddleX inference model folder (PaddleOCR 3.x) holds `inference.yml` and either Paddle's graph
# (`inference.json`, PIR, or the older `inference.pdmodel`) with `inference.pdiparams`, or, for
# PaddleX's onnxruntime engine, `inference.onnx`.
_PADDLE_GRAPHS = ("inference.json", "inference.pdmodel")
INFERENCE_ENGINES = ("", "paddle", "paddle_static", "onnxruntime")


@dataclass(frozen=True)
class PaddleOcrSettings:
    # The deployment's model folder: one sub-folder per model, named after it (`PP-OCRv6_medium_det/`).
    model_dir: Path
    det_model: str = "PP-OCRv6_medium_det"
    rec_model: str = "PP-OCRv6_medium_rec"
    # Optional: without them, requests that ask for rotation detection are refused.
    textline_orientation_model: str = "PP-LCNet_x1_0_textline_ori"
    doc_orientation_model: str = "PP-LCNet_x1_0_doc_ori"
    device: str = "gpu:0"
    # PaddleX inference engine; "": PaddleOCR's default (Paddle Inference, with TensorRT when asked).
    inference_engine: str = ""
    use_tensorrt: bool = True
    precision: str = "fp16"
    # Languages the installed recognition model reads (PP-OCRv6 reads the Latin script, pt and en among it).
    languages: frozenset[str] = frozenset({"pt", "en"})
    min_score: float = 0.5


def _model_problem(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"model folder {folder} does not exist"
    missing = [] if (folder / "inference.yml").is_file() else ["inference.yml"]
    if not (folder / "inference.onnx").is_file():
        if not (folder / "inference.pdiparams").is_file():
            missing.append("inference.pdiparams")
        if not any((folder / name).is_file() for name in _PADDLE_GRAPHS):
            missing.append(" or ".join(_PADDLE_GRAPHS))
    if missing:
        return f"model folder {folder} lacks {', '.join(missing)}"
    return None


def _angle(result: Any) -> int:
    preprocessed = result.get("doc_preprocessor_res") if hasattr(result, "get") else None
    if not preprocessed:
        return 0
    angle = int(preprocessed.get("angle", -1))
    return angle if angle in (0, 90, 180, 270) else 0


class PaddleOcrEngine:
    """PaddleOCR behind `OcrEngine`. Paddle predictors are not safe to share across threads: calls to
    `read` take turns (for more throughput on one GPU, run more replicas)."""

    def __init__(self, settings: PaddleOcrSettings) -> None:
        self._settings = settings
        self._ocr: Any = None
        self._lock = threading.Lock()
        self._can_rotate = False
        family = settings.rec_model.removesuffix("_rec").lower()
        self._info = EngineInfo(name=f"paddleocr/{family}", languages=settings.languages)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def _folder(self, model: str) -> Path:
        return self._settings.model_dir / model

    def preflight(self) -> None:
        """Everything that can be checked without importing Paddle: the folders and the packages."""
        settings = self._settings
        if not settings.model_dir.is_dir():
            raise EngineLoadError(
                f"PaddleOCR model folder {settings.model_dir} does not exist (AISTACK_OCR_PADDLE_MODEL_DIR); "
                f"it must hold {settings.det_model}/ and {settings.rec_model}/"
            )
        for variable, model in (
            ("AISTACK_OCR_PADDLE_DET_MODEL", settings.det_model),
            ("AISTACK_OCR_PADDLE_REC_MODEL", settings.rec_model),
        ):
            problem = _model_problem(self._folder(model))
            if problem:
                raise EngineLoadError(f"PaddleOCR {problem} (model {model}, {variable})")
        for package, hint in (
            ("paddleocr", "pip install paddleocr==3.7.0"),
            ("paddle", "install the paddlepaddle-gpu build for this CUDA (or paddlepaddle for CPU)"),
        ):
            if importlib.util.find_spec(package) is None:
                raise EngineLoadError(f"the {package} package is not installed: {hint}")

    def load(self) -> None:
        self.preflight()
        settings = self._settings
        # PaddleX probes model hosters when imported; every model here comes from the folder.
        os.environ.setdefault("PADDLE_PDX_DISABLE_MODEL_SOURCE_CHECK", "True")
        try:
            from paddleocr import PaddleOCR  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise EngineLoadError(f"cannot import paddleocr: {exc}") from exc
        kwargs: dict[str, Any] = {
            "text_detection_model_name": settings.det_model,
            "text_detection_model_dir": str(self._folder(settings.det_model)),
            "text_recognition_model_name": settings.rec_model,
            "text_recognition_model_dir": str(self._folder(settings.rec_model)),
            "text_rec_score_thresh": settings.min_score,
            "use_doc_unwarping": False,
            "device": settings.device,
            "use_tensorrt": settings.use_tensorrt,
            "precision": settings.precision,
        }
        if settings.inference_engine:
            kwargs["engine"] = settings.inference_engine
        orientation = {
            "textline_orientation": settings.textline_orientation_model,
            "doc_orientation_classify": settings.doc_orientation_model,
        }
        problems = {key: _model_problem(self._folder(model)) for key, model in orientation.items()}
        self._can_rotate = not any(problems.values())
        for key, model in orientation.items():
            if self._can_rotate:
                kwargs[f"{key}_model_name"] = model
                kwargs[f"{key}_model_dir"] = str(self._folder(model))
            # Loaded at start when present so that each request can switch it on; never fetched.
            kwargs[f"use_{key}"] = self._can_rotate
        if not self._can_rotate:
            logger.warning(
                "rotation detection disabled: %s", "; ".join(p for p in problems.values() if p is not None)
            )
        try:
            self._ocr = PaddleOCR(**kwargs)
        except Exception as exc:
            raise EngineLoadError(
                f"PaddleOCR could not load the models in {settings.model_dir} "
                f"(device {settings.device}, tensorrt {settings.use_tensorrt}): {exc}"
            ) from exc
        logger.info(
            "paddleocr loaded", extra=log_fields(model_dir=str(settings.model_dir), device=settings.device)
        )

    def read(self, image: Image, *, detect_rotation: bool) -> EnginePage:
        if self._ocr is None:
            raise EngineLoadError("PaddleOCR engine used before load()")
        if detect_rotation and not self._can_rotate:
            raise errors.FailedPrecondition(
                "rotation detection needs the orientation models "
                f"{self._settings.doc_orientation_model} and {self._settings.textline_orientation_model} "
                f"in {self._settings.model_dir}",
                reason="ROTATION_MODEL_MISSING",
            )
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        with self._lock:
            results = self._ocr.predict(
                bgr,
                use_doc_orientation_classify=detect_rotation,
                use_textline_orientation=detect_rotation,
                use_doc_unwarping=False,
            )
        if not results:
            height, width = image.shape[:2]
            return EnginePage(lines=[], width=int(width), height=int(height))
        result = results[0]
        # PaddleX turns the page counter-clockwise by `angle` (cv2.getRotationMatrix2D) before reading, and
        # its polygons refer to that turned image; our convention counts the same turn clockwise.
        rotation = (360 - _angle(result)) % 360 if detect_rotation else 0
        upright = rotate_clockwise(image, rotation)
        lines = [
            EngineLine(
                text=str(text), confidence=float(score), polygon=tuple((float(x), float(y)) for x, y in poly)
            )
            for text, score, poly in zip(
                result["rec_texts"], result["rec_scores"], result["rec_polys"], strict=True
            )
            if str(text).strip()
        ]
        height, width = upright.shape[:2]
        return EnginePage(lines=lines, width=int(width), height=int(height), rotation_degrees=rotation)

    def close(self) -> None:
        if self._ocr is not None and hasattr(self._ocr, "close"):
            self._ocr.close()
        self._ocr = None
