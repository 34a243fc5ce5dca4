"""Configuration is validated at start-up and every error names its variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from aistack_edge.settings import EdgeSettings
from aistack_kit.auth import TokenVerifier, generate_token
from aistack_kit.config import ConfigError, Env, ServerSettings


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AISTACK_GRPC_PORT": "fifty"}, "AISTACK_GRPC_PORT"),
        ({"AISTACK_GRPC_PORT": "70000"}, "AISTACK_GRPC_PORT"),
        ({"AISTACK_MODE": "staging"}, "AISTACK_MODE"),
        ({"AISTACK_MODE": "production"}, "API_TOKENS"),
        ({"API_TOKENS": '["ok", 3]'}, "API_TOKENS"),
        ({"API_TOKENS": "[not json"}, "API_TOKENS"),
        ({"AISTACK_SHUTDOWN_GRACE_SECONDS": "-1"}, "AISTACK_SHUTDOWN_GRACE_SECONDS"),
        ({"AISTACK_LOG_LEVEL": "chatty"}, "AISTACK_LOG_LEVEL"),
    ],
)
def test_server_settings_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        ServerSettings.from_env("probe", 50000, Env(env))


def test_api_tokens_accepts_json_list_and_commas() -> None:
    assert ServerSettings.from_env("p", 1, Env({"API_TOKENS": '["a", "b"]'})).api_tokens == ("a", "b")
    assert ServerSettings.from_env("p", 1, Env({"API_TOKENS": "a, b"})).api_tokens == ("a", "b")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AISTACK_EDGE_PORT": "0"}, "AISTACK_EDGE_PORT"),
        ({"AISTACK_EDGE_RATE_LIMIT_BURST": "many"}, "AISTACK_EDGE_RATE_LIMIT_BURST"),
        ({"AISTACK_EDGE_MAX_REQUEST_BYTES": "10"}, "AISTACK_EDGE_MAX_REQUEST_BYTES"),
    ],
)
def test_edge_settings_errors_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        EdgeSettings.from_env(Env(env))


def test_a_service_refuses_to_start_on_bad_config_and_says_why() -> None:
    env = {
        "AISTACK_GRPC_PORT": "0",
        "AISTACK_PLATFORM_SERVICES": json.dumps([{"name": "x", "grpc_services": ["aistack.nope.v1.Nope"]}]),
    }
    result = subprocess.run(
        [sys.executable, "-m", "aistack_platform"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "AISTACK_PLATFORM_SERVICES" in result.stderr
    assert "aistack.nope.v1.Nope" in result.stderr


def test_token_verification() -> None:
    token = generate_token()
    verifier = TokenVerifier([token, "second-token"])
    assert verifier.check(f"Bearer {token}")
    assert verifier.check(f"bearer {token}")
    assert verifier.check("Bearer second-token")
    assert not verifier.check(f"Bearer {token}x")
    assert not verifier.check(f"Basic {token}")
    assert not verifier.check(token)
    assert not verifier.check("Bearer ")
    assert not verifier.check(None)
    assert verifier.is_public("/grpc.health.v1.Health/Check")
    assert verifier.is_public("/aistack.platform.v1.PlatformService/GetHealth")
    assert not verifier.is_public("/aistack.platform.v1.PlatformService/ListServices")
    with pytest.raises(ValueError):
        TokenVerifier([])
