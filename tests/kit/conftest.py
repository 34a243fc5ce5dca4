"""A real kit server (in-process, free port) whose probe service raises each kind of error on demand."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import grpc
import pytest
from aistack_edge.testing import free_port
from aistack_kit import errors
from aistack_kit.grpc_types import Context
from aistack_kit.server import Capability, RunningServer
from aistack_kit.testing import start_test_server

PROBE_SERVICE = "aistack.probe.v1.ProbeService"


async def _echo(request: bytes, context: Context) -> bytes:
    return request


async def _invalid(request: bytes, context: Context) -> bytes:
    raise errors.InvalidArgument(
        "sample_rate_hertz must be 8000 or 16000", reason="BAD_SAMPLE_RATE", metadata={"got": "44100"}
    )


async def _not_found(request: bytes, context: Context) -> bytes:
    raise errors.NotFound(
        "no model whisper-huge", reason="MODEL_NOT_FOUND", metadata={"model": "whisper-huge"}
    )


async def _exhausted(request: bytes, context: Context) -> bytes:
    raise errors.ResourceExhausted("queue full", reason="QUEUE_FULL", retry_after_seconds=2.5)


async def _crash(request: bytes, context: Context) -> bytes:
    raise RuntimeError("secret internal detail")


HANDLERS: dict[str, Callable[[bytes, Context], Awaitable[bytes]]] = {
    "Echo": _echo,
    "Invalid": _invalid,
    "NotFound": _not_found,
    "Exhausted": _exhausted,
    "Crash": _crash,
}


class ProbeCapability(Capability):
    @property
    def service_names(self) -> Sequence[str]:
        return (PROBE_SERVICE,)

    def register(self, server: grpc.aio.Server) -> None:
        # Bytes in, bytes out: no serializers, so no .proto is needed for a probe service.
        handlers = {name: grpc.unary_unary_rpc_method_handler(fn) for name, fn in HANDLERS.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(PROBE_SERVICE, handlers),))


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def probe_server(metrics_port: int) -> AsyncIterator[RunningServer]:
    running = await start_test_server(
        ProbeCapability(), service="probe", extra_env={"AISTACK_METRICS_PORT": str(metrics_port)}
    )
    yield running
    await running.stop()


@pytest.fixture
async def channel(probe_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe_server.port}") as channel:
        yield channel
