"""Start-up configuration: bad settings and missing models stop the service with a message naming them.
(PaddleOCR itself, where a Python with it is at hand: test_ocr_paddle.py.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aistack_kit.config import ConfigError, Env
from aistack_ocr.app import OcrSettings, build_engine
from aistack_ocr.engine import EngineLoadError
from aistack_ocr.paddle_engine import PaddleOcrEngine
from aistack_ocr.rapid_engine import SHIPPED_MODELS, RapidOcrEngine, RapidOcrSettings, shipped_model_dir

DET, REC = "PP-OCRv6_medium_det", "PP-OCRv6_medium_rec"


def _fake_model(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "inference.yml").write_text(f"Global:\n  model_name: {folder.name}\n")
    (folder / "inference.json").write_text("{}")
    (folder / "inference.pdiparams").write_bytes(b"not weights")


def paddle_env(model_dir: Path) -> Env:
    return Env({"AISTACK_OCR_ENGINE": "paddleocr", "AISTACK_OCR_PADDLE_MODEL_DIR": str(model_dir)})


def test_defaults_follow_the_mode() -> None:
    assert OcrSettings.from_env(Env({})).engine == "rapidocr"
    production = OcrSettings.from_env(Env({"AISTACK_MODE": "production"}))
    assert production.engine == "paddleocr"
    assert production.paddle.use_tensorrt is True and production.paddle.device == "gpu:0"
    assert production.paddle.model_dir == Path("/srv/models/paddleocr")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AISTACK_OCR_ENGINE": "tesseract"}, "AISTACK_OCR_ENGINE"),
        ({"AISTACK_OCR_MAX_PAGES": "0"}, "AISTACK_OCR_MAX_PAGES"),
        ({"AISTACK_OCR_MAX_UPLOAD_BYTES": str(100 * 1024 * 1024)}, "AISTACK_MAX_MESSAGE_BYTES"),
        ({"AISTACK_OCR_DPI": "900"}, "AISTACK_OCR_DPI"),
        ({"AISTACK_OCR_PADDLE_TENSORRT": "maybe"}, "AISTACK_OCR_PADDLE_TENSORRT"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        OcrSettings.from_env(Env(env))


def test_missing_paddle_model_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError) as caught:
        build_engine(OcrSettings.from_env(paddle_env(missing)))
    message = str(caught.value)
    assert str(missing) in message and "AISTACK_OCR_PADDLE_MODEL_DIR" in message
    assert DET in message and REC in message


def test_missing_recognition_model_is_named(tmp_path: Path) -> None:
    _fake_model(tmp_path / DET)
    (tmp_path / REC).mkdir()
    with pytest.raises(ConfigError) as caught:
        build_engine(OcrSettings.from_env(paddle_env(tmp_path)))
    message = str(caught.value)
    assert str(tmp_path / REC) in message and "AISTACK_OCR_PADDLE_REC_MODEL" in message
    assert "inference.yml" in message and "inference.pdiparams" in message


def test_missing_paddle_package_is_named(tmp_path: Path) -> None:
    if _importable("paddleocr"):
        pytest.skip("paddleocr is installed in this environment")
    _fake_model(tmp_path / DET)
    _fake_model(tmp_path / REC)
    with pytest.raises(ConfigError, match="paddleocr package is not installed"):
        build_engine(OcrSettings.from_env(paddle_env(tmp_path)))


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_process_exits_with_the_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AISTACK_OCR_ENGINE": "paddleocr",
        "AISTACK_OCR_PADDLE_MODEL_DIR": str(tmp_path / "models"),
        "AISTACK_GRPC_PORT": "0",
    }
    done = subprocess.run(
        [sys.executable, "-m", "aistack_ocr"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "configuration error" in done.stderr and str(tmp_path / "models") in done.stderr


def test_rapidocr_refuses_a_model_file_it_did_not_ship(tmp_path: Path) -> None:
    for name, _ in SHIPPED_MODELS.values():
        shutil.copy(shipped_model_dir() / name, tmp_path / name)
    rec = tmp_path / SHIPPED_MODELS["rec"][0]
    rec.write_bytes(rec.read_bytes()[:-1] + b"\x00")
    with pytest.raises(EngineLoadError, match="SHA-256"):
        RapidOcrEngine(RapidOcrSettings(model_dir=tmp_path)).load()


def test_paddle_engine_identity() -> None:
    engine = PaddleOcrEngine(OcrSettings.from_env(paddle_env(Path("/srv/models/paddleocr"))).paddle)
    assert engine.info.name == "paddleocr/pp-ocrv6_medium"
    assert engine.info.languages == frozenset({"pt", "en"})
