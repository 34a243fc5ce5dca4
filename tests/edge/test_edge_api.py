"""REST, native gRPC, gRPC-Web and reflection through a real Envoy in front of a real platform service."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import grpc
import httpx
import pytest
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_edge.testing import RunningEnvoy
from aistack_kit.errors import error_info_of
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from aistack_launcher.catalog import PLATFORM

GRPCURL = str(Path(sys.executable).parent / "grpcurl")
ASR_SERVICE = "aistack.asr.v1.AsrService"
PLATFORM_SERVICE = PLATFORM.grpc_services[0]


def test_rest_health_answers_200_json(edge: RunningEnvoy) -> None:
    reply = httpx.get(f"{edge.url}/api/v1/health")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    body = reply.json()
    assert body["status"] == "SERVING_STATUS_SERVING"
    assert body["version"]
    # The caller gets the request id Envoy generated and the service logged.
    assert reply.headers["x-request-id"]


def test_rest_without_token_is_401_with_error_info(edge: RunningEnvoy) -> None:
    reply = httpx.get(f"{edge.url}/api/v1/services")
    assert reply.status_code == 401
    body = reply.json()
    assert body["code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    (detail,) = body["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert detail["reason"] == "INVALID_TOKEN"
    assert detail["domain"] == "platform.aistack"


def test_rest_with_wrong_token_is_401(edge: RunningEnvoy) -> None:
    reply = httpx.get(f"{edge.url}/api/v1/services", headers={"authorization": "Bearer not-a-token"})
    assert reply.status_code == 401
    assert reply.json()["details"][0]["reason"] == "INVALID_TOKEN"


def test_rest_with_token_lists_services_and_routes(edge: RunningEnvoy) -> None:
    reply = httpx.get(f"{edge.url}/api/v1/services", headers={"authorization": f"Bearer {TEST_TOKEN}"})
    assert reply.status_code == 200
    services = {s["name"]: s for s in reply.json()["services"]}
    assert services["platform"]["grpc_services"] == [PLATFORM_SERVICE]
    routes = {(r["http_method"], r["path"]) for r in services["platform"]["rest_routes"]}
    assert routes == {("GET", "/api/v1/health"), ("GET", "/api/v1/services")}
    # REST routes come from the ASR contract's google.api.http annotations (the seed's upload path).
    asr_routes = {(r["http_method"], r["path"]) for r in services["asr"]["rest_routes"]}
    assert ("POST", "/api/v1/asr") in asr_routes
    assert services["asr"]["replicas"] == 2


def test_unknown_path_is_404_json(edge: RunningEnvoy) -> None:
    reply = httpx.get(f"{edge.url}/api/v1/nothing-here")
    assert reply.status_code == 404
    assert reply.json()["details"][0]["reason"] == "NO_ROUTE"


def test_native_grpc_through_envoy_refuses_without_token(edge: RunningEnvoy) -> None:
    with grpc.insecure_channel(edge.address) as channel:
        stub = pb_grpc.PlatformServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ListServices(pb.ListServicesRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info_of(refused.value)
        assert info is not None and info.reason == "INVALID_TOKEN"
        reply = stub.ListServices(pb.ListServicesRequest(), metadata=auth_metadata(), timeout=5)
        assert [s.name for s in reply.services] == ["platform", "asr"]
        # Health stays public over gRPC too.
        assert stub.GetHealth(pb.GetHealthRequest(), timeout=5).status == pb.SERVING_STATUS_SERVING


def test_grpcurl_lists_services_through_reflection(edge: RunningEnvoy) -> None:
    listed = subprocess.run(
        [GRPCURL, "-plaintext", edge.address, "list"], capture_output=True, text=True, timeout=30, check=True
    )
    names = listed.stdout.split()
    # No .proto files given: the platform's reflection describes the whole deployment.
    assert PLATFORM_SERVICE in names
    assert ASR_SERVICE in names
    described = subprocess.run(
        [GRPCURL, "-plaintext", edge.address, "describe", ASR_SERVICE],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "rpc StreamingRecognize" in described.stdout


def test_grpcurl_call_with_token(edge: RunningEnvoy) -> None:
    called = subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-H",
            f"authorization: Bearer {TEST_TOKEN}",
            edge.address,
            f"{PLATFORM_SERVICE}/ListServices",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert '"name": "platform"' in called.stdout


def _grpc_web_frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def _grpc_web_frames(body: bytes) -> list[tuple[int, bytes]]:
    frames, offset = [], 0
    while offset < len(body):
        flag, length = struct.unpack(">BI", body[offset : offset + 5])
        frames.append((flag, body[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    return frames


def test_grpc_web_call(edge: RunningEnvoy) -> None:
    reply = httpx.post(
        f"{edge.url}/{PLATFORM_SERVICE}/ListServices",
        content=_grpc_web_frame(pb.ListServicesRequest().SerializeToString()),
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "authorization": f"Bearer {TEST_TOKEN}",
            "origin": "http://example.test",
        },
    )
    assert reply.status_code == 200
    assert "grpc-status" in reply.headers["access-control-expose-headers"]
    frames = _grpc_web_frames(reply.content)
    data = [payload for flag, payload in frames if flag == 0]
    trailers = [payload for flag, payload in frames if flag & 0x80]
    assert b"grpc-status:0" in trailers[0].replace(b" ", b"")
    message = pb.ListServicesResponse.FromString(data[0])
    assert [s.name for s in message.services] == ["platform", "asr"]


def test_grpc_web_without_token_reports_unauthenticated(edge: RunningEnvoy) -> None:
    reply = httpx.post(
        f"{edge.url}/{PLATFORM_SERVICE}/ListServices",
        content=_grpc_web_frame(b""),
        headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
    )
    # gRPC-Web carries the status in headers (trailers-only) or a trailer frame.
    status = (
        reply.headers.get("grpc-status")
        or next(p for f, p in _grpc_web_frames(reply.content) if f & 0x80).decode()
    )
    assert str(grpc.StatusCode.UNAUTHENTICATED.value[0]) in status


def test_cors_preflight_allows_grpc_web(edge: RunningEnvoy) -> None:
    reply = httpx.options(
        f"{edge.url}/{PLATFORM_SERVICE}/GetHealth",
        headers={
            "origin": "http://example.test",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,x-grpc-web,authorization",
        },
    )
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://example.test"
    assert "x-grpc-web" in reply.headers["access-control-allow-headers"]
