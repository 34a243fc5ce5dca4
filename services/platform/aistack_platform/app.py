"""The platform capability and its configuration."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_kit.config import ConfigError, Env
from aistack_kit.server import Capability

from aistack_platform.deployment import DeployedService, deployment_from_env, to_proto
from aistack_platform.health_probe import HealthProbe, Target
from aistack_platform.servicer import PlatformServicer

DEFAULT_PORT = 50050
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PlatformService"].full_name


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
    def __init__(self, targets: Sequence[Target], deployment: Sequence[DeployedService] = ()) -> None:
        self._probe = HealthProbe(targets)
        self._deployment = list(deployment)

    @property
    def service_names(self) -> Sequence[str]:
        return (SERVICE_NAME,)

    @property
    def reflection_service_names(self) -> Sequence[str]:
        # Envoy sends every reflection request here, so grpcurl through the edge sees the whole API.
        names = [SERVICE_NAME]
        names += [n for s in self._deployment for n in s.grpc_services if n not in names]
        return names

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_PlatformServiceServicer_to_server(
            PlatformServicer(self._probe, to_proto(self._deployment)), server
        )

    async def close(self) -> None:
        await self._probe.close()


def build() -> PlatformCapability:
    return PlatformCapability(targets_from_env(), deployment_from_env())
