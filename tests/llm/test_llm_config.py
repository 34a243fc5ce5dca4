"""Configuration: defaults per mode, aliases from the environment, and errors that name the variable."""

from __future__ import annotations

import json

import pytest
from aistack_kit.config import ConfigError, Env
from aistack_llm.config import LlmConfig


def config(**env: str) -> LlmConfig:
    return LlmConfig.from_env(Env(env))


def test_production_defaults_route_aliases_to_the_vllm_upstreams() -> None:
    cfg = config(AISTACK_MODE="production")
    assert cfg.default_model == "paneas-v1"
    assert cfg.aliases["paneas-v1"].upstream == "llm-int4"
    assert cfg.aliases["paneas-v1"].model == "Qwen/Qwen2.5-14B-Instruct-AWQ"
    assert cfg.aliases["qwen2.5-14b-instruct"].upstream == "llm-fp16"
    assert cfg.upstreams["llm-fp16"].url == "http://llm-fp16:8000/v1"
    assert cfg.embedding_models["bge-m3"].model == "BAAI/bge-m3"
    assert cfg.http_host == "0.0.0.0"


def test_embedded_defaults_use_llama_cpp_and_local_minilm() -> None:
    cfg = config()
    assert cfg.aliases["paneas-v1"].upstream == "llama-cpp"
    assert cfg.upstreams["llama-cpp"].url == "http://127.0.0.1:8081/v1"
    assert cfg.upstreams["llama-cpp"].dialect == "llama-cpp"
    assert cfg.default_embedding_model == "all-minilm-l6-v2"
    assert cfg.http_port == 8055


def test_aliases_and_upstreams_come_from_the_environment() -> None:
    cfg = config(
        AISTACK_LLM_UPSTREAMS=json.dumps({"a": {"url": "http://a:1/v1/", "timeout_seconds": 5}}),
        AISTACK_LLM_ALIASES=json.dumps({"fast": {"upstream": "a", "model": "m1"}}),
        AISTACK_LLM_DEFAULT_MODEL="fast",
        AISTACK_LLM_EMBEDDING_MODELS="{}",
        AISTACK_HTTP_PORT="9000",
    )
    assert cfg.upstreams["a"].url == "http://a:1/v1"
    assert cfg.upstreams["a"].timeout_seconds == 5
    assert cfg.aliases["fast"].model == "m1"
    assert cfg.default_embedding_model is None
    assert cfg.http_port == 9000


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AISTACK_LLM_UPSTREAMS": "{not json"}, "AISTACK_LLM_UPSTREAMS"),
        ({"AISTACK_LLM_UPSTREAMS": json.dumps({"a": {"url": "ftp://x"}})}, "AISTACK_LLM_UPSTREAMS"),
        (
            {"AISTACK_LLM_ALIASES": json.dumps({"x": {"upstream": "nowhere", "model": "m"}})},
            "AISTACK_LLM_ALIASES",
        ),
        ({"AISTACK_LLM_DEFAULT_MODEL": "missing"}, "AISTACK_LLM_DEFAULT_MODEL"),
        (
            {"AISTACK_LLM_MAX_TOKENS_LIMIT": "10", "AISTACK_LLM_DEFAULT_MAX_TOKENS": "20"},
            "AISTACK_LLM_DEFAULT_MAX",
        ),
        (
            {"AISTACK_LLM_UPSTREAMS": json.dumps({"a": {"url": "http://a", "dialect": "soap"}})},
            "AISTACK_LLM_UPSTREAMS",
        ),
    ],
)
def test_bad_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        config(**env)
