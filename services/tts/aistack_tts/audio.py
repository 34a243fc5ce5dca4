"""Audio plumbing: resampling the engines' float PCM, encoding the output formats, decoding references.

Everything goes through PyAV (FFmpeg's libswresample, libopus, libmp3lame), which ships in its wheel.
"""

from __future__ import annotations

import io
import wave
from enum import Enum
from typing import cast

import av
import numpy as np
import numpy.typing as npt

FloatAudio = npt.NDArray[np.float32]

# Sample rates each encoder accepts; an Opus stream at any other rate is encoded at 48 kHz (what every
# Opus decoder plays back at anyway).
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MIN_SAMPLE_RATE = 8000
MAX_SAMPLE_RATE = 48000


class OutputFormat(Enum):
    WAV = "wav"
    PCM16 = "pcm16"
    OGG_OPUS = "ogg_opus"
    MP3 = "mp3"

    @property
    def content_type(self) -> str:
        return {
            OutputFormat.WAV: "audio/wav",
            OutputFormat.PCM16: "audio/L16",
            OutputFormat.OGG_OPUS: "audio/ogg",
            OutputFormat.MP3: "audio/mpeg",
        }[self]


def encoded_rate(fmt: OutputFormat, sample_rate: int) -> int:
    """The rate the encoded stream will actually have when `sample_rate` is asked for."""
    if fmt is OutputFormat.OGG_OPUS and sample_rate not in OPUS_RATES:
        return 48000
    if fmt is OutputFormat.MP3 and sample_rate not in MP3_RATES:
        return min(MP3_RATES, key=lambda rate: abs(rate - sample_rate))
    return sample_rate


class StreamResampler:
    """Resamples one request's audio chunk by chunk to int16, keeping the filter state across chunks so
    that the streamed pieces add up to exactly what resampling the whole would give."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = (
            None if in_rate == out_rate else av.AudioResampler(format="s16", layout="mono", rate=out_rate)
        )
        self._pts = 0

    def push(self, samples: FloatAudio) -> bytes:
        if samples.size == 0:
            return b""
        if self._resampler is None:
            return to_pcm16(samples)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        self._pts += samples.size
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(frame))

    def flush(self) -> bytes:
        if self._resampler is None:
            return b""
        return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in self._resampler.resample(None))


def to_pcm16(samples: FloatAudio) -> bytes:
    clipped = np.clip(samples, -1.0, 1.0) * 32767.0
    return bytes(np.round(clipped).astype("<i2").tobytes())


def wav_header(sample_rate: int, data_bytes: int | None) -> bytes:
    """A 44-byte PCM16 mono RIFF header; `data_bytes` None writes the streaming sizes (0xFFFFFFFF) that
    players read as "until the end"."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate)
        writer.writeframes(b"")
    header = bytearray(buffer.getvalue()[:44])
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    header[4:8] = (0xFFFFFFFF if data_bytes is None else 36 + data_bytes).to_bytes(4, "little")
    header[40:44] = size.to_bytes(4, "little")
    return bytes(header)


def encode(pcm16: bytes, sample_rate: int, fmt: OutputFormat) -> bytes:
    """Mono PCM16 at `sample_rate` (already `encoded_rate`) into the container."""
    if fmt is OutputFormat.PCM16:
        return pcm16
    if fmt is OutputFormat.WAV:
        return wav_header(sample_rate, len(pcm16)) + pcm16
    container, codec = ("ogg", "libopus") if fmt is OutputFormat.OGG_OPUS else ("mp3", "libmp3lame")
    out = io.BytesIO()
    samples = np.frombuffer(pcm16, dtype="<i2")
    with av.open(out, mode="w", format=container) as muxer:
        stream = cast(av.AudioStream, muxer.add_stream(codec, rate=sample_rate, layout="mono"))
        stream.bit_rate = 32000 if fmt is OutputFormat.OGG_OPUS else 64000
        frame_size = 960 * sample_rate // 48000 if fmt is OutputFormat.OGG_OPUS else 1152
        for start in range(0, max(samples.size, 1), frame_size):
            chunk = samples[start : start + frame_size]
            if chunk.size == 0:
                break
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


class DecodeError(ValueError):
    """The bytes are not audio FFmpeg can read."""


def decode_to_mono(data: bytes, sample_rate: int, max_seconds: float) -> FloatAudio:
    """Any container FFmpeg reads -> float32 mono at `sample_rate`, at most `max_seconds` long."""
    limit = int(max_seconds * sample_rate)
    pieces: list[FloatAudio] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1).astype(np.float32))
                    total += pieces[-1].size
                if total >= limit:
                    break
            else:
                for out in resampler.resample(None):
                    pieces.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise DecodeError(str(exc)) from exc
    if not pieces:
        raise DecodeError("no audio samples")
    return np.concatenate(pieces)[:limit]
