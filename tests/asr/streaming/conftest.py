"""A real ASR server for the streaming tests: aistack_asr.app with real Whisper weights, on port 0."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest_asyncio
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_asr.app import AsrCapability
from aistack_asr.config import AsrSettings
from aistack_kit.config import Env
from aistack_kit.server import RunningServer
from aistack_kit.testing import start_test_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/asr: the shared speech kit

from stream_testkit import IDLE_TIMEOUT, MAX_SESSIONS

REPO = Path(__file__).resolve().parents[3]


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def server() -> AsyncIterator[RunningServer]:
    env = {
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_PRELOAD_MODELS": json.dumps(["whisper/base", "whisper/tiny.en"]),
        "AISTACK_ASR_STREAM_MAX_SESSIONS": str(MAX_SESSIONS),
        "AISTACK_ASR_STREAM_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT),
        "AISTACK_ASR_STREAM_RETRY_AFTER_SECONDS": "3",
    }
    running = await start_test_server(AsrCapability(AsrSettings.from_env(Env(env))), "asr")
    yield running
    await running.stop()


@pytest_asyncio.fixture(scope="package", loop_scope="session")
async def stub(server: RunningServer) -> AsyncIterator[pb_grpc.AsrServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.AsrServiceStub(channel)
