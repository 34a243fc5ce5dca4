"""The real launcher (`python -m aistack_launcher`), with every port moved off the defaults."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aistack_edge.settings import EdgeSettings
from aistack_launcher.catalog import AUX_PROCESSES, PLATFORM

pytestmark = pytest.mark.slow


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_offset() -> int:
    """An AISTACK_PORT_OFFSET under which every port the launcher binds for `platform` is free."""
    edge = EdgeSettings()
    base = [PLATFORM.grpc_port, PLATFORM.metrics_port, edge.port, edge.admin_port]
    base += [a.port for a in AUX_PROCESSES if not a.needed_by]
    for _ in range(200):
        offset = random.randrange(1000, 14000)
        if all(_free(port + offset) for port in base):
            return offset
    raise RuntimeError("no free port offset")


@dataclass
class Launched:
    process: subprocess.Popen[str]
    run_dir: Path
    offset: int
    output: Path

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output.read_text()
            if text in out:
                return out
            if self.process.poll() is not None:
                raise AssertionError(f"launcher exited {self.process.returncode}:\n{out}")
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} after {timeout} s:\n{self.output.read_text()}")


def _launch(tmp_path: Path, extra_env: dict[str, str] | None = None) -> Launched:
    offset = _free_offset()
    env = {k: v for k, v in os.environ.items() if k != "API_TOKENS" and not k.startswith("AISTACK_")}
    env.update({"AISTACK_PORT_OFFSET": str(offset), **(extra_env or {})})
    output = tmp_path / "launcher.out"
    with output.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aistack_launcher",
                "--services",
                "platform",
                "--run-dir",
                str(tmp_path / "run"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return Launched(process, tmp_path / "run", offset, output)


@pytest.fixture
def launched(tmp_path: Path) -> Iterator[Launched]:
    running = _launch(tmp_path)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGINT)
            running.process.wait(60)


def test_launcher_serves_through_envoy_and_stops_every_child_on_ctrl_c(launched: Launched) -> None:
    banner = launched.wait_for("aistack is up", timeout=90)
    token_file = launched.run_dir / "token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token in banner  # printed once for the user
    url = f"http://127.0.0.1:{EdgeSettings().port + launched.offset}"

    health = httpx.get(f"{url}/api/v1/health")
    assert health.status_code == 200, health.text
    assert health.json()["status"] == "SERVING_STATUS_SERVING"
    assert httpx.get(f"{url}/api/v1/services").status_code == 401
    listed = httpx.get(f"{url}/api/v1/services", headers={"authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["services"]] == ["platform"]

    children = json.loads((launched.run_dir / "launcher.json").read_text())["children"]
    assert {"platform", "envoy"} <= set(children)
    assert (launched.run_dir / "logs" / "platform.log").stat().st_size > 0

    launched.process.send_signal(signal.SIGINT)
    assert launched.process.wait(60) == 0
    for name, pid in children.items():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert f"- {name} stopped" in launched.output.read_text()


def test_launcher_shows_the_log_of_a_service_that_fails_and_exits_nonzero(tmp_path: Path) -> None:
    # Every child inherits the launcher's environment; the kit refuses this log level at start-up.
    failing = _launch(tmp_path, {"AISTACK_LOG_LEVEL": "chatty"})
    assert failing.process.wait(90) == 1
    out = failing.output.read_text()
    assert "FAILED: platform exited with code 2" in out
    assert "AISTACK_LOG_LEVEL must be one of" in out  # the log tail, shown to the user
    children = json.loads((failing.run_dir / "launcher.json").read_text())["children"]
    for pid in children.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_launcher_in_production_mode_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "API_TOKENS" and not k.startswith("AISTACK_")}
    result = subprocess.run(
        [sys.executable, "-m", "aistack_launcher", "--run-dir", str(tmp_path)],
        env={**env, "AISTACK_MODE": "production"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "API_TOKENS" in result.stderr
    assert not (tmp_path / "token").exists()
