"""Per-token rate limiting at the edge: a bucket per bearer token; 429 JSON or RESOURCE_EXHAUSTED."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import pytest
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_edge.build import Upstreams
from aistack_edge.settings import EdgeSettings
from aistack_edge.testing import RunningEnvoy, start_envoy
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from aistack_launcher.catalog import PLATFORM

BURST = 3


@pytest.fixture(scope="module")
def limited_edge(platform_port: int) -> Iterator[RunningEnvoy]:
    # One request a second after a burst of 3: the test's calls take milliseconds, so at most one
    # token comes back while it runs.
    settings = EdgeSettings(rate_limit_burst=BURST, rate_limit_per_second=1)
    upstreams = Upstreams.embedded([PLATFORM], grpc_ports={"platform": [platform_port]})
    with start_envoy([PLATFORM], upstreams, settings) as envoy:
        envoy.wait_healthy()
        yield envoy


def test_token_over_its_limit_gets_429_json_then_resource_exhausted(
    limited_edge: RunningEnvoy, other_token: str
) -> None:
    url = f"{limited_edge.url}/api/v1/services"
    with httpx.Client() as http:
        statuses = [
            http.get(url, headers={"authorization": f"Bearer {TEST_TOKEN}"}).status_code for _ in range(BURST)
        ]
        assert statuses == [200] * BURST
        extra = [http.get(url, headers={"authorization": f"Bearer {TEST_TOKEN}"}) for _ in range(3)]
        limited = [r for r in extra if r.status_code == 429]
        assert limited, [r.status_code for r in extra]
        body = limited[0].json()
        assert body["code"] == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
        assert body["details"][0]["reason"] == "RATE_LIMITED"
        assert limited[0].headers["retry-after"] == "1"

        # Another token has its own bucket, untouched by the first one's calls.
        other = http.get(url, headers={"authorization": f"Bearer {other_token}"})
        assert other.status_code == 200

    # The same token over native gRPC shares the bucket and gets RESOURCE_EXHAUSTED.
    with grpc.insecure_channel(limited_edge.address) as channel:
        stub = pb_grpc.PlatformServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            for _ in range(3):
                stub.ListServices(pb.ListServicesRequest(), metadata=auth_metadata(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
