"""Serving one capability: the grpc.aio server with health, reflection, interceptors, and a clean stop.

A capability provides a `Capability` (its servicers plus model loading); `serve` does everything else,
the same way for every service:
  health NOT_SERVING -> models load (off the event loop) -> SERVING -> ... SIGTERM -> NOT_SERVING ->
  `server.stop(grace)` -> capability closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aistack_kit.auth import TokenVerifier, generate_token
from aistack_kit.config import ConfigError, ServerSettings
from aistack_kit.interceptors import AuthInterceptor, RequestInterceptor, set_served_by
from aistack_kit.logs import configure_logging, log_fields
from aistack_kit.metrics import serve_metrics
from aistack_kit.tracing import configure_tracing, shutdown_tracing

logger = logging.getLogger("aistack.server")


class Capability(ABC):
    """What a service adds to the kit: its gRPC services and the models behind them."""

    @property
    @abstractmethod
    def service_names(self) -> Sequence[str]:
        """Full names of the gRPC services it registers (health and reflection report them)."""

    @property
    def reflection_service_names(self) -> Sequence[str]:
        """Services listed by server reflection; the platform adds every service of the deployment."""
        return self.service_names

    @abstractmethod
    def register(self, server: grpc.aio.Server) -> None:
        """Adds its servicers to the server."""

    async def load(self) -> None:  # noqa: B027 - optional hook
        """Loads models. Runs after the port is bound, while health says NOT_SERVING."""

    async def drain(self) -> None:  # noqa: B027 - optional hook
        """Shutdown has begun (health already says NOT_SERVING) and the server still runs: end
        long-lived streams with a proper last message before the graceful stop cancels them."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Frees models and workers after the server stopped."""


@dataclass
class RunningServer:
    """A started server, for the process entry point and for tests."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer  # type: ignore[name-defined]
    capability: Capability
    settings: ServerSettings
    metrics_port: int | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", *self.capability.service_names):
            await self.health.set(name, status)

    async def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self.set_serving(False)
        await self.capability.drain()
        await self.server.stop(self.settings.shutdown_grace_seconds)
        await self.capability.close()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()
        await self.server.wait_for_termination()


def _tokens(settings: ServerSettings) -> tuple[str, ...]:
    if settings.api_tokens:
        return settings.api_tokens
    # Embedded mode without API_TOKENS (production refuses earlier): make one and show it once.
    token = generate_token()
    print(f"[{settings.service}] API_TOKENS not set; generated token for this run: {token}", file=sys.stderr)
    return (token,)


async def start_server(
    capability: Capability, settings: ServerSettings, *, load: bool = True
) -> RunningServer:
    """Builds, binds and starts the server; loads the capability's models unless `load` is False."""
    configure_tracing(settings.service, settings.otlp_endpoint)
    verifier = TokenVerifier(_tokens(settings))
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5000),
    ]
    server = grpc.aio.server(interceptors=[RequestInterceptor(), AuthInterceptor(verifier)], options=options)
    health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    capability.register(server)
    reflection.enable_server_reflection(
        (
            *capability.reflection_service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port} (AISTACK_GRPC_PORT)")
    set_served_by(f"{settings.service}@{settings.host}:{port}")
    running = RunningServer(server, port, health_servicer, capability, settings)
    await running.set_serving(False)
    await server.start()
    if settings.metrics_port:
        running.metrics_port = serve_metrics(settings.metrics_port, settings.host)
    logger.info("listening", extra=log_fields(port=port, metrics_port=running.metrics_port))
    if load:
        started = asyncio.get_running_loop().time()
        await capability.load()
        logger.info(
            "ready", extra=log_fields(load_seconds=round(asyncio.get_running_loop().time() - started, 2))
        )
        await running.set_serving(True)
    return running


async def serve(capability: Capability, settings: ServerSettings) -> None:
    """Runs until SIGTERM or SIGINT, then stops gracefully."""
    running = await start_server(capability, settings, load=False)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(running.stop()))
    load = asyncio.ensure_future(_load_then_serve(running))
    await running.wait_stopped()
    load.cancel()
    shutdown_tracing()
    logger.info("stopped")


async def _load_then_serve(running: RunningServer) -> None:
    try:
        started = asyncio.get_running_loop().time()
        await running.capability.load()
    except Exception:
        logger.exception("model loading failed; stopping")
        await running.stop()
        return
    elapsed = asyncio.get_running_loop().time() - started
    logger.info("ready", extra=log_fields(load_seconds=round(elapsed, 2)))
    await running.set_serving(True)


def run(service: str, default_port: int, build: Callable[[], Capability]) -> None:
    """Process entry point: settings from the environment, logs, the capability, then `serve`.

    `build` reads the capability's own configuration; a ConfigError from it (or from the shared
    settings) stops the process with exit code 2 and a message naming the variable.
    """
    try:
        settings = ServerSettings.from_env(service, default_port)
        configure_logging(service, settings.log_level, settings.log_format)
        capability = build()
    except ConfigError as exc:
        print(f"aistack-{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    asyncio.run(serve(capability, settings))
