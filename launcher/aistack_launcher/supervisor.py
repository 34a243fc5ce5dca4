"""Starts the plan's processes, waits until each one serves, watches them, and stops them all cleanly.

Every child runs in its own session, so a Ctrl-C in the terminal reaches the launcher only; the
launcher then stops the edge first (no new requests), then the services (SIGTERM: health goes
NOT_SERVING and in-flight calls get their grace), then Redis and the other helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aistack_launcher.plan import Kind, Plan, ProcessSpec

# SIGTERM to SIGKILL: the kit's default shutdown grace (10 s) plus time to flush logs and exit.
STOP_TIMEOUT_SECONDS = 20.0
PROGRESS_EVERY_SECONDS = 5.0


class LaunchFailed(Exception):
    def __init__(self, message: str, child: Child | None = None) -> None:
        super().__init__(message)
        self.child = child


@dataclass
class Child:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    started: float

    @property
    def name(self) -> str:
        return self.spec.name

    def exited(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 30) -> str:
        try:
            with self.log_path.open(errors="replace") as log:
                return "".join(deque(log, maxlen=lines))
        except OSError:
            return ""


class Supervisor:
    def __init__(self, plan: Plan, run_dir: Path, out: TextIO) -> None:
        self._plan = plan
        self._run_dir = run_dir
        self._logs = run_dir / "logs"
        self._out = out
        self._children: list[Child] = []
        self._stop = asyncio.Event()

    def say(self, line: str) -> None:
        print(line, file=self._out, flush=True)

    async def run(self, on_ready: Callable[[], None] | None = None) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stop.set)
        self._logs.mkdir(parents=True, exist_ok=True)
        code = 0
        try:
            await self._start_all()
            if not self._stop.is_set():
                if on_ready:
                    on_ready()
                await self._watch()
        except LaunchFailed as failure:
            code = 1
            self.say(f"\nFAILED: {failure}")
            if failure.child is not None:
                self.say(f"--- last lines of {failure.child.log_path} ---")
                self.say(failure.child.log_tail().rstrip())
                self.say("---")
        finally:
            await self._stop_all()
        return code

    # -- starting -----------------------------------------------------------------------------------

    def _spawn(self, spec: ProcessSpec) -> Child:
        log_path = self._logs / f"{spec.name}.log"
        log = log_path.open("ab")
        try:
            process = subprocess.Popen(
                spec.argv,
                env={**os.environ, **spec.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise LaunchFailed(f"could not start {spec.name} ({spec.argv[0]}): {exc}") from None
        finally:
            log.close()
        child = Child(spec, process, log_path, time.monotonic())
        self._children.append(child)
        self._write_state()
        return child

    def _write_state(self) -> None:
        state = {
            "launcher_pid": os.getpid(),
            "edge_port": self._plan.edge_port,
            "children": {c.name: c.process.pid for c in self._children},
        }
        (self._run_dir / "launcher.json").write_text(json.dumps(state, indent=2) + "\n")

    async def _start_all(self) -> None:
        for spec in self._plan.of_kind(Kind.AUX):
            if _port_open(spec.ready_port):
                self.say(f"  = {spec.name}: something already listens on port {spec.ready_port}; using it")
                continue
            child = self._spawn(spec)
            await self._wait_port(child)
            self.say(f"  ✓ {spec.name} ready on port {spec.ready_port}")
            if self._stop.is_set():
                return

        services = self._plan.of_kind(Kind.SERVICE)
        busy = [s for s in services if _port_open(s.grpc_port)]
        if busy:
            names = ", ".join(f"{s.name} ({s.grpc_port})" for s in busy)
            raise LaunchFailed(
                f"ports already in use: {names}. Is another `make run` up? "
                "Stop it, or move this one with AISTACK_PORT_OFFSET=1000."
            )
        self.say(f"starting {len(services)} service process(es); logs in {self._logs}/")
        children = [self._spawn(spec) for spec in services]
        self._plan.envoy_config_path.write_text(json.dumps(self._plan.envoy_config, indent=2) + "\n")
        (edge_spec,) = self._plan.of_kind(Kind.EDGE)
        edge = self._spawn(edge_spec)
        await self._wait_services(children)
        if self._stop.is_set():
            return
        await self._wait_port(edge)
        await self._wait_edge_health(edge)

    async def _wait_port(self, child: Child) -> None:
        assert child.spec.ready_port is not None
        deadline = child.started + child.spec.ready_timeout_seconds
        while not self._stop.is_set():
            self._check_alive(child)
            if _port_open(child.spec.ready_port) and (
                child.spec.ready_path is None or _http_ok(child.spec.ready_port, child.spec.ready_path)
            ):
                return
            if time.monotonic() > deadline:
                raise LaunchFailed(
                    f"{child.name} not ready on port {child.spec.ready_port} after "
                    f"{child.spec.ready_timeout_seconds:.0f} s",
                    child,
                )
            await self._sleep(0.2)

    async def _wait_services(self, children: list[Child]) -> None:
        channels = {c.name: grpc.aio.insecure_channel(f"127.0.0.1:{c.spec.grpc_port}") for c in children}
        waiting = {c.name: c for c in children}
        last_progress = time.monotonic()
        try:
            while waiting and not self._stop.is_set():
                for child in list(waiting.values()):
                    self._check_alive(child)
                    state = await _health(channels[child.name])
                    elapsed = time.monotonic() - child.started
                    if state == "SERVING":
                        self.say(f"  ✓ {child.name} serving on port {child.spec.grpc_port} ({elapsed:.1f} s)")
                        del waiting[child.name]
                    elif elapsed > child.spec.ready_timeout_seconds:
                        raise LaunchFailed(
                            f"{child.name} not SERVING after {elapsed:.0f} s (health: {state})", child
                        )
                if waiting and time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                    last_progress = time.monotonic()
                    pending = ", ".join(
                        f"{c.name} ({time.monotonic() - c.started:.0f} s)" for c in waiting.values()
                    )
                    self.say(f"  … waiting for {pending}: loading models can take a minute")
                await self._sleep(0.5)
        finally:
            await asyncio.gather(*(channel.close(None) for channel in channels.values()))

    async def _wait_edge_health(self, edge: Child) -> None:
        """Envoy is up when its own health checks have found the services: /api/v1/health answers 200."""
        deadline = time.monotonic() + edge.spec.ready_timeout_seconds
        last = ""
        while not self._stop.is_set():
            self._check_alive(edge)
            last = await asyncio.to_thread(_get, self._plan.edge_port, "/api/v1/health")
            if last.startswith("200"):
                self.say(f"  ✓ envoy serving on port {self._plan.edge_port}")
                return
            if time.monotonic() > deadline:
                raise LaunchFailed(f"GET /api/v1/health through Envoy still answers {last}", edge)
            await self._sleep(0.5)

    def _check_alive(self, child: Child) -> None:
        code = child.exited()
        if code is not None:
            raise LaunchFailed(f"{child.name} exited with code {code}", child)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- running and stopping ----------------------------------------------------------------------

    async def _watch(self) -> None:
        while not self._stop.is_set():
            for child in self._children:
                self._check_alive(child)
            await self._sleep(1.0)

    async def _stop_all(self) -> None:
        running = [c for c in self._children if c.exited() is None]
        if not running:
            return
        self.say("\nstopping …")
        for kind in (Kind.EDGE, Kind.SERVICE, Kind.AUX):
            group = [c for c in running if c.spec.kind is kind]
            await asyncio.gather(*(self._stop_child(c) for c in group))

    async def _stop_child(self, child: Child) -> None:
        _signal_group(child, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(child.process.wait, STOP_TIMEOUT_SECONDS)
        if child.exited() is None:
            self.say(f"  ! {child.name} ignored SIGTERM for {STOP_TIMEOUT_SECONDS:.0f} s; killing it")
            _signal_group(child, signal.SIGKILL)
            child.process.wait()
        else:
            # Anything the child started in its session (a model server, say) goes with it.
            _signal_group(child, signal.SIGKILL)
        self.say(f"  - {child.name} stopped (exit code {child.exited()})")


def _signal_group(child: Child, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, sig)


def _port_open(port: int | None) -> bool:
    if port is None:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _get(port: int, path: str) -> str:
    """`<status> <body start>` of a plain GET on 127.0.0.1, or why it failed."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
            return f"{reply.status} {reply.read(200).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(200).decode(errors='replace')}"
    except (OSError, urllib.error.URLError) as exc:
        return f"no answer ({exc})"


def _http_ok(port: int, path: str) -> bool:
    return _get(port, path).startswith("200")


async def _health(channel: grpc.aio.Channel) -> str:
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
    except grpc.aio.AioRpcError as exc:
        return "UNREACHABLE" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
