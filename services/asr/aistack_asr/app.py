"""The ASR capability: settings, model registry, whole-file recognizer and the live recognizer."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_kit.server import Capability

from aistack_asr.config import AsrSettings
from aistack_asr.engine import FasterWhisperTranscriber, Transcriber
from aistack_asr.recognizer import Recognizer, guard_settings
from aistack_asr.registry import ModelRegistry
from aistack_asr.servicer import AsrServicer
from aistack_asr.streaming import StreamingRecognizer

logger = logging.getLogger("aistack.asr")

DEFAULT_PORT = 50051


class AsrCapability(Capability):
    def __init__(
        self,
        settings: AsrSettings,
        *,
        transcriber: Transcriber | None = None,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry(settings)
        self.recognizer = Recognizer(
            self.registry, transcriber or FasterWhisperTranscriber(guard_settings(settings)), settings
        )
        self.streaming = StreamingRecognizer(self.registry, settings)

    @property
    def service_names(self) -> Sequence[str]:
        return (pb.DESCRIPTOR.services_by_name["AsrService"].full_name,)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_AsrServiceServicer_to_server(
            AsrServicer(self.recognizer, self.registry, self.streaming), server
        )

    async def load(self) -> None:
        # Loading runs on threads inside the registry; the server answers health checks meanwhile.
        await self.registry.preload()
        await self.streaming.start()

    async def drain(self) -> None:
        # Open sessions get SESSION_ENDED (SERVER_SHUTDOWN) before the graceful stop cancels them.
        await self.streaming.begin_shutdown()

    async def close(self) -> None:
        await self.streaming.close()
        await self.recognizer.close()
        await self.registry.close()


def build() -> AsrCapability:
    """Reads and validates the ASR settings (a ConfigError names the variable)."""
    return AsrCapability(AsrSettings.from_env())
