"""What the launcher would start, derived from a catalog (no processes started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aistack_edge.settings import EdgeSettings
from aistack_kit.config import ConfigError
from aistack_launcher.catalog import AuxProcess, ServiceEntry
from aistack_launcher.plan import Kind, build_plan, select

PLATFORM = ServiceEntry("platform", "aistack_platform", ("aistack.platform.v1.PlatformService",), 50050, 9150)
ASR = ServiceEntry(
    "asr",
    "aistack_asr",
    ("aistack.asr.v1.AsrService",),
    50051,
    9151,
    affinity_header="x-session-affinity",
    replicas=2,
    env={"ASR_CACHE": "redis://127.0.0.1:{aux[redis]}/0", "ASR_MODEL": "whisper/base"},
)
REDIS = AuxProcess("redis", ("redis-server", "--port", "{port}"), 6379)
LLAMA = AuxProcess("llama-cpp", ("{python}", "-m", "x", "--port", "{port}"), 8081, needed_by=("llm",))


def test_plan_moves_every_port_and_wires_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASR_MODEL", "whisper/tiny")  # the caller's environment beats the catalog's
    plan = build_plan(
        [PLATFORM, ASR],
        [REDIS, LLAMA],
        tokens=["tok"],
        edge=EdgeSettings(),
        run_dir=tmp_path,
        port_offset=1000,
    )
    assert [p.name for p in plan.of_kind(Kind.AUX)] == ["redis"]  # llama-cpp only comes with the LLM
    assert plan.of_kind(Kind.AUX)[0].argv == ("redis-server", "--port", "7379")
    services = {p.name: p for p in plan.of_kind(Kind.SERVICE)}
    assert sorted(services) == ["asr-0", "asr-1", "platform"]
    assert services["asr-1"].env["AISTACK_GRPC_PORT"] == "51151"
    assert services["asr-1"].env["AISTACK_METRICS_PORT"] == "10251"
    assert services["asr-0"].env["ASR_CACHE"] == "redis://127.0.0.1:7379/0"
    assert "ASR_MODEL" not in services["asr-0"].env
    assert json.loads(services["asr-0"].env["API_TOKENS"]) == ["tok"]
    platform_env = services["platform"].env
    assert platform_env["AISTACK_HEALTH_TARGETS"] == (
        "aistack.asr.v1.AsrService=127.0.0.1:51051,aistack.asr.v1.AsrService=127.0.0.1:51151"
    )
    deployment = json.loads(platform_env["AISTACK_PLATFORM_SERVICES"])
    assert [(d["name"], d["replicas"]) for d in deployment] == [("platform", 1), ("asr", 2)]
    assert plan.edge_port == 9000
    assert plan.envoy_config_path == tmp_path / "envoy.json"
    listener = plan.envoy_config["static_resources"]["listeners"][0]  # type: ignore[index]
    assert listener["address"]["socket_address"]["port_value"] == 9000


def test_unknown_helper_in_catalog_env_is_a_config_error(tmp_path: Path) -> None:
    broken = ServiceEntry(
        "asr", "aistack_asr", ("aistack.asr.v1.AsrService",), 1, 2, env={"X": "{aux[nope]}"}
    )
    with pytest.raises(ConfigError, match="nope"):
        build_plan([PLATFORM, broken], [REDIS], tokens=["t"], edge=EdgeSettings(), run_dir=tmp_path)


def test_select_keeps_the_platform_and_names_unknown_services() -> None:
    assert [s.name for s in select([PLATFORM, ASR], ["asr"])] == ["platform", "asr"]
    assert [s.name for s in select([PLATFORM, ASR], [])] == ["platform", "asr"]
    with pytest.raises(ConfigError, match=r"AISTACK_SERVICES.*ocr"):
        select([PLATFORM, ASR], ["ocr"])
