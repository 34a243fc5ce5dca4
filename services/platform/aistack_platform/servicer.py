"""PlatformService: translates the health probe's findings and the deployment into the API."""

from __future__ import annotations

from collections.abc import Sequence

from aistack.platform.v1 import platform_service_pb2 as pb
from aistack.platform.v1 import platform_service_pb2_grpc as pb_grpc
from aistack_kit import errors
from aistack_kit.grpc_types import Context

from aistack_platform.health_probe import HealthProbe

VERSION = "0.1.0"


class PlatformServicer(pb_grpc.PlatformServiceServicer):
    def __init__(self, probe: HealthProbe, deployment: Sequence[pb.DeployedService]) -> None:
        self._probe = probe
        self._deployment = pb.ListServicesResponse(services=deployment)

    async def GetHealth(self, request: pb.GetHealthRequest, context: Context) -> pb.GetHealthResponse:
        services = await self._probe.check_all()
        down = [s.service for s in services if s.status != pb.SERVING_STATUS_SERVING]
        if down:
            # 503 through Envoy, so load balancers and `make health` see the failure by status code.
            raise errors.Unavailable(
                f"not serving: {', '.join(down)}",
                reason="SERVICES_NOT_SERVING",
                metadata={"services": ",".join(down)},
            )
        return pb.GetHealthResponse(status=pb.SERVING_STATUS_SERVING, services=services, version=VERSION)

    async def ListServices(
        self, request: pb.ListServicesRequest, context: Context
    ) -> pb.ListServicesResponse:
        return self._deployment
