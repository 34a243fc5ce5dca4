"""Ring-hash session affinity: every call of a session reaches one replica; sessions spread over all."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace

import grpc
import pytest
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_launcher.catalog import PLATFORM

AFFINITY = "x-session-affinity"
# Two replicas of a service that holds per-session state, as ASR does for streams.
STATEFUL = replace(PLATFORM, replicas=2, affinity_header=AFFINITY)


@pytest.fixture(scope="module")
def replicated_edge(platform_env: dict[str, str]) -> Iterator[RunningEnvoy]:
    ports = [free_port(), free_port()]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(start_service("aistack_platform", port, platform_env))
        upstreams = Upstreams.embedded([STATEFUL], grpc_ports={STATEFUL.name: ports})
        envoy = stack.enter_context(start_envoy([STATEFUL], upstreams))
        envoy.wait_healthy()
        yield envoy


def _served_by(stub: pb_grpc.PlatformServiceStub, session: str | None) -> str:
    metadata = ((AFFINITY, session),) if session else ()
    _reply, call = stub.GetHealth.with_call(pb.GetHealthRequest(), metadata=metadata, timeout=5)
    return str(dict(call.initial_metadata())["x-served-by"])


def test_config_uses_ring_hash_on_the_affinity_header(replicated_edge: RunningEnvoy) -> None:
    text = replicated_edge.config_path.read_text()
    assert '"RING_HASH"' in text
    assert f'"header_name": "{AFFINITY}"' in text


def test_a_session_stays_on_one_replica_and_sessions_spread(replicated_edge: RunningEnvoy) -> None:
    with grpc.insecure_channel(replicated_edge.address) as channel:
        stub = pb_grpc.PlatformServiceStub(channel)
        first_replica: dict[str, str] = {}
        for _ in range(24):
            session = str(uuid.uuid4())
            replicas = {_served_by(stub, session) for _ in range(6)}
            assert len(replicas) == 1, f"session {session} reached {replicas}"
            first_replica[session] = replicas.pop()
    spread = Counter(first_replica.values())
    # 24 random sessions all hashing to one of two replicas would happen about once in 8 million runs.
    assert len(spread) == 2, spread
    assert all(name.startswith("platform@127.0.0.1:") for name in spread)
