"""What this deployment serves, as the launcher (or compose) describes it, checked against the stubs.

AISTACK_PLATFORM_SERVICES is a JSON list of `{"name", "grpc_services", "http_prefixes", "replicas"}`.
REST routes are not configured: they are read from each service's `google.api.http` annotations, so
they can never disagree with what Envoy transcodes.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass

from aistack.platform.v1 import platform_service_pb2 as pb
from aistack_kit.config import ConfigError, Env
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pool

VARIABLE = "AISTACK_PLATFORM_SERVICES"
_HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class DeployedService:
    name: str
    grpc_services: tuple[str, ...]
    http_prefixes: tuple[str, ...] = ()
    replicas: int = 1


def deployment_from_env(env: Env | None = None) -> list[DeployedService]:
    raw = (env or Env()).raw(VARIABLE)
    if raw is None:
        return []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{VARIABLE} must be a JSON list: {exc.msg}") from None
    if not isinstance(items, list):
        raise ConfigError(f"{VARIABLE} must be a JSON list of services")
    services = []
    for item in items:
        try:
            service = DeployedService(
                name=str(item["name"]),
                grpc_services=tuple(str(s) for s in item["grpc_services"]),
                http_prefixes=tuple(str(p) for p in item.get("http_prefixes", ())),
                replicas=int(item.get("replicas", 1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ConfigError(
                f"{VARIABLE} entries need name and grpc_services (http_prefixes and replicas are "
                f"optional), got {item!r}"
            ) from None
        for full_name in service.grpc_services:
            if find_service(full_name) is None:
                raise ConfigError(f"{VARIABLE}: no generated stubs define gRPC service {full_name!r}")
        services.append(service)
    return services


def find_service(full_name: str) -> descriptor.ServiceDescriptor | None:
    """The service's descriptor, importing its package's generated modules on first use."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindServiceByName(full_name)
    except KeyError:
        pass
    package = full_name.rpartition(".")[0]
    try:
        module = importlib.import_module(package)
    except ImportError:
        return None
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.endswith("_pb2"):
            importlib.import_module(f"{package}.{info.name}")
    try:
        return pool.FindServiceByName(full_name)
    except KeyError:
        return None


def rest_routes(full_name: str) -> list[pb.RestRoute]:
    service = find_service(full_name)
    if service is None:
        return []
    routes = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]
        for binding in (rule, *rule.additional_bindings):
            pattern = binding.WhichOneof("pattern")
            if pattern in _HTTP_METHODS:
                path = getattr(binding, pattern)
                routes.append(
                    pb.RestRoute(
                        http_method=pattern.upper(), path=path, grpc_method=f"/{full_name}/{method.name}"
                    )
                )
    return routes


def to_proto(services: Sequence[DeployedService]) -> list[pb.DeployedService]:
    return [
        pb.DeployedService(
            name=s.name,
            grpc_services=s.grpc_services,
            rest_routes=[route for name in s.grpc_services for route in rest_routes(name)],
            http_prefixes=s.http_prefixes,
            replicas=s.replicas,
        )
        for s in services
    ]
