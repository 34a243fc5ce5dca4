"""The platform capability and its configuration."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_kit.config import ConfigError, Env
from aistack_kit.server import Capability

from aistack_platform.health_probe import HealthProbe, Target
from aistack_platform.servicer import PlatformServicer

DEFAULT_PORT = 50050


def targets_from_env(env: Env | None = None) -> list[Target]:
    """AISTACK_HEALTH_TARGETS: `service=host:port` pairs, comma separated."""
    env = env or Env()
    targets = []
    for item in env.str_list("AISTACK_HEALTH_TARGETS"):
        service, sep, address = item.partition("=")
        if not sep or not service or ":" not in address:
            raise ConfigError(f"AISTACK_HEALTH_TARGETS entries must be service=host:port, got {item!r}")
        targets.append(Target(service.strip(), address.strip()))
    return targets


class PlatformCapability(Capability):
    def __init__(self, targets: Sequence[Target]) -> None:
        self._probe = HealthProbe(targets)

    @property
    def service_names(self) -> Sequence[str]:
        return (pb.DESCRIPTOR.services_by_name["PlatformService"].full_name,)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_PlatformServiceServicer_to_server(PlatformServicer(self._probe), server)

    async def close(self) -> None:
        await self._probe.close()
