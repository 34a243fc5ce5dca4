"""What the launcher starts, derived from the catalog: pure data, so it can be read and tested alone."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from aistack_edge.build import PLATFORM_SERVICE, Target, Upstreams, build_config
from aistack_edge.settings import EdgeSettings
from aistack_kit.config import ConfigError, Env

from aistack_launcher.catalog import AuxProcess, ServiceEntry, replica_ports


class Kind(StrEnum):
    AUX = "aux"
    SERVICE = "service"
    EDGE = "edge"


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    kind: Kind
    argv: tuple[str, ...]
    # Added to the launcher's own environment.
    env: dict[str, str] = field(default_factory=dict)
    # Services: the gRPC port whose health service must say SERVING.
    grpc_port: int | None = None
    # Aux processes and the edge: ready once this port accepts (and `ready_path` answers 200).
    ready_port: int | None = None
    ready_path: str | None = None
    ready_timeout_seconds: float = 300.0


@dataclass(frozen=True)
class Plan:
    processes: tuple[ProcessSpec, ...]
    edge_port: int
    envoy_config: dict[str, object]
    # Where the supervisor writes `envoy_config` before it starts Envoy.
    envoy_config_path: Path

    def of_kind(self, kind: Kind) -> list[ProcessSpec]:
        return [p for p in self.processes if p.kind is kind]


def select(services: Sequence[ServiceEntry], names: Sequence[str] | None) -> list[ServiceEntry]:
    """The catalog entries to start; the platform always comes along (it answers /api/v1/health)."""
    if not names:
        return list(services)
    known = {s.name for s in services}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"AISTACK_SERVICES names unknown services {', '.join(unknown)}; "
            f"the catalog has {', '.join(sorted(known))}"
        )
    wanted = {*names, PLATFORM_SERVICE}
    return [s for s in services if s.name in wanted]


def place_replicas(services: Sequence[ServiceEntry], env: Env) -> list[ServiceEntry]:
    """The catalog entries with the operator's replica counts and GPU placement applied.

    `AISTACK_<NAME>_GPUS=0,1` starts one replica per listed GPU, each seeing only its own device
    (an id may repeat: `0,0,1,1` puts two replicas on each of two GPUs); `AISTACK_<NAME>_REPLICAS=N`
    starts N replicas that share whatever devices there are.
    """
    placed = []
    for entry in services:
        prefix = f"AISTACK_{entry.name.upper().replace('-', '_')}_"
        gpus = tuple(env.str_list(f"{prefix}GPUS")) or entry.gpus
        replicas = env.int(f"{prefix}REPLICAS", len(gpus) or entry.replicas, minimum=1, maximum=64)
        if gpus and replicas != len(gpus):
            raise ConfigError(
                f"{prefix}REPLICAS={replicas} disagrees with {prefix}GPUS, which places {len(gpus)} "
                "replicas (one per listed GPU); set only one of them"
            )
        if any(not gpu.replace("-", "").isalnum() for gpu in gpus):
            raise ConfigError(f"{prefix}GPUS must list CUDA device ids or GPU UUIDs, got {','.join(gpus)!r}")
        placed.append(replace(entry, replicas=replicas, gpus=gpus))
    return placed


def _with_aux_ports(value: str, aux_ports: dict[str, int]) -> str:
    """`{aux[redis]}` -> the port Redis listens on in this run."""

    def port_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in aux_ports:
            raise ConfigError(f"catalog env {value!r} names helper {name!r}, which this run does not start")
        return str(aux_ports[name])

    return re.sub(r"\{aux\[([\w.-]+)\]\}", port_of, value)


def envoy_binary() -> str:
    beside_python = Path(sys.executable).parent / "envoy"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("envoy")
    if found is None:
        raise ConfigError("envoy not found next to the Python interpreter or on PATH (run `make setup`)")
    return found


def build_plan(
    services: Sequence[ServiceEntry],
    aux: Sequence[AuxProcess],
    *,
    tokens: Sequence[str],
    edge: EdgeSettings,
    run_dir: Path,
    port_offset: int = 0,
    startup_timeout_seconds: float = 300.0,
) -> Plan:
    python = sys.executable
    processes: list[ProcessSpec] = []
    names = {s.name for s in services}
    aux = [a for a in aux if not a.needed_by or names.intersection(a.needed_by)]
    aux_ports = {a.name: a.port + port_offset for a in aux}
    for proc in aux:
        port = aux_ports[proc.name]
        processes.append(
            ProcessSpec(
                name=proc.name,
                kind=Kind.AUX,
                argv=tuple(arg.format(port=port, python=python) for arg in proc.argv),
                env=dict(proc.env),
                ready_port=port,
                ready_path=proc.ready_path,
                ready_timeout_seconds=proc.ready_timeout_seconds,
            )
        )

    def ports(entry: ServiceEntry) -> list[int]:
        return replica_ports(entry, entry.grpc_port, port_offset)

    # The platform probes the first gRPC service of every replica of every other capability.
    health_targets = ",".join(
        f"{s.grpc_services[0]}=127.0.0.1:{port}"
        for s in services
        if s.name != PLATFORM_SERVICE
        for port in ports(s)
    )
    deployment = json.dumps(
        [
            {
                "name": s.name,
                "grpc_services": list(s.grpc_services),
                "http_prefixes": list(s.http_prefixes),
                "replicas": s.replicas,
            }
            for s in services
        ]
    )
    for entry in services:
        grpc_ports = ports(entry)
        metrics_ports = replica_ports(entry, entry.metrics_port, port_offset)
        http_ports = replica_ports(entry, entry.http_port, port_offset)
        for index, grpc_port in enumerate(grpc_ports):
            env = {
                **{
                    key: _with_aux_ports(value, aux_ports)
                    for key, value in entry.env.items()
                    if key not in os.environ
                },
                "AISTACK_GRPC_HOST": "127.0.0.1",
                "AISTACK_GRPC_PORT": str(grpc_port),
                "AISTACK_METRICS_PORT": str(metrics_ports[index]),
                "AISTACK_REPLICA_INDEX": str(index),
                "API_TOKENS": json.dumps(list(tokens)),
                "PYTHONUNBUFFERED": "1",
            }
            if http_ports:
                env["AISTACK_HTTP_PORT"] = str(http_ports[index])
            if entry.gpus:
                env["CUDA_VISIBLE_DEVICES"] = entry.gpus[index]
            if entry.name == PLATFORM_SERVICE:
                env["AISTACK_HEALTH_TARGETS"] = health_targets
                env["AISTACK_PLATFORM_SERVICES"] = deployment
            processes.append(
                ProcessSpec(
                    name=entry.name if entry.replicas == 1 else f"{entry.name}-{index}",
                    kind=Kind.SERVICE,
                    argv=(python, "-m", entry.module),
                    env=env,
                    grpc_port=grpc_port,
                    ready_timeout_seconds=startup_timeout_seconds,
                )
            )

    moved = replace(edge, port=edge.port + port_offset, admin_port=edge.admin_port + port_offset)
    config = build_config(
        Target.EMBEDDED,
        services=services,
        settings=moved,
        upstreams=Upstreams.embedded(services, port_offset=port_offset),
    )
    config_path = run_dir / "envoy.json"
    processes.append(
        ProcessSpec(
            name="envoy",
            kind=Kind.EDGE,
            # No hot restart: its shared memory would collide with any other Envoy on the machine.
            argv=(envoy_binary(), "--disable-hot-restart", "--log-level", "warning", "-c", str(config_path)),
            ready_port=moved.port,
            ready_timeout_seconds=60.0,
        )
    )
    return Plan(tuple(processes), moved.port, config, config_path)
