"""Prometheus metrics shared by every service; capability metrics register on the same registry."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

RPC_HANDLED = Counter(
    "aistack_grpc_server_handled_total",
    "RPCs completed, by method and status code.",
    ["grpc_service", "grpc_method", "grpc_code"],
)
RPC_SECONDS = Histogram(
    "aistack_grpc_server_handling_seconds",
    "Wall time from RPC start to its status, by method.",
    ["grpc_service", "grpc_method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def serve_metrics(port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY) -> int:
    """Starts the `/metrics` endpoint on a thread; returns the bound port (port 0 picks a free one)."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    bound: int = server.server_port
    return bound
