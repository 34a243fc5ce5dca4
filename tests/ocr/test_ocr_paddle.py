"""The PaddleOCR adapter against the real PaddleOCR 3.x, where a Python with it is at hand.

PaddleOCR's own models live on hubs and cannot be had here, and the CI venv does not carry Paddle, so
these run in a separate interpreter (AISTACK_OCR_PADDLE_PYTHON, default run/paddle-venv/bin/python, made by
services/ocr/setup_paddle_env.sh (which `make test` runs), with
paddleocr==3.7.0, paddlepaddle==3.3.1, onnxruntime and the kit's grpcio, grpcio-status,
googleapis-common-protos; all from PyPI) and are skipped without one. Two checks:
- with placeholder weights in the model folder, PaddleOCR takes every argument the adapter passes and
  fails only on the weights, inside the folder we named;
- with PaddleX model folders made from the PP-OCRv6 small ONNX files of the rapidocr wheel (PaddleOCR's
  onnxruntime engine), the adapter reads a rendered Portuguese/English page through PaddleOCR's real
  `predict` and parses its real result.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import ocr_testkit as kit
import pytest

REPO = Path(__file__).resolve().parents[2]
PADDLE_PYTHON = os.environ.get(
    "AISTACK_OCR_PADDLE_PYTHON", str(REPO / "run" / "paddle-venv" / "bin" / "python")
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(PADDLE_PYTHON).is_file(), reason="no Python with paddleocr (AISTACK_OCR_PADDLE_PYTHON)"
    ),
]


def run_in_paddle(script: str) -> str:
    done = subprocess.run(
        [PADDLE_PYTHON, "-c", textwrap.dedent(script)],
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("services/ocr", "kit", "gen/python")),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.stdout + done.stderr


def test_real_paddleocr_takes_our_arguments_and_fails_on_the_weights(tmp_path: Path) -> None:
    for name in ("PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "inference.yml").write_text(f"Global:\n  model_name: {name}\n")
        (folder / "inference.json").write_text("{}")
        (folder / "inference.pdiparams").write_bytes(b"not weights")
    out = run_in_paddle(
        f"""
        from pathlib import Path
        from aistack_ocr.engine import EngineLoadError
        from aistack_ocr.paddle_engine import PaddleOcrEngine, PaddleOcrSettings
        settings = PaddleOcrSettings(model_dir=Path({str(tmp_path)!r}), device="cpu", use_tensorrt=False)
        try:
            PaddleOcrEngine(settings).load()
        except EngineLoadError as exc:
            print("LOAD-ERROR", exc)
        """
    )
    # An unknown argument would be a ValueError before any model is read.
    assert "LOAD-ERROR PaddleOCR could not load the models in" in out, out[-2000:]
    assert "Unknown argument" not in out
    assert f"Creating model: ('PP-OCRv6_medium_det', '{tmp_path / 'PP-OCRv6_medium_det'}'" in out


def test_adapter_reads_a_page_through_real_paddleocr(tmp_path: Path) -> None:
    det, rec = kit.paddlex_onnx_models(tmp_path / "models")
    page = tmp_path / "page.png"
    kit.render_lines(kit.PT_EN_LINES).save(page)
    out = run_in_paddle(
        f"""
        import json
        from pathlib import Path
        import numpy as np
        from PIL import Image
        from aistack_kit import errors
        from aistack_ocr.paddle_engine import PaddleOcrEngine, PaddleOcrSettings
        settings = PaddleOcrSettings(
            model_dir=Path({str(tmp_path / "models")!r}), det_model={det!r}, rec_model={rec!r},
            device="cpu", use_tensorrt=False, inference_engine="onnxruntime",
        )
        engine = PaddleOcrEngine(settings)
        engine.load()
        image = np.asarray(Image.open({str(page)!r}).convert("RGB"))
        read = engine.read(image, detect_rotation=False)
        try:
            engine.read(image, detect_rotation=True)
            refused = None
        except errors.FailedPrecondition as exc:
            refused = exc.reason
        print("RESULT" + json.dumps({{
            "engine": engine.info.name, "width": read.width, "height": read.height,
            "rotation": read.rotation_degrees,
            "lines": [[line.text, line.confidence, line.polygon] for line in read.lines], "refused": refused,
        }}))
        """
    )
    marker = [line for line in out.splitlines() if line.startswith("RESULT")]
    assert marker, out[-3000:]
    result = json.loads(marker[0].removeprefix("RESULT"))
    assert result["engine"] == "paddleocr/pp-ocrv6_small"
    assert (result["width"], result["height"]) == kit.render_lines(kit.PT_EN_LINES).size
    assert result["rotation"] == 0
    texts = [text for text, _, _ in result["lines"]]
    assert kit.cer("\n".join(texts), "\n".join(kit.PT_EN_LINES)) <= 0.02, texts
    for _, confidence, polygon in result["lines"]:
        assert 0.5 < confidence <= 1.0 and len(polygon) == 4
    # Lines come back where they were drawn: 72 px apart from y = 60, x from 60.
    tops = [min(y for _, y in polygon) for _, _, polygon in result["lines"]]
    assert all(abs(top - (60 + 72 * i)) < 15 for i, top in enumerate(tops)), tops
    assert result["refused"] == "ROTATION_MODEL_MISSING"
