"""Fixtures for the LLM service: the real llama.cpp upstream (SmolLM2-135M) and the real service."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from llm_testkit import Service, Upstream, llm_config, start_service, start_upstream, stop_service


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    running = start_upstream(tmp_path_factory.mktemp("llama"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
async def service(upstream: Upstream) -> AsyncIterator[Service]:
    """The service over the real upstream, with the real in-process MiniLM embedder."""
    running = await start_service(llm_config(upstream.url))
    yield running
    await stop_service(running)
