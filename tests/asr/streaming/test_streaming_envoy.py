"""Four live sessions through the real edge: Envoy (embedded config) in front of the ASR server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_kit.server import RunningServer
from asr_testkit import espeak_wav, needs_espeak, wav_samples, wer
from stream_testkit import Stream, chunks, config, run_stream

pytestmark = [pytest.mark.slow, needs_espeak]

TEXTS = [
    "Please call me back tomorrow morning about the invoice.",
    "I would like to cancel my subscription today.",
    "The package was delivered to the wrong address on Monday.",
    "Your new credit card will arrive in five business days.",
]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge_address(server: RunningServer) -> AsyncIterator[str]:
    testing = pytest.importorskip("aistack_edge.testing")
    from aistack_edge.build import Upstreams
    from aistack_launcher.catalog import ASR

    upstreams = Upstreams.embedded([ASR], grpc_ports={ASR.name: [server.port]})
    with testing.start_envoy([ASR], upstreams) as envoy:
        # Off the loop: the in-process server answers Envoy's health checks on it meanwhile.
        await asyncio.to_thread(envoy.wait_healthy)
        yield envoy.address


async def test_four_sessions_through_envoy(edge_address: str) -> None:
    async with grpc.aio.insecure_channel(edge_address) as channel:
        stub = pb_grpc.AsrServiceStub(channel)

        async def session(text: str) -> tuple[Stream, str]:
            samples, rate = wav_samples(espeak_wav(text))
            affinity = str(uuid.uuid4())
            stream = await run_stream(
                stub,
                [config(rate=rate), *chunks(samples.tobytes(), rate // 5 * 2)],
                pause=0.01,
                metadata=(("x-session-affinity", affinity),),
            )
            return stream, affinity

        results = await asyncio.gather(*(session(text) for text in TEXTS))
    for text, (stream, affinity) in zip(TEXTS, results, strict=True):
        kinds = stream.kinds()
        # The affinity header crossed Envoy and named the session (no session_id in the config).
        assert stream.events[0].session_started.session_id == affinity
        assert kinds[0] == "session_started" and kinds[-2:] == ["final_summary", "session_ended"], kinds
        assert stream.events[-1].session_ended.reason == pb.SESSION_END_REASON_CLIENT_CLOSED
        assert wer(text, stream.text) <= 0.3, (text, stream.text)
        for other in TEXTS:
            if other != text:
                assert wer(other, stream.text) > 0.7
