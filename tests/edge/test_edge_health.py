"""GET /api/v1/health: the platform asks every capability's gRPC health service, as the launcher wires it."""

from __future__ import annotations

import grpc
import httpx
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_edge.build import Upstreams
from aistack_edge.testing import free_port, start_envoy, start_service
from aistack_kit.errors import error_info_of
from aistack_launcher.catalog import PLATFORM

PLATFORM_SERVICE = PLATFORM.grpc_services[0]
ASR_SERVICE = "aistack.asr.v1.AsrService"


def test_health_lists_each_capability_and_answers_503_when_one_is_down(platform_env: dict[str, str]) -> None:
    # A second kit process stands in for a capability: its health service answers for its name.
    capability_port, probing_port, nothing_there = free_port(), free_port(), free_port()
    up = f"{PLATFORM_SERVICE}=127.0.0.1:{capability_port}"
    with start_service("aistack_platform", capability_port, platform_env):
        probing_env = {**platform_env, "AISTACK_HEALTH_TARGETS": up}
        with (
            start_service("aistack_platform", probing_port, probing_env),
            grpc.insecure_channel(f"127.0.0.1:{probing_port}") as channel,
        ):
            # Twice: the probe's channels must outlive the first call.
            for _ in range(2):
                reply = pb_grpc.PlatformServiceStub(channel).GetHealth(pb.GetHealthRequest(), timeout=10)
                assert reply.status == pb.SERVING_STATUS_SERVING
                assert [(s.service, s.status) for s in reply.services] == [
                    (PLATFORM_SERVICE, pb.SERVING_STATUS_SERVING)
                ]

        down = f"{up},{ASR_SERVICE}=127.0.0.1:{nothing_there}"
        with start_service(
            "aistack_platform", probing_port, {**platform_env, "AISTACK_HEALTH_TARGETS": down}
        ):
            with grpc.insecure_channel(f"127.0.0.1:{probing_port}") as channel:
                try:
                    pb_grpc.PlatformServiceStub(channel).GetHealth(pb.GetHealthRequest(), timeout=10)
                    raise AssertionError("GetHealth succeeded with a capability down")
                except grpc.RpcError as refused:
                    assert refused.code() == grpc.StatusCode.UNAVAILABLE
                    info = error_info_of(refused)
                    assert info is not None and info.reason == "SERVICES_NOT_SERVING"
                    assert info.metadata["services"] == ASR_SERVICE
            upstreams = Upstreams.embedded([PLATFORM], grpc_ports={"platform": [probing_port]})
            with start_envoy([PLATFORM], upstreams) as edge:
                edge.wait_healthy()
                reply_http = httpx.get(f"{edge.url}/api/v1/health")
                assert reply_http.status_code == 503
                assert reply_http.json()["details"][0]["reason"] == "SERVICES_NOT_SERVING"


def test_unreachable_upstream_is_503_json_for_rest_and_unavailable_for_grpc() -> None:
    # Nothing listens on the platform's port: Envoy itself answers.
    upstreams = Upstreams.embedded([PLATFORM], grpc_ports={"platform": [free_port()]})
    with start_envoy([PLATFORM], upstreams) as edge:
        reply = httpx.get(f"{edge.url}/api/v1/health")
        assert reply.status_code == 503
        body = reply.json()
        assert body["code"] == grpc.StatusCode.UNAVAILABLE.value[0]
        assert body["details"][0]["reason"] == "UPSTREAM_UNAVAILABLE"
        with grpc.insecure_channel(edge.address) as channel:
            try:
                pb_grpc.PlatformServiceStub(channel).GetHealth(pb.GetHealthRequest(), timeout=10)
                raise AssertionError("GetHealth succeeded without an upstream")
            except grpc.RpcError as refused:
                assert refused.code() == grpc.StatusCode.UNAVAILABLE
                # A gRPC caller gets a plain message, not the REST JSON body.
                assert not (refused.details() or "").startswith("{")
