"""What the launcher would start, derived from a catalog (no processes started here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aistack_edge.settings import EdgeSettings
from aistack_kit.config import ConfigError, Env
from aistack_launcher.catalog import AuxProcess, ServiceEntry
from aistack_launcher.plan import Kind, build_plan, place_replicas, select

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


def test_one_replica_per_listed_gpu_each_seeing_only_its_own(tmp_path: Path) -> None:
    single = ServiceEntry("asr", "aistack_asr", ("aistack.asr.v1.AsrService",), 50051, 9151)
    placed = place_replicas([PLATFORM, single], Env({"AISTACK_ASR_GPUS": "0,0,1"}))
    assert [(s.name, s.replicas, s.gpus) for s in placed] == [
        ("platform", 1, ()),
        ("asr", 3, ("0", "0", "1")),
    ]
    plan = build_plan(placed, [], tokens=["t"], edge=EdgeSettings(), run_dir=tmp_path)
    services = {p.name: p.env for p in plan.of_kind(Kind.SERVICE)}
    assert [services[f"asr-{i}"]["CUDA_VISIBLE_DEVICES"] for i in range(3)] == ["0", "0", "1"]
    assert [services[f"asr-{i}"]["AISTACK_GRPC_PORT"] for i in range(3)] == ["50051", "50151", "50251"]
    assert "CUDA_VISIBLE_DEVICES" not in services["platform"]
    # Envoy balances over all three replicas.
    clusters = plan.envoy_config["static_resources"]["clusters"]  # type: ignore[index]
    asr_cluster = next(c for c in clusters if c["name"] == "asr")
    endpoints = asr_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ports = [e["endpoint"]["address"]["socket_address"]["port_value"] for e in endpoints]
    assert ports == [50051, 50151, 50251]


def test_replica_count_without_gpus_and_conflicting_placement() -> None:
    placed = place_replicas([ASR], Env({"AISTACK_ASR_REPLICAS": "3"}))
    assert (placed[0].replicas, placed[0].gpus) == (3, ())
    assert place_replicas([ASR], Env({}))[0].replicas == 2  # the catalog's own count
    with pytest.raises(ConfigError, match=r"AISTACK_ASR_REPLICAS=3 disagrees with AISTACK_ASR_GPUS"):
        place_replicas([ASR], Env({"AISTACK_ASR_REPLICAS": "3", "AISTACK_ASR_GPUS": "0,1"}))
    with pytest.raises(ConfigError, match="AISTACK_ASR_GPUS"):
        place_replicas([ASR], Env({"AISTACK_ASR_GPUS": "0;1"}))
    with pytest.raises(ConfigError, match="AISTACK_ASR_REPLICAS"):
        place_replicas([ASR], Env({"AISTACK_ASR_REPLICAS": "0"}))
