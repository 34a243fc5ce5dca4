"""XttsEngine on a given device with the tiny random checkpoint (xtts_tiny.py): load, clone, stream.

Run on the accelerator to check the CUDA path of the production engine (the pytest suite covers CPU):
    python tests/tts/xtts_tiny.py /tmp/tiny && python tests/tts/xtts_device_check.py /tmp/tiny cuda
Prints one JSON line; exits non-zero if a step fails. Timings are of the random tiny model: they say
nothing about real XTTS-v2 speed.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from aistack_tts.engines.base import VoiceRef
from aistack_tts.engines.xtts import XttsEngine


def main(model_dir: Path, device: str) -> int:
    report: dict[str, object] = {"device": device}
    started = time.perf_counter()
    engine = XttsEngine(model_dir, device=device, stream_chunk_tokens=4)
    engine.load()
    report["load_s"] = round(time.perf_counter() - started, 2)
    model = engine._loaded()
    report["model_device"] = str(next(model.parameters()).device)
    report["builtin_voices"] = [v.voice_id for v in engine.voices()]

    rng = np.random.default_rng(0)
    # Three seconds of a voiced-like signal: a 140 Hz pulse train through noise.
    t = np.arange(3 * 22050) / 22050
    reference = (0.3 * np.sign(np.sin(2 * np.pi * 140 * t)) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )
    started = time.perf_counter()
    conditioning = engine.clone(reference, 22050)
    report["clone_s"] = round(time.perf_counter() - started, 2)
    report["conditioning"] = {name: list(array.shape) for name, array in conditioning.items()}

    voice = VoiceRef("voice-check", conditioning)
    for language, text in (("pt", "Olá, tudo bem?"), ("en", "Hello there.")):
        started = time.perf_counter()
        first = 0.0
        chunks = []
        for chunk in engine.synthesize(text, voice, language, 1.0):
            first = first or time.perf_counter() - started
            chunks.append(chunk)
        audio = np.concatenate(chunks)
        assert np.isfinite(audio).all() and audio.size > 0
        report[f"{language}_chunks"] = len(chunks)
        report[f"{language}_seconds"] = round(audio.size / engine.sample_rate(voice), 3)
        report[f"{language}_first_chunk_s"] = round(first, 3)
        report[f"{language}_total_s"] = round(time.perf_counter() - started, 3)
    engine.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cuda"))
