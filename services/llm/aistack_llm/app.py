"""The LLM capability: the gRPC servicer and the OpenAI-compatible HTTP server over one domain service."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from aistack.llm.v1 import llm_service_pb2 as pb
from aistack.llm.v1 import llm_service_pb2_grpc as pb_grpc
from aistack_kit.auth import TokenVerifier
from aistack_kit.logs import log_fields
from aistack_kit.server import Capability

from aistack_llm.config import LOCAL_UPSTREAM, LlmConfig
from aistack_llm.embeddings_local import LocalSentenceEmbedder, default_model_dir
from aistack_llm.engines import ChatEngine, EmbeddingEngine, OpenAIUpstream
from aistack_llm.http_api import HttpServer, OpenAIHttpApi
from aistack_llm.service import LlmService
from aistack_llm.servicer import LlmServicer

DEFAULT_PORT = 50055

logger = logging.getLogger("aistack.llm")


def build_engines(config: LlmConfig) -> tuple[dict[str, ChatEngine], dict[str, EmbeddingEngine]]:
    """One pooled client per upstream (shared by chat and embeddings); local embedders per alias."""
    upstreams = {name: OpenAIUpstream(upstream) for name, upstream in config.upstreams.items()}
    embedders: dict[str, EmbeddingEngine] = {}
    for alias in config.embedding_models.values():
        if alias.upstream == LOCAL_UPSTREAM:
            model_dir = Path(alias.model) if alias.model else default_model_dir()
            embedders[alias.alias] = LocalSentenceEmbedder(alias.alias, model_dir)
        else:
            embedders[alias.alias] = upstreams[alias.upstream]
    return dict(upstreams), embedders


class LlmCapability(Capability):
    def __init__(
        self,
        config: LlmConfig,
        api_tokens: Sequence[str],
        *,
        chat_engines: Mapping[str, ChatEngine] | None = None,
        embedding_engines: Mapping[str, EmbeddingEngine] | None = None,
    ) -> None:
        if chat_engines is None or embedding_engines is None:
            built_chat, built_embedders = build_engines(config)
            chat_engines = chat_engines if chat_engines is not None else built_chat
            embedding_engines = embedding_engines if embedding_engines is not None else built_embedders
        self.config = config
        self._chat_engines = dict(chat_engines)
        self._embedders = dict(embedding_engines)
        self.service = LlmService(config, self._chat_engines, self._embedders)
        self.http = HttpServer(
            OpenAIHttpApi(self.service, TokenVerifier(api_tokens)).app, config.http_host, config.http_port
        )

    @property
    def service_names(self) -> Sequence[str]:
        return (pb.DESCRIPTOR.services_by_name["LlmService"].full_name,)

    def register(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_LlmServiceServicer_to_server(LlmServicer(self.service), server)

    async def load(self) -> None:
        # Local embedding models load here; chat upstreams are separate servers reached on demand.
        loaded: set[int] = set()
        for engine in self._embedders.values():
            if id(engine) not in loaded:
                loaded.add(id(engine))
                await engine.load()
        port = await self.http.start()
        logger.info("http listening", extra=log_fields(http_port=port))

    async def close(self) -> None:
        await self.http.stop()
        closed: set[int] = set()
        engines: list[ChatEngine | EmbeddingEngine] = [
            *self._chat_engines.values(),
            *self._embedders.values(),
        ]
        for engine in engines:
            if id(engine) not in closed:
                closed.add(id(engine))
                await engine.aclose()
