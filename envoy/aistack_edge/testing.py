"""Real Envoy and real service processes on free ports, for tests that go through the edge.

A capability's tests can put Envoy in front of their service to test REST as users call it:
`start_service("aistack_asr", port, env)` runs the service and waits for SERVING;
`start_envoy([ASR], Upstreams.embedded([ASR], grpc_ports={"asr": [port]}))` builds the embedded config
for those entries on free listener/admin ports; `edge.wait_healthy()` waits for Envoy's health checks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
from aistack_kit.testing import free_port as free_port  # re-exported: edge tests import it from here
from aistack_launcher.catalog import ServiceEntry
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aistack_edge.build import Target, Upstreams, build_config, write_config
from aistack_edge.settings import EdgeSettings

ENVOY = str(Path(sys.executable).parent / "envoy")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@contextlib.contextmanager
def start_process(name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Iterator[Process]:
    with tempfile.NamedTemporaryFile(prefix=f"aistack-{name}-", suffix=".log", delete=False) as log:
        popen = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
    process = Process(name, popen, Path(log.name))
    try:
        yield process
    finally:
        process.stop()
        process.log.unlink(missing_ok=True)


@contextlib.contextmanager
def start_service(
    module: str, port: int, env: Mapping[str, str] | None = None, *, timeout: float = 60.0
) -> Iterator[Process]:
    """`python -m <module>` on `port`, returned once its gRPC health says SERVING."""
    full_env = {"AISTACK_GRPC_PORT": str(port), "AISTACK_SHUTDOWN_GRACE_SECONDS": "1", **(env or {})}
    with start_process(module, [sys.executable, "-m", module], full_env) as process:
        wait_serving(port, process, timeout)
        yield process


def wait_serving(port: int, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited {process.popen.returncode}:\n{process.output()}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{process.name} not SERVING on {port}:\n{process.output()}")
            time.sleep(0.2)


@dataclass
class RunningEnvoy:
    process: Process
    port: int
    admin_port: int
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every upstream host passed Envoy's own gRPC health check."""
        deadline = time.monotonic() + timeout
        last: dict[str, list[bool | None]] = {}
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise RuntimeError(f"envoy exited {self.process.popen.returncode}:\n{self.process.output()}")
            with contextlib.suppress(OSError, urllib.error.URLError, KeyError, ValueError):
                last = upstream_health(self.admin_port)
            hosts = [healthy for cluster in last.values() for healthy in cluster]
            if hosts and all(healthy is not False for healthy in hosts):
                return
            time.sleep(0.2)
        raise TimeoutError(f"envoy upstreams not healthy: {json.dumps(last)}\n{self.process.output()}")


def upstream_health(admin_port: int) -> dict[str, list[bool | None]]:
    """Each cluster's hosts as Envoy's admin API sees them: whether they passed Envoy's active (gRPC) health
    check, or None for hosts Envoy does not health-check (the HTTP clusters)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters?format=json", timeout=2) as reply:
        clusters = json.loads(reply.read())["cluster_statuses"]
    return {
        cluster["name"]: [
            (
                status["eds_health_status"] == "HEALTHY" and not status.get("failed_active_health_check")
                if "eds_health_status" in status
                else None
            )
            for status in (host["health_status"] for host in cluster.get("host_statuses", []))
        ]
        for cluster in clusters
    }


@contextlib.contextmanager
def start_envoy(
    services: Sequence[ServiceEntry],
    upstreams: Upstreams,
    settings: EdgeSettings | None = None,
) -> Iterator[RunningEnvoy]:
    """Envoy with the embedded config for `services` at `upstreams`, on free listener/admin ports."""
    settings = replace(settings or EdgeSettings(), port=free_port(), admin_port=free_port())
    config = build_config(Target.EMBEDDED, services=services, settings=settings, upstreams=upstreams)
    with tempfile.TemporaryDirectory(prefix="aistack-envoy-") as tmp:
        config_path = Path(tmp) / "envoy.json"
        write_config(config, config_path)
        argv = [ENVOY, "--disable-hot-restart", "--log-level", "warning", "-c", str(config_path)]
        with start_process("envoy", argv) as process:
            envoy = RunningEnvoy(process, settings.port, settings.admin_port, config_path)
            _wait_port(envoy.port, process)
            yield envoy


def _wait_port(port: int, process: Process, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited {process.popen.returncode}:\n{process.output()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{process.name} did not listen on {port}:\n{process.output()}")
