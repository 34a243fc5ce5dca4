"""Starting real servers in-process for tests: port 0, real channels, models loaded."""

from __future__ import annotations

from collections.abc import Mapping

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
