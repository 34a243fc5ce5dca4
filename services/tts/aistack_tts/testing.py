"""Helpers for tests and benchmarks of the TTS service: decoding what it returns, word error rate, error
checks. Imported by tests/tts only; nothing in the service uses them."""

from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import av
import grpc
import numpy as np
import numpy.typing as npt
from aistack_kit.errors import error_info_of
from aistack_kit.testing import edit_distance


@dataclass(frozen=True)
class Decoded:
    codec: str
    sample_rate: int
    samples: npt.NDArray[np.float32]

    @property
    def seconds(self) -> float:
        return self.samples.size / self.sample_rate


def decode(data: bytes) -> Decoded:
    """Decodes a container with PyAV, as a client would, at the stream's own rate."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        # Float mono at the stream's own rate, whatever the decoder's sample format.
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        frames = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]  # fmt: skip
        frames += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
        return Decoded(stream.codec_context.name, rate, np.concatenate(frames).astype(np.float32))


def pcm16(data: bytes) -> npt.NDArray[np.float32]:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9']+", text)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (Levenshtein over words), case, accents and punctuation ignored."""
    ref, hyp = _words(reference), _words(hypothesis)
    return edit_distance(ref, hyp) / max(len(ref), 1)


def assert_error(error: Any, code: grpc.StatusCode, reason: str) -> None:
    assert isinstance(error, grpc.aio.AioRpcError), error
    assert error.code() == code, (error.code(), error.details())
    info = error_info_of(error)
    assert info is not None, "no ErrorInfo in the status"
    assert info.reason == reason, (info.reason, error.details())
    assert info.domain == "tts.aistack"
