"""Durable store of cloned voices: one folder per voice with `voice.json` and `conditioning.npz`.

A voice folder is written under a hidden temporary name, flushed, then renamed into place, so a crash
leaves either the whole voice or nothing (a leftover `.tmp-*` folder is ignored and swept at start-up).
Deleting renames the folder away first for the same reason. Conditioning is stored as plain arrays
(`np.savez`, loaded with `allow_pickle=False`): a voices folder can never execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from aistack_tts.engines.base import Conditioning

_META = "voice.json"
_ARRAYS = "conditioning.npz"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class StoredVoice:
    voice_id: str
    display_name: str
    languages: tuple[str, ...]
    engine: str
    create_time: datetime


class VoiceStoreError(RuntimeError):
    """A stored voice could not be read (damaged files)."""


class VoiceStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        return self._root

    def open(self) -> None:
        """Creates the folder and sweeps what an interrupted write or delete left behind."""
        self._root.mkdir(parents=True, exist_ok=True)
        for leftover in self._root.glob(".*-*"):
            if leftover.is_dir() and leftover.name.startswith((".tmp-", ".del-")):
                shutil.rmtree(leftover, ignore_errors=True)

    def create(
        self, display_name: str, languages: tuple[str, ...], engine: str, conditioning: Conditioning
    ) -> StoredVoice:
        voice = StoredVoice(
            voice_id=f"voice-{uuid.uuid4().hex[:16]}",
            display_name=display_name,
            languages=languages,
            engine=engine,
            create_time=datetime.now(UTC),
        )
        staging = self._root / f".tmp-{voice.voice_id}"
        staging.mkdir(parents=True)
        try:
            with open(staging / _ARRAYS, "wb") as handle:
                arrays: dict[str, Any] = {name: np.asarray(array) for name, array in conditioning.items()}
                np.savez(handle, **arrays)
                handle.flush()
                os.fsync(handle.fileno())
            meta = {
                "format_version": _FORMAT_VERSION,
                "voice_id": voice.voice_id,
                "display_name": voice.display_name,
                "languages": list(voice.languages),
                "engine": voice.engine,
                "create_time": voice.create_time.isoformat(),
            }
            with open(staging / _META, "w", encoding="utf-8") as handle:
                json.dump(meta, handle, ensure_ascii=False, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            with self._lock:
                os.rename(staging, self._root / voice.voice_id)
            _fsync_dir(self._root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return voice

    def list_voices(self) -> list[StoredVoice]:
        voices = []
        for folder in sorted(self._root.iterdir()) if self._root.is_dir() else []:
            if folder.name.startswith(".") or not (folder / _META).is_file():
                continue
            voices.append(self._read_meta(folder))
        return sorted(voices, key=lambda voice: voice.create_time)

    def get(self, voice_id: str) -> StoredVoice | None:
        folder = self._folder(voice_id)
        if folder is None or not (folder / _META).is_file():
            return None
        return self._read_meta(folder)

    def conditioning(self, voice_id: str) -> Conditioning:
        folder = self._folder(voice_id)
        if folder is None:
            raise KeyError(voice_id)
        try:
            with np.load(folder / _ARRAYS, allow_pickle=False) as arrays:
                return {name: arrays[name].astype(np.float32) for name in arrays.files}
        except (OSError, ValueError) as exc:
            raise VoiceStoreError(f"voice {voice_id}: unreadable conditioning: {exc}") from exc

    def delete(self, voice_id: str) -> bool:
        folder = self._folder(voice_id)
        if folder is None or not folder.is_dir():
            return False
        trash = self._root / f".del-{voice_id}-{uuid.uuid4().hex[:6]}"
        with self._lock:
            os.rename(folder, trash)
        _fsync_dir(self._root)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def _folder(self, voice_id: str) -> Path | None:
        # Ids are ours ("voice-<hex>"); anything else (a path, "..") never reaches the file system.
        if not voice_id.startswith("voice-") or not voice_id[6:].isalnum():
            return None
        return self._root / voice_id

    def _read_meta(self, folder: Path) -> StoredVoice:
        try:
            meta = json.loads((folder / _META).read_text(encoding="utf-8"))
            return StoredVoice(
                voice_id=meta["voice_id"],
                display_name=meta["display_name"],
                languages=tuple(meta["languages"]),
                engine=meta["engine"],
                create_time=datetime.fromisoformat(meta["create_time"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise VoiceStoreError(f"{folder}: unreadable {_META}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry itself is on disk.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
