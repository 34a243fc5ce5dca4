"""Two ASR replicas behind Envoy: a session's calls stay on one replica (ring hash on the affinity
header), and sessions spread over both."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import cast

import grpc
import pytest
from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.asr.v1 import asr_service_pb2_grpc as pb_grpc
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from asr_testkit import espeak_wav, needs_espeak, wav_samples, wer
from stream_testkit import Stream, chunks, config

pytestmark = [pytest.mark.slow, needs_espeak]

REPO = Path(__file__).resolve().parents[3]
AFFINITY = "x-session-affinity"
SESSIONS = 16
# Above Envoy's default circuit breaker (1024 requests in flight per cluster), which the edge raises.
CONCURRENT_SESSIONS = 1100
CALLS_PER_SESSION = 3
TEXTS = [
    "Please call me back tomorrow.",
    "I want to cancel my order.",
    "The package arrived on Monday.",
]


@contextmanager
def _replicas_behind_envoy(count: int) -> Iterator[tuple[str, list[str]]]:
    """Envoy's address and the `x-served-by` names of its `count` ASR replicas."""
    testing = pytest.importorskip("aistack_edge.testing")
    from aistack_edge.build import Upstreams
    from aistack_edge.settings import EdgeSettings
    from aistack_launcher.catalog import ASR

    # Separate processes, not in-process servers: `x-served-by` is per process in the kit.
    env = {
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_PRELOAD_MODELS": json.dumps(["whisper/tiny.en"]),
        "AISTACK_ASR_DEFAULT_MODEL": "whisper/tiny.en",
        "AISTACK_ASR_STREAM_MAX_SESSIONS": str(CONCURRENT_SESSIONS),
        # Sessions held open without audio must outlive the time it takes to open all of them.
        "AISTACK_ASR_STREAM_IDLE_TIMEOUT_SECONDS": "120",
    }
    replicated = replace(ASR, replicas=count, affinity_header=AFFINITY)
    ports = [testing.free_port() for _ in range(count)]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(testing.start_service("aistack_asr", port, env, timeout=120))
        upstreams = Upstreams.embedded([replicated], grpc_ports={replicated.name: ports})
        # One token opens every session here: lift its rate limit, which is not what is under test.
        unlimited = EdgeSettings(rate_limit_per_second=100_000, rate_limit_burst=100_000)
        envoy = stack.enter_context(testing.start_envoy([replicated], upstreams, unlimited))
        envoy.wait_healthy()
        yield envoy.address, [f"asr@127.0.0.1:{port}" for port in ports]


@pytest.fixture(scope="module")
def edge_address() -> Iterator[tuple[str, list[str]]]:
    with _replicas_behind_envoy(2) as edge:
        yield edge


def _stream(stub: pb_grpc.AsrServiceStub, session: str, text: str) -> tuple[Stream, str]:
    """One whole session call (config, ~2 s of speech, half-close): its events and who served it."""
    samples, rate = wav_samples(espeak_wav(text))
    requests = [config(rate=rate, batch_window=1.0, max_batch_window=2.0), *chunks(samples.tobytes(), rate)]
    call = stub.StreamingRecognize(
        iter(requests), metadata=(*auth_metadata(), (AFFINITY, session)), timeout=60
    )
    served_by = str(dict(call.initial_metadata())["x-served-by"])
    return Stream(events=list(call)), served_by


def _list_models(stub: pb_grpc.AsrServiceStub, session: str) -> tuple[pb.ListModelsResponse, str]:
    reply, call = stub.ListModels.with_call(
        pb.ListModelsRequest(), metadata=(*auth_metadata(), (AFFINITY, session)), timeout=10
    )
    return reply, str(dict(call.initial_metadata())["x-served-by"])


def test_session_calls_stay_on_one_replica_and_sessions_spread(
    edge_address: tuple[str, list[str]],
) -> None:
    address, replicas = edge_address
    replica_of: dict[str, str] = {}
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.AsrServiceStub(channel)
        for index in range(SESSIONS):
            session = str(uuid.uuid4())
            served: list[str] = []
            for call_index in range(CALLS_PER_SESSION):
                text = TEXTS[(index + call_index) % len(TEXTS)]
                stream, served_by = _stream(stub, session, text)
                kinds = stream.kinds()
                assert kinds[0] == "session_started" and kinds[-1] == "session_ended", kinds
                assert stream.events[0].session_started.session_id == session
                assert stream.events[-1].session_ended.reason == pb.SESSION_END_REASON_CLIENT_CLOSED
                # A real transcript of this call's clip, not an echo of another one.
                assert wer(text, stream.text) <= 0.35, (text, stream.text)
                served.append(served_by)
            models, models_served_by = _list_models(stub, session)
            assert "whisper/tiny.en" in [m.name for m in models.models]
            served.append(models_served_by)
            assert len(set(served)) == 1, f"session {session} reached {served}"
            replica_of[session] = served[0]
    spread = Counter(replica_of.values())
    # 16 random sessions all hashing to one of two replicas: about once in 30000 runs.
    assert set(spread) == set(replicas), spread


async def test_more_live_sessions_than_envoys_default_circuit_breaker() -> None:
    """1100 sessions open at once through Envoy to one replica all start and end cleanly (with Envoy's
    defaults, 1024 streams per HTTP/2 connection and 1024 requests in flight per cluster, the 1025th
    would wait for a slot that never frees)."""
    with _replicas_behind_envoy(1) as (address, replicas):
        await _hold_sessions_open(address, replicas)


async def _hold_sessions_open(address: str, replicas: list[str]) -> None:
    release = asyncio.Event()

    async def session(stub: pb_grpc.AsrServiceStub, index: int) -> tuple[str, str, list[str]]:
        async def requests() -> AsyncIterator[pb.StreamingRecognizeRequest]:
            yield config()
            await release.wait()  # then half-close: the session ends without audio

        call = cast(
            "grpc.aio.StreamStreamCall[pb.StreamingRecognizeRequest, pb.StreamingRecognizeResponse]",
            stub.StreamingRecognize(
                requests(),  # type: ignore[arg-type]
                metadata=(*auth_metadata(), (AFFINITY, f"bulk-{index}")),
                timeout=120,
            ),
        )
        served_by = str(dict(await call.initial_metadata())["x-served-by"])
        kinds: list[str] = []
        while (event := await call.read()) is not grpc.aio.EOF:  # type: ignore[attr-defined]
            assert isinstance(event, pb.StreamingRecognizeResponse)
            kind = event.WhichOneof("event")
            # Ended by the caller's half-close, not by a timeout that would free a slot for the next one.
            kinds.append(f"{kind}:{event.session_ended.reason}" if kind == "session_ended" else str(kind))
            if len(kinds) == 1:
                await started.put(index)
        return served_by, (await call.code()).name, kinds

    started: asyncio.Queue[int] = asyncio.Queue()
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AsrServiceStub(channel)
        tasks = [asyncio.create_task(session(stub, i)) for i in range(CONCURRENT_SESSIONS)]
        try:
            # Every session is live at the same time before any of them is let go.
            for _ in range(CONCURRENT_SESSIONS):
                await asyncio.wait_for(started.get(), timeout=30)
        finally:
            release.set()
        results = await asyncio.gather(*tasks)
    codes = Counter(code for _, code, _ in results)
    assert codes == {"OK": CONCURRENT_SESSIONS}, codes
    ended = f"session_ended:{pb.SESSION_END_REASON_CLIENT_CLOSED}"
    assert all(kinds[0] == "session_started" and kinds[-1] == ended for _, _, kinds in results)
    spread = Counter(served_by for served_by, _, _ in results)
    assert spread == {replicas[0]: CONCURRENT_SESSIONS}, spread
