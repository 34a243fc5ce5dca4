"""The Python client and the `aistack` CLI against real servers."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack_client import AistackClient
from aistack_edge.testing import RunningEnvoy
from aistack_kit.grpc_types import Context
from aistack_kit.server import Capability, RunningServer
from aistack_kit.testing import TEST_TOKEN, start_test_server

SESSION_SERVICE = "aistack.probe.v1.SessionService"
CLI = str(Path(sys.executable).parent / "aistack")


async def _session(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
    """Answers each message with the session-affinity id the stream arrived with."""
    metadata = dict(context.invocation_metadata() or ())
    async for _ in requests:
        yield str(metadata.get("x-session-affinity", "")).encode()


class SessionCapability(Capability):
    @property
    def service_names(self) -> Sequence[str]:
        return (SESSION_SERVICE,)

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.stream_stream_rpc_method_handler(_session)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SESSION_SERVICE, {"Open": handler}),)
        )


@pytest.fixture(scope="module")
async def session_server() -> AsyncIterator[RunningServer]:
    running = await start_test_server(SessionCapability(), "probe")
    yield running
    await running.stop()


async def _open_session(client: AistackClient, metadata: tuple[tuple[str, str], ...] = ()) -> set[str]:
    async def messages() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"audio"

    call = client.channel.stream_stream(f"/{SESSION_SERVICE}/Open", None, None)
    return {reply.decode() async for reply in call(messages(), metadata=metadata or None)}


async def test_every_stream_carries_a_fresh_session_affinity_id(session_server: RunningServer) -> None:
    async with AistackClient(f"127.0.0.1:{session_server.port}", TEST_TOKEN) as client:
        first = await _open_session(client)
        second = await _open_session(client)
    # The token went along (the kit refused nothing) and each stream had one id of its own.
    assert len(first) == len(second) == 1
    (first_id,), (second_id,) = first, second
    assert uuid.UUID(first_id) and uuid.UUID(second_id)
    assert first_id != second_id


async def test_a_session_id_set_by_the_caller_is_kept(session_server: RunningServer) -> None:
    async with AistackClient(f"127.0.0.1:{session_server.port}", TEST_TOKEN) as client:
        assert await _open_session(client, (("x-session-affinity", "call-1234"),)) == {"call-1234"}


async def test_client_without_token_is_refused(session_server: RunningServer) -> None:
    async with AistackClient(f"127.0.0.1:{session_server.port}", "wrong") as client:
        # The stubs require a request iterator; without one the caller writes (here: not yet).
        call = client.channel.stream_stream(f"/{SESSION_SERVICE}/Open", None, None)(timeout=10)  # type: ignore[call-arg]
        # Read before writing, as a real client waits for the server's first answer: with grpcio 1.85
        # a write racing the server's refusal can surface as INTERNAL "Failed execute_batch" instead.
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_client_calls_the_platform_through_envoy(edge: RunningEnvoy) -> None:
    async with AistackClient(edge.address, TEST_TOKEN) as client:
        listing = await client.platform.ListServices(pb.ListServicesRequest(), timeout=5)
    assert [s.name for s in listing.services] == ["platform", "asr"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def test_cli_health_and_services_through_envoy(edge: RunningEnvoy) -> None:
    health = _cli("--url", edge.address, "health")
    assert health.returncode == 0, health.stderr
    assert health.stdout.startswith("SERVING")
    services = _cli("--url", edge.address, "--token", TEST_TOKEN, "services")
    assert services.returncode == 0, services.stderr
    assert "GET    /api/v1/services" in services.stdout
    refused = _cli("--url", edge.address, "--token", "wrong", "services")
    assert refused.returncode == 1
    assert "UNAUTHENTICATED [INVALID_TOKEN]" in refused.stderr
