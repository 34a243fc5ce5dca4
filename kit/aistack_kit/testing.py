"""Helpers for tests and benchmarks: real servers in-process on port 0, free ports, the machine."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

from aistack_kit.config import Env, ServerSettings
from aistack_kit.server import Capability, RunningServer, start_server

TEST_TOKEN = "test-token-0123456789"


def test_settings(service: str, extra_env: Mapping[str, str] | None = None) -> ServerSettings:
    env = {"API_TOKENS": f'["{TEST_TOKEN}"]', "AISTACK_GRPC_PORT": "0", "AISTACK_SHUTDOWN_GRACE_SECONDS": "1"}
    env.update(extra_env or {})
    return ServerSettings.from_env(service, 0, Env(env))


async def start_test_server(
    capability: Capability, service: str = "test", extra_env: Mapping[str, str] | None = None
) -> RunningServer:
    return await start_server(capability, test_settings(service, extra_env))


def auth_metadata(token: str = TEST_TOKEN) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def free_port() -> int:
    """A TCP port free on loopback now (for processes that must be told their port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def machine_description() -> str:
    """What a benchmark ran on: CPU model, cores, Python, and the load when it started (the dev
    machines are shared, so the load says how far to trust wall-clock numbers)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, load average {load:.1f} at start"
    )


def edit_distance(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> int:
    """Levenshtein distance between two token sequences (words for WER, characters for CER); each
    caller decides how its text is tokenised."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref_token in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp_token in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_token != hyp_token))
        previous = current
    return previous[-1]
