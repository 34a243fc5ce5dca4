"""Two ASR replicas behind Envoy: a session's calls stay on one replica (ring hash on the affinity
header), and sessions spread over both."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

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
CALLS_PER_SESSION = 3
TEXTS = [
    "Please call me back tomorrow.",
    "I want to cancel my order.",
    "The package arrived on Monday.",
]


@pytest.fixture(scope="module")
def edge_address() -> Iterator[tuple[str, list[str]]]:
    """Envoy's address and the `x-served-by` names of its two ASR replicas."""
    testing = pytest.importorskip("aistack_edge.testing")
    from aistack_edge.build import Upstreams
    from aistack_launcher.catalog import ASR

    # Separate processes, not in-process servers: `x-served-by` is per process in the kit.
    env = {
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_ASR_MODELS_DIR": str(REPO / "run" / "models"),
        "AISTACK_ASR_PRELOAD_MODELS": json.dumps(["whisper/tiny.en"]),
        "AISTACK_ASR_DEFAULT_MODEL": "whisper/tiny.en",
    }
    replicated = replace(ASR, replicas=2, affinity_header=AFFINITY)
    ports = [testing.free_port(), testing.free_port()]
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(testing.start_service("aistack_asr", port, env, timeout=120))
        upstreams = Upstreams.embedded([replicated], grpc_ports={replicated.name: ports})
        envoy = stack.enter_context(testing.start_envoy([replicated], upstreams))
        envoy.wait_healthy()
        yield envoy.address, [f"asr@127.0.0.1:{port}" for port in ports]


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
