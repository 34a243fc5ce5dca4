"""Helpers for the LLM tests: the real llama.cpp upstream (SmolLM2-135M) and the real service."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aistack_kit.config import Env
from aistack_kit.server import RunningServer
from aistack_kit.testing import TEST_TOKEN, start_test_server
from aistack_kit.testing import free_port as free_port  # re-exported for the llm tests
from aistack_llm.app import LlmCapability
from aistack_llm.config import LlmConfig
from aistack_llm.embedded_upstream import server_argv

# Tests ask for more than the embedded default allows only where they need a long generation.
MAX_TOKENS_LIMIT = 1024


@dataclass
class Upstream:
    """A running `llama_cpp.server` process and the log file of its output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_upstream(log_dir: Path, port: int | None = None) -> Upstream:
    """Starts llama.cpp's server as the launcher does (on a free port by default); waits until it serves."""
    port = port or free_port()
    log = log_dir / f"llama-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_argv(port, env=Env(env)), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    upstream = Upstream(process, port, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"llama.cpp server exited with {process.returncode}:\n{upstream.log_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{upstream.url}/models", timeout=1).status_code == 200:
                return upstream
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    upstream.stop()
    raise RuntimeError(f"llama.cpp server did not start in 120 s:\n{upstream.log_text()[-3000:]}")


def llm_config(upstream_url: str, extra: Mapping[str, str] | None = None) -> LlmConfig:
    env = {
        "AISTACK_LLM_UPSTREAMS": json.dumps({"llama-cpp": {"url": upstream_url, "dialect": "llama-cpp"}}),
        "AISTACK_LLM_ALIASES": json.dumps(
            {"paneas-v1": {"upstream": "llama-cpp", "model": "SmolLM2-135M-Instruct"}}
        ),
        "AISTACK_LLM_MAX_TOKENS_LIMIT": str(MAX_TOKENS_LIMIT),
        "AISTACK_LLM_DEFAULT_MAX_TOKENS": "32",
        "AISTACK_LLM_HTTP_PORT": "0",
        **(extra or {}),
    }
    return LlmConfig.from_env(Env(env))


@dataclass
class Service:
    running: RunningServer
    capability: LlmCapability
    channel: grpc.aio.Channel

    @property
    def stub(self) -> pb_grpc.LlmServiceAsyncStub:
        return pb_grpc.LlmServiceStub(self.channel)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.capability.http.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.http_url}/api/v1"

    async def wait_streams_closed(self, within: float = 5.0) -> float:
        """Seconds until no stream to the upstream is open any more (fails after `within` seconds)."""
        started = time.monotonic()
        while self.capability.service.open_streams:
            if time.monotonic() - started > within:
                raise AssertionError(f"{self.capability.service.open_streams} upstream stream(s) still open")
            await asyncio.sleep(0.01)
        return time.monotonic() - started


async def start_service(config: LlmConfig) -> Service:
    capability = LlmCapability(config, [TEST_TOKEN])
    running = await start_test_server(capability, "llm")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    return Service(running, capability, channel)


async def stop_service(service: Service) -> None:
    await service.channel.close(None)
    await service.running.stop()


def auth_headers(token: str = TEST_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until `condition` holds; fails naming `what` after `within` seconds."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started
