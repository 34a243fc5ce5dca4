"""Auth, error mapping, request ids and metrics on a real kit server (tests/kit/conftest.py)."""

from __future__ import annotations

import re

import grpc
import httpx
import pytest
from aistack_kit.errors import error_info_of
from aistack_kit.testing import auth_metadata
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

PROBE = "/aistack.probe.v1.ProbeService/"


def _call(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
    # No serializers: the probe service speaks raw bytes.
    return channel.unary_unary(PROBE + method, None, None)


async def test_call_without_token_is_unauthenticated_with_error_info(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(channel, "Echo")(b"hi")
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info_of(refused.value)
    assert info is not None
    assert (info.reason, info.domain) == ("INVALID_TOKEN", "probe.aistack")


async def test_wrong_token_is_refused_and_right_token_passes(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _call(channel, "Echo")(b"hi", metadata=auth_metadata("wrong-token"))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await _call(channel, "Echo")(b"hi", metadata=auth_metadata()) == b"hi"


async def test_health_needs_no_token(channel: grpc.aio.Channel) -> None:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    ("method", "code", "reason", "metadata"),
    [
        ("Invalid", grpc.StatusCode.INVALID_ARGUMENT, "BAD_SAMPLE_RATE", {"got": "44100"}),
        ("NotFound", grpc.StatusCode.NOT_FOUND, "MODEL_NOT_FOUND", {"model": "whisper-huge"}),
        ("Exhausted", grpc.StatusCode.RESOURCE_EXHAUSTED, "QUEUE_FULL", {}),
    ],
)
async def test_domain_errors_map_to_status_and_error_info(
    channel: grpc.aio.Channel, method: str, code: grpc.StatusCode, reason: str, metadata: dict[str, str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _call(channel, method)(b"", metadata=auth_metadata())
    assert failed.value.code() == code
    info = error_info_of(failed.value)
    assert info is not None
    assert info.reason == reason
    assert info.domain == "probe.aistack"
    assert dict(info.metadata) == metadata


async def test_resource_exhausted_carries_retry_info(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _call(channel, "Exhausted")(b"", metadata=auth_metadata())
    status = rpc_status.from_call(failed.value)  # type: ignore[arg-type]
    assert status is not None
    retry = [d for d in status.details if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR)]
    assert len(retry) == 1
    info = error_details_pb2.RetryInfo()
    retry[0].Unpack(info)
    assert info.retry_delay.ToMilliseconds() == 2500


async def test_unexpected_exception_is_internal_without_its_detail(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await _call(channel, "Crash")(b"", metadata=[*auth_metadata(), ("x-request-id", "req-crash-1")])
    assert failed.value.code() == grpc.StatusCode.INTERNAL
    assert "secret internal detail" not in (failed.value.details() or "")
    assert "req-crash-1" in (failed.value.details() or "")
    info = error_info_of(failed.value)
    assert info is not None and info.reason == "INTERNAL"


async def test_request_id_is_echoed_or_made(channel: grpc.aio.Channel) -> None:
    call = _call(channel, "Echo")(b"x", metadata=[*auth_metadata(), ("x-request-id", "req-42")])
    await call
    sent_back = dict(await call.initial_metadata())
    assert sent_back["x-request-id"] == "req-42"
    assert re.fullmatch(r"probe@127\.0\.0\.1:\d+", str(sent_back["x-served-by"]))

    call = _call(channel, "Echo")(b"x", metadata=auth_metadata())
    await call
    assert re.fullmatch(r"[0-9a-f]{32}", str(dict(await call.initial_metadata())["x-request-id"]))


def _handled(metrics: str, method: str, code: str) -> float:
    pattern = (
        r"aistack_grpc_server_handled_total\{"
        rf'grpc_code="{code}",grpc_method="{method}",grpc_service="aistack.probe.v1.ProbeService"\}} (\S+)'
    )
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def test_metrics_endpoint_counts_calls(channel: grpc.aio.Channel, metrics_port: int) -> None:
    async with httpx.AsyncClient() as http:
        before = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        for _ in range(3):
            await _call(channel, "Echo")(b"x", metadata=auth_metadata())
        with pytest.raises(grpc.aio.AioRpcError):
            await _call(channel, "Invalid")(b"", metadata=auth_metadata())
        after = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    assert _handled(after, "Echo", "OK") - _handled(before, "Echo", "OK") == 3
    assert (
        _handled(after, "Invalid", "INVALID_ARGUMENT") - _handled(before, "Invalid", "INVALID_ARGUMENT") == 1
    )
    assert "aistack_grpc_server_handling_seconds_bucket" in after
