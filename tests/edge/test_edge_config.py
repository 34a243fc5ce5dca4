"""The generated Envoy configs: both targets pass `envoy --mode validate`, the committed one is current."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from aistack_edge.build import Target, build_config, write_config
from aistack_edge.settings import DESCRIPTOR_SET, REPO_ROOT, EdgeSettings
from aistack_edge.testing import ENVOY

COMPOSE_FILE = REPO_ROOT / "envoy" / "envoy.compose.json"


def _validate(config: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.json"
    write_config(config, path)
    return subprocess.run(
        [ENVOY, "--mode", "validate", "--disable-hot-restart", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("target", list(Target))
def test_envoy_validates_config(target: Target, tmp_path: Path) -> None:
    # The compose file names the descriptor set where the container mounts it; point it at ours.
    config = build_config(target, settings=EdgeSettings(), descriptor_set=str(DESCRIPTOR_SET))
    result = _validate(config, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_envoy_rejects_a_broken_config(tmp_path: Path) -> None:
    # The validation above can fail: a cluster without its name is refused.
    config = build_config(Target.EMBEDDED, settings=EdgeSettings())
    del config["static_resources"]["clusters"][0]["name"]
    assert _validate(config, tmp_path).returncode != 0


def test_committed_compose_config_is_current() -> None:
    committed = json.loads(COMPOSE_FILE.read_text())
    assert committed == build_config(Target.COMPOSE, settings=EdgeSettings()), (
        "envoy/envoy.compose.json is stale: run `make envoy-config` and commit it"
    )


def test_compose_targets_service_names_with_dns() -> None:
    config = build_config(Target.COMPOSE, settings=EdgeSettings())
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    asr = clusters["asr"]
    assert asr["type"] == "STRICT_DNS"
    assert asr["lb_policy"] == "RING_HASH"
    address = asr["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"] == {"address": "asr", "port_value": 50051}
