"""The platform's services: what each one is, where it listens, and what Envoy routes to it.

This is the single list the launcher, the Envoy config builder and the health summary read. A
capability that does not exist yet is simply not here (never a stub that pretends).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceEntry:
    # Short name: `asr`. Also the Envoy cluster name and the log/metrics `service` label.
    name: str
    # Python module run as `python -m <module>`.
    module: str
    # Full gRPC service names; Envoy routes `/<name>/` (native gRPC and transcoded REST) here.
    grpc_services: tuple[str, ...]
    # Embedded-mode gRPC port of the first replica; replica i listens on port + 100 * i.
    grpc_port: int
    # Embedded-mode Prometheus port of the first replica (same replica offset).
    metrics_port: int
    # Path prefixes served by the service's own HTTP server (not transcoded), e.g. the OpenAI surface.
    http_prefixes: tuple[str, ...] = ()
    # Embedded-mode port of that HTTP server.
    http_port: int | None = None
    # Header whose value pins a caller to one replica (ring hash), for stateful streams.
    affinity_header: str | None = None
    # Replicas started in embedded mode.
    replicas: int = 1
    # One GPU per replica (CUDA device ids or UUIDs; an id may repeat to put two replicas on one GPU):
    # replica i sees only gpus[i] through CUDA_VISIBLE_DEVICES. Empty: replicas see every device.
    gpus: tuple[str, ...] = ()
    # Extra environment for the process (model choices and the like); a variable already set in the
    # launcher's environment wins. `{aux[redis]}` in a value becomes that helper's port (it moves
    # with AISTACK_PORT_OFFSET).
    env: dict[str, str] = field(default_factory=dict)


def replica_ports(entry: ServiceEntry, first: int | None, offset: int = 0) -> list[int]:
    """Embedded-mode ports of each replica of `entry`, for a first-replica port (and a global offset)."""
    if first is None:
        return []
    return [first + offset + 100 * i for i in range(entry.replicas)]


@dataclass(frozen=True)
class AuxProcess:
    """A process a capability needs beside it in embedded mode (Redis, the llama.cpp upstream)."""

    name: str
    # Command line; `{port}` is replaced by `port`, `{python}` by the venv's interpreter.
    argv: tuple[str, ...]
    port: int
    # HTTP path answered with 200 once ready; None: ready when the TCP port accepts.
    ready_path: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Seconds to wait for readiness (model loading can be slow on 2 cores).
    ready_timeout_seconds: float = 120.0
    # Catalog names of the services that need it; started only when one of them is. Empty: always.
    needed_by: tuple[str, ...] = ()


PLATFORM = ServiceEntry(
    name="platform",
    module="aistack_platform",
    grpc_services=("aistack.platform.v1.PlatformService",),
    grpc_port=50050,
    metrics_port=9150,
)

ASR = ServiceEntry(
    name="asr",
    module="aistack_asr",
    grpc_services=("aistack.asr.v1.AsrService",),
    grpc_port=50051,
    metrics_port=9151,
    affinity_header="x-session-affinity",
    # Feature extraction's small matrix products gain nothing from OpenBLAS's thread pool, whose spinning
    # threads (one per core, per replica) took the host's CPU from the batcher in the GPU scaling run.
    env={"OPENBLAS_NUM_THREADS": "1"},
)

LLM = ServiceEntry(
    name="llm",
    module="aistack_llm",
    grpc_services=("aistack.llm.v1.LlmService",),
    grpc_port=50055,
    metrics_port=9155,
    # The OpenAI-compatible surface (SSE streaming), served by the service's own HTTP server.
    http_prefixes=("/api/v1/chat/completions", "/api/v1/models", "/api/v1/embeddings"),
    http_port=8055,
    # The llama-cpp helper's port moves with AISTACK_PORT_OFFSET.
    env={
        "AISTACK_LLM_UPSTREAMS": (
            '{"llama-cpp": {"url": "http://127.0.0.1:{aux[llama-cpp]}/v1", "dialect": "llama-cpp"}}'
        )
    },
)

TTS = ServiceEntry(
    name="tts",
    module="aistack_tts",
    grpc_services=("aistack.tts.v1.TtsService",),
    grpc_port=50054,
    metrics_port=9154,
)

OCR = ServiceEntry(
    name="ocr",
    module="aistack_ocr",
    grpc_services=("aistack.ocr.v1.OcrService",),
    grpc_port=50053,
    metrics_port=9153,
)

# Every capability served today, in start order. The platform service comes first: it answers
# /api/v1/health for all the others.
SERVICES: tuple[ServiceEntry, ...] = (PLATFORM, ASR, LLM, TTS, OCR)

# Processes started before the services, in order.
AUX_PROCESSES: tuple[AuxProcess, ...] = (
    # The speech-analytics job queue (D+1 jobs and live insights); no capability in the catalog uses it yet,
    # so it starts only with the one that will.
    AuxProcess(
        name="redis",
        argv=("redis-server", "--port", "{port}", "--save", "", "--appendonly", "no"),
        port=6379,
        needed_by=("analytics",),
    ),
    # The LLM service's embedded chat upstream: llama.cpp's server with SmolLM2-135M (see docs/llm.md).
    AuxProcess(
        name="llama-cpp",
        argv=("{python}", "-m", "aistack_llm.embedded_upstream", "--port", "{port}"),
        port=8081,
        ready_path="/v1/models",
        needed_by=("llm",),
    ),
)
