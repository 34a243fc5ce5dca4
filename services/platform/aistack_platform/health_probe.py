"""Asks each capability's grpc.health.v1 service whether it serves."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from aistack.platform.v1 import platform_service_pb2 as pb
from grpc_health.v1 import health_pb2, health_pb2_grpc


@dataclass(frozen=True)
class Target:
    """A capability's gRPC service name and the address of one replica of it."""

    service: str
    address: str


class HealthProbe:
    def __init__(self, targets: Sequence[Target], timeout_seconds: float = 2.0) -> None:
        self._targets = list(targets)
        self._timeout = timeout_seconds
        # Made on first use: a grpc.aio channel belongs to the event loop it was created on, and the
        # probe is built before the server's loop runs.
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def check_all(self) -> list[pb.ServiceHealth]:
        return list(await asyncio.gather(*(self._check(t) for t in self._targets)))

    async def _check(self, target: Target) -> pb.ServiceHealth:
        if target.address not in self._channels:
            self._channels[target.address] = grpc.aio.insecure_channel(target.address)
        stub = health_pb2_grpc.HealthStub(self._channels[target.address])
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=target.service), timeout=self._timeout
            )
        except grpc.aio.AioRpcError:
            status = pb.SERVING_STATUS_UNREACHABLE
        else:
            serving = reply.status == health_pb2.HealthCheckResponse.SERVING
            status = pb.SERVING_STATUS_SERVING if serving else pb.SERVING_STATUS_NOT_SERVING
        return pb.ServiceHealth(service=target.service, target=target.address, status=status)

    async def close(self) -> None:
        await asyncio.gather(*(channel.close(None) for channel in self._channels.values()))
