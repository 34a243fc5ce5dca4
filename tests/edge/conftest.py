"""One platform service process and an Envoy in front of it, on free ports, shared by the edge tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_kit.testing import TEST_TOKEN
from aistack_launcher.catalog import PLATFORM


@pytest.fixture(scope="session")
def other_token() -> str:
    """A second valid token: rate limits are per token."""
    return "other-token-9876543210"


@pytest.fixture(scope="session")
def platform_env(other_token: str) -> dict[str, str]:
    """The platform as the launcher configures it, for a deployment of itself and a 2-replica ASR."""
    deployment = [
        {"name": "platform", "grpc_services": list(PLATFORM.grpc_services)},
        {"name": "asr", "grpc_services": ["aistack.asr.v1.AsrService"], "replicas": 2},
    ]
    return {
        "API_TOKENS": json.dumps([TEST_TOKEN, other_token]),
        "AISTACK_PLATFORM_SERVICES": json.dumps(deployment),
    }


@pytest.fixture(scope="session")
def platform_port(platform_env: dict[str, str]) -> Iterator[int]:
    port = free_port()
    with start_service("aistack_platform", port, platform_env):
        yield port


@pytest.fixture(scope="session")
def edge(platform_port: int) -> Iterator[RunningEnvoy]:
    upstreams = Upstreams.embedded([PLATFORM], grpc_ports={"platform": [platform_port]})
    with start_envoy([PLATFORM], upstreams) as envoy:
        envoy.wait_healthy()
        yield envoy
