"""Prometheus metrics of the LLM service. Labels carry configured aliases only (a bounded set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "aistack_llm_requests_total",
    "Chat and embedding requests accepted, by model alias (gRPC and HTTP alike).",
    ["model"],
)
TOKENS = Counter(
    "aistack_llm_tokens_total",
    "Tokens processed, by model alias and kind (prompt or completion).",
    ["model", "kind"],
)
TIME_TO_FIRST_TOKEN = Histogram(
    "aistack_llm_time_to_first_token_seconds",
    "Streamed chats: time from the request to the first generated text, by model alias.",
    ["model"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ACTIVE_STREAMS = Gauge(
    "aistack_llm_upstream_streams_active",
    "Streams open to an upstream right now, by upstream.",
    ["upstream"],
)
