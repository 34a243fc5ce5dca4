"""Audio in, 16 kHz mono float32 out: containers through PyAV (FFmpeg), headerless PCM and G.711 here.

Every failure is an `InvalidArgument` with a stable reason (AUDIO_DECODE_FAILED, EMPTY_AUDIO,
BAD_SAMPLE_RATE, SAMPLE_RATE_MISMATCH, BAD_AUDIO_LENGTH, AUDIO_TOO_LONG), so a caller learns what to fix
and the server never sees an FFmpeg exception.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import av
import numpy as np
from aistack.common.v1 import audio_pb2
from aistack_kit.errors import InvalidArgument

AudioEncoding = audio_pb2.AudioEncoding

SAMPLE_RATE = 16_000
# Headerless audio outside this range is almost certainly a wrong declaration, not a real rate.
MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 48_000

_BYTES_PER_SAMPLE: dict[int, int] = {
    audio_pb2.AUDIO_ENCODING_LINEAR16: 2,
    audio_pb2.AUDIO_ENCODING_FLOAT32: 4,
    audio_pb2.AUDIO_ENCODING_MULAW: 1,
    audio_pb2.AUDIO_ENCODING_ALAW: 1,
}


def _mulaw_table() -> np.ndarray:
    # ITU-T G.711 mu-law expansion, as a 256-entry lookup table.
    codes = ~np.arange(256, dtype=np.uint8)
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent.astype(np.int32)
    values = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (values / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    # ITU-T G.711 A-law expansion, as a 256-entry lookup table.
    codes = np.arange(256, dtype=np.uint8) ^ 0x55
    sign = codes & 0x80
    exponent = ((codes >> 4) & 0x07).astype(np.int32)
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    values = np.where(sign != 0, magnitude, -magnitude)
    return (values / 32768.0).astype(np.float32)


_MULAW = _mulaw_table()
_ALAW = _alaw_table()


def encoding_name(encoding: int) -> str:
    if encoding in AudioEncoding.values():
        return str(AudioEncoding.Name(AudioEncoding.ValueType(encoding)))
    return str(encoding)


def check_sample_rate(encoding: int, sample_rate_hertz: int) -> None:
    """Headerless audio needs a plausible declared rate; a wrong one would decode to noise."""
    if encoding == audio_pb2.AUDIO_ENCODING_UNSPECIFIED:
        return
    if encoding not in _BYTES_PER_SAMPLE:
        raise InvalidArgument(
            f"unknown audio encoding {encoding}",
            reason="BAD_ENCODING",
            metadata={"encoding": str(encoding)},
        )
    if not MIN_SAMPLE_RATE <= sample_rate_hertz <= MAX_SAMPLE_RATE:
        raise InvalidArgument(
            f"sample_rate_hertz must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} for "
            f"{encoding_name(encoding)} audio, got {sample_rate_hertz}",
            reason="BAD_SAMPLE_RATE",
            metadata={"sample_rate_hertz": str(sample_rate_hertz), "encoding": encoding_name(encoding)},
        )


def samples_to_float(data: bytes, encoding: int) -> np.ndarray:
    """Headerless bytes to float32 samples at their own rate. The length must be whole samples."""
    width = _BYTES_PER_SAMPLE[encoding]
    if len(data) % width:
        raise InvalidArgument(
            f"{encoding_name(encoding)} audio must be a whole number of {width}-byte samples, "
            f"got {len(data)} bytes",
            reason="BAD_AUDIO_LENGTH",
            metadata={"bytes": str(len(data)), "encoding": encoding_name(encoding)},
        )
    if encoding == audio_pb2.AUDIO_ENCODING_LINEAR16:
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    if encoding == audio_pb2.AUDIO_ENCODING_FLOAT32:
        samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise InvalidArgument(
                "FLOAT32 audio holds NaN or infinite samples",
                reason="AUDIO_DECODE_FAILED",
                metadata={"encoding": encoding_name(encoding)},
            )
        return np.clip(samples, -1.0, 1.0)
    table = _MULAW if encoding == audio_pb2.AUDIO_ENCODING_MULAW else _ALAW
    return table[np.frombuffer(data, dtype=np.uint8)]


def resample(samples: np.ndarray, sample_rate_hertz: int) -> np.ndarray:
    """Float32 mono at any rate to 16 kHz with FFmpeg's resampler (band-limited, unlike interpolation)."""
    if sample_rate_hertz == SAMPLE_RATE or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    return _Resampler(sample_rate_hertz).push(samples, flush=True)


class _Resampler:
    def __init__(self, sample_rate_hertz: int) -> None:
        self._rate = sample_rate_hertz
        self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)

    def push(self, samples: np.ndarray, *, flush: bool = False) -> np.ndarray:
        out: list[np.ndarray] = []
        if samples.size:
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate = self._rate
            out.extend(f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame))
        if flush:
            out.extend(f.to_ndarray().reshape(-1) for f in self._resampler.resample(None))
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def decode_audio(
    data: bytes,
    encoding: int = audio_pb2.AUDIO_ENCODING_UNSPECIFIED,
    sample_rate_hertz: int = 0,
    *,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Any supported audio to float32 mono 16 kHz.

    `encoding` unspecified: `data` is a container (wav, mp3, ogg/opus, flac, m4a, ...) and
    `sample_rate_hertz`, when set, must match the file's rate. Otherwise `data` is headerless
    samples at `sample_rate_hertz`. `max_seconds` stops decoding early with AUDIO_TOO_LONG.
    """
    if not data:
        raise InvalidArgument("the audio is empty (0 bytes)", reason="EMPTY_AUDIO")
    if encoding == audio_pb2.AUDIO_ENCODING_UNSPECIFIED:
        audio = _decode_container(data, sample_rate_hertz, max_seconds)
    else:
        check_sample_rate(encoding, sample_rate_hertz)
        samples = samples_to_float(data, encoding)
        _check_length(samples.size / sample_rate_hertz, max_seconds)
        audio = resample(samples, sample_rate_hertz)
    if audio.size == 0:
        raise InvalidArgument("the audio holds no samples", reason="EMPTY_AUDIO")
    return audio


def pcm_to_float(chunk: bytes, encoding: int, sample_rate_hertz: int) -> np.ndarray:
    """One chunk of headerless audio to float32 at 16 kHz.

    Stateless: each chunk must hold whole samples, and a rate other than 16 kHz is resampled per
    chunk (FFmpeg's filter restarts at each chunk). For a live stream cut anywhere, `PcmDecoder`
    carries partial samples and resampler state across chunks.
    """
    check_sample_rate(encoding, sample_rate_hertz)
    return resample(samples_to_float(chunk, encoding), sample_rate_hertz)


class PcmDecoder:
    """Headerless audio arriving in chunks of any size, to continuous 16 kHz float32."""

    def __init__(self, encoding: int, sample_rate_hertz: int) -> None:
        if encoding == audio_pb2.AUDIO_ENCODING_UNSPECIFIED:
            raise InvalidArgument(
                "streaming needs headerless audio: set encoding and sample_rate_hertz",
                reason="ENCODING_REQUIRED",
            )
        check_sample_rate(encoding, sample_rate_hertz)
        self._encoding = encoding
        self._width = _BYTES_PER_SAMPLE[encoding]
        self._pending = b""
        self._resampler = _Resampler(sample_rate_hertz) if sample_rate_hertz != SAMPLE_RATE else None

    def push(self, chunk: bytes) -> np.ndarray:
        data = self._pending + chunk
        whole = len(data) - len(data) % self._width
        self._pending = data[whole:]
        samples = samples_to_float(data[:whole], self._encoding)
        return self._resampler.push(samples) if self._resampler else samples

    def flush(self) -> np.ndarray:
        """The resampler's tail; call once at the end of the stream."""
        self._pending = b""
        return self._resampler.push(np.zeros(0, np.float32), flush=True) if self._resampler else np.zeros(0)


def _check_length(seconds: float, max_seconds: float | None) -> None:
    if max_seconds is not None and seconds > max_seconds:
        raise InvalidArgument(
            f"the audio is longer than this service accepts ({max_seconds:g} s)",
            reason="AUDIO_TOO_LONG",
            metadata={"max_audio_seconds": f"{max_seconds:g}"},
        )


def _decode_container(data: bytes, sample_rate_hertz: int, max_seconds: float | None) -> np.ndarray:
    chunks: list[np.ndarray] = []
    total = 0
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise InvalidArgument(
                    "the file has no audio stream", reason="AUDIO_DECODE_FAILED", metadata={"streams": "0"}
                )
            stream = container.streams.audio[0]
            file_rate = stream.codec_context.sample_rate or stream.rate or 0
            if sample_rate_hertz and file_rate and sample_rate_hertz != file_rate:
                raise InvalidArgument(
                    f"sample_rate_hertz {sample_rate_hertz} does not match the file's {file_rate} Hz; "
                    "omit it for container files",
                    reason="SAMPLE_RATE_MISMATCH",
                    metadata={
                        "sample_rate_hertz": str(sample_rate_hertz),
                        "file_sample_rate": str(file_rate),
                    },
                )
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            decoded_any = False
            for frame in _frames(container, stream):
                decoded_any = True
                frame.pts = None
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    chunks.append(array)
                    total += array.size
                if limit is not None and total > limit:
                    _check_length(total / SAMPLE_RATE, max_seconds)
            if decoded_any:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except InvalidArgument:
        raise
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc)
        raise InvalidArgument(
            f"could not decode the audio (wav, mp3, ogg/opus, flac, m4a, ... or headerless with an "
            f"encoding): {detail}",
            reason="AUDIO_DECODE_FAILED",
            metadata={"detail": type(exc).__name__},
        ) from None
    audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    _check_length(audio.size / SAMPLE_RATE, max_seconds)
    return audio


def _frames(container: av.container.InputContainer, stream: av.AudioStream) -> Iterator[av.AudioFrame]:
    """Decoded frames, skipping damaged packets in the middle (as players do) but not a wholly bad file."""
    errors = 0
    for packet in container.demux(stream):
        try:
            decoded = packet.decode()
        except av.InvalidDataError:
            errors += 1
            if errors > 50:
                raise
            continue
        for frame in decoded:
            if isinstance(frame, av.AudioFrame):
                yield frame
