"""ASR metrics, shared by the unary and streaming paths (`mode` label: `unary` or `streaming`).

No session or request ids in labels: only the model and the path, so cardinality stays bounded.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

AUDIO_SECONDS = Counter("aistack_asr_audio_seconds_total", "Seconds of audio transcribed.", ["model", "mode"])
REQUESTS = Counter("aistack_asr_requests_total", "Transcriptions completed.", ["model", "mode"])
PROCESSING_SECONDS = Histogram(
    "aistack_asr_processing_seconds",
    "Wall time to transcribe one request (decode, model and response), by model.",
    ["model", "mode"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300, 600),
)
REAL_TIME_FACTOR = Histogram(
    "aistack_asr_real_time_factor",
    "Processing time divided by audio duration (below 1: faster than real time).",
    ["model", "mode"],
    buckets=(0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5, 10),
)


def record(model: str, mode: str, audio_seconds: float, processing_seconds: float) -> None:
    AUDIO_SECONDS.labels(model, mode).inc(audio_seconds)
    REQUESTS.labels(model, mode).inc()
    PROCESSING_SECONDS.labels(model, mode).observe(processing_seconds)
    if audio_seconds > 0:
        REAL_TIME_FACTOR.labels(model, mode).observe(processing_seconds / audio_seconds)
