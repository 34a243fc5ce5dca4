"""Streaming metrics. Labels name the model only: never a session or user id."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

SESSIONS = Gauge("aistack_asr_stream_sessions", "Streaming sessions open on this replica.")
BATCH_SIZE = Histogram(
    "aistack_asr_batch_size",
    "Windows decoded together in one batched model call.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
BATCH_LATENCY = Histogram(
    "aistack_asr_batch_latency_seconds",
    "Wall time of one batched model call (features, encoder, greedy decoding).",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
)
WINDOW_LATENCY = Histogram(
    "aistack_asr_window_latency_seconds",
    "From a window's last audio arriving to its batch_processed event being sent.",
    ["model"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30),
)
SESSIONS_MAX = Gauge(
    "aistack_asr_stream_sessions_max", "Most streaming sessions this replica accepts at once."
)
