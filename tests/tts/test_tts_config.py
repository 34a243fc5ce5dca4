"""Start-up configuration: the XTTS model folder is checked before anything loads."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from aistack_kit.config import ConfigError, Env
from aistack_tts.app import TtsConfig


def test_embedded_defaults() -> None:
    config = TtsConfig.from_env(Env({}))
    assert config.engine == "embedded"
    assert config.piper_model is not None and config.piper_model.name == "en_US-joe-medium.onnx"
    assert config.default_voices == {"pt": "espeak-ng-pt-br", "en": "en_US-joe-medium"}


def test_production_needs_the_xtts_folder() -> None:
    with pytest.raises(ConfigError, match="TTS_XTTS_MODEL_DIR must be set"):
        TtsConfig.from_env(Env({"AISTACK_MODE": "production", "API_TOKENS": '["t"]'}))


def test_missing_xtts_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "xtts-v2"
    with pytest.raises(ConfigError, match=f"TTS_XTTS_MODEL_DIR={missing}: no such folder"):
        TtsConfig.from_env(Env({"TTS_ENGINE": "xtts", "TTS_XTTS_MODEL_DIR": str(missing)}))
    missing.mkdir()
    (missing / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"lacks model\.pth, vocab\.json"):
        TtsConfig.from_env(Env({"TTS_ENGINE": "xtts", "TTS_XTTS_MODEL_DIR": str(missing)}))
    for name in ("model.pth", "vocab.json"):
        (missing / name).write_bytes(b"")
    if importlib.util.find_spec("TTS") is None:  # the default .venv: XTTS lives in its own environment
        with pytest.raises(ConfigError, match="TTS_ENGINE=xtts needs coqui-tts"):
            TtsConfig.from_env(Env({"TTS_ENGINE": "xtts", "TTS_XTTS_MODEL_DIR": str(missing)}))


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="TTS_ENGINE"):
        TtsConfig.from_env(Env({"TTS_ENGINE": "festival"}))
    with pytest.raises(ConfigError, match="TTS_MAX_TEXT_CHARS"):
        TtsConfig.from_env(Env({"TTS_MAX_TEXT_CHARS": "lots"}))
    with pytest.raises(ConfigError, match="TTS_ESPEAK_BINARY"):
        TtsConfig.from_env(Env({"TTS_ESPEAK_BINARY": "no-such-espeak"}))


def test_the_process_refuses_to_start_without_its_model_folder(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "xtts-v2"
    result = subprocess.run(
        [sys.executable, "-m", "aistack_tts"],
        env={"TTS_ENGINE": "xtts", "TTS_XTTS_MODEL_DIR": str(missing), "AISTACK_GRPC_PORT": "0",
             "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"TTS_XTTS_MODEL_DIR={missing}: no such folder" in result.stderr
