"""The cloned-voice store on real files: durable across a restart, atomic, safe ids."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from aistack_tts.voices import VoiceStore, VoiceStoreError


def _conditioning(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "gpt_cond_latent": rng.standard_normal((1, 32, 1024)).astype(np.float32),
        "speaker_embedding": rng.standard_normal((1, 512, 1)).astype(np.float32),
    }


def test_voices_survive_a_restart(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    store.open()
    conditioning = _conditioning(1)
    ana = store.create("Ana", ("pt", "en"), "xtts-v2", conditioning)
    bruno = store.create("Bruno", ("pt",), "xtts-v2", _conditioning(2))

    reopened = VoiceStore(tmp_path / "voices")  # a new process would do exactly this
    reopened.open()
    assert [v.voice_id for v in reopened.list_voices()] == [ana.voice_id, bruno.voice_id]
    assert reopened.get(ana.voice_id) == ana
    loaded = reopened.conditioning(ana.voice_id)
    assert set(loaded) == set(conditioning)
    for name, array in conditioning.items():
        np.testing.assert_array_equal(loaded[name], array)

    assert reopened.delete(ana.voice_id)
    assert not reopened.delete(ana.voice_id)
    again = VoiceStore(tmp_path / "voices")
    again.open()
    assert [v.voice_id for v in again.list_voices()] == [bruno.voice_id]


def test_interrupted_writes_leave_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "voices"
    store = VoiceStore(root)
    store.open()
    kept = store.create("Kept", ("pt",), "xtts-v2", _conditioning(3))
    # What a crash between mkdir and rename, or during a delete, leaves:
    (root / ".tmp-voice-deadbeefdeadbeef").mkdir()
    (root / ".tmp-voice-deadbeefdeadbeef" / "conditioning.npz").write_bytes(b"half a file")
    (root / ".del-voice-0123456789abcdef-abc123").mkdir()
    assert [v.voice_id for v in store.list_voices()] == [kept.voice_id]
    VoiceStore(root).open()
    assert sorted(p.name for p in root.iterdir()) == [kept.voice_id]


def test_ids_never_reach_outside_the_folder(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    store.open()
    (tmp_path / "voice.json").write_text("{}")
    for bad in ("../voices", "..", "voice-../../x", "/etc/passwd", "voice-"):
        assert store.get(bad) is None
        assert not store.delete(bad)
        with pytest.raises(KeyError):
            store.conditioning(bad)


def test_damaged_metadata_is_reported(tmp_path: Path) -> None:
    store = VoiceStore(tmp_path / "voices")
    store.open()
    voice = store.create("Ana", ("pt",), "xtts-v2", _conditioning(4))
    (tmp_path / "voices" / voice.voice_id / "voice.json").write_text(json.dumps({"voice_id": voice.voice_id}))
    with pytest.raises(VoiceStoreError, match=r"voice\.json"):
        store.get(voice.voice_id)
