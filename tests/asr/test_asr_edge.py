"""The seed's REST upload through a real Envoy to a real ASR process: transcripts and JSON errors."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_kit.testing import TEST_TOKEN
from aistack_launcher.catalog import ASR
from asr_testkit import espeak_wav, needs_espeak, wer

pytestmark = [pytest.mark.slow, needs_espeak]

PT = "Bom dia, eu gostaria de falar sobre a minha conta de telefone."
MAX_UPLOAD = 400_000
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


@pytest.fixture(scope="module")
def asr_edge() -> Iterator[RunningEnvoy]:
    port = free_port()
    env = {
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_ASR_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "AISTACK_LOG_LEVEL": "warning",
    }
    with start_service(ASR.module, port, env, timeout=180):
        upstreams = Upstreams.embedded([ASR], grpc_ports={ASR.name: [port]})
        with start_envoy([ASR], upstreams) as envoy:
            envoy.wait_healthy()
            yield envoy


def _curl(envoy: RunningEnvoy, audio: Path, *fields: str) -> tuple[int, dict[str, object]]:
    # The seed's call, with this test's port and the status code appended.
    argv = ["curl", "-sS", "-X", "POST", f"{envoy.url}/api/v1/asr",
            "-H", f"Authorization: Bearer {TEST_TOKEN}", "-F", f"file=@{audio}"]  # fmt: skip
    for field in fields:
        argv += ["-F", field]
    result = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, check=True, timeout=120)
    body, _, code = result.stdout.decode().rpartition("\n")
    return int(code), json.loads(body)


def test_seed_curl_upload_transcribes_and_unknown_model_is_404_with_the_list(
    asr_edge: RunningEnvoy, tmp_path: Path
) -> None:
    audio = tmp_path / "audio.wav"
    audio.write_bytes(espeak_wav(PT, "pt-br"))

    # The seed's call verbatim: whisper/medium is not installed in embedded mode.
    code, body = _curl(asr_edge, audio, "language=pt", "model=whisper/medium")
    assert code == 404, body
    details = body["details"]
    assert isinstance(details, list) and details[0]["reason"] == "MODEL_NOT_FOUND"
    assert "whisper/base" in details[0]["metadata"]["available"]

    code, body = _curl(asr_edge, audio, "language=pt", "model=whisper/base", "word_timestamps=true")
    assert code == 200, body
    assert wer(PT, str(body["text"])) <= 0.25, body["text"]
    assert body["language"] == "pt" and body["model"] == "whisper/base"
    segments = body["segments"]
    assert isinstance(segments, list) and segments[0]["words"][0]["start_offset"].endswith("s")


def test_json_base64_models_and_errors_over_rest(asr_edge: RunningEnvoy) -> None:
    payload = {"audio": base64.b64encode(espeak_wav(PT, "pt-br")).decode(), "config": {"language": "pt"}}
    reply = httpx.post(f"{asr_edge.url}/api/v1/asr:recognize", headers=AUTH, json=payload, timeout=120)
    assert reply.status_code == 200, reply.text
    assert wer(PT, reply.json()["text"]) <= 0.25

    models = httpx.get(f"{asr_edge.url}/api/v1/asr/models", headers=AUTH, timeout=30).json()
    assert models["models"][0]["name"] == "whisper/base" and models["fallback_model"] == "whisper/tiny.en"

    too_big = httpx.post(
        f"{asr_edge.url}/api/v1/asr",
        headers={**AUTH, "Content-Type": "audio/wav"},
        content=b"\x00" * (MAX_UPLOAD + 1),
        timeout=60,
    )
    assert too_big.status_code == 400 and too_big.json()["details"][0]["reason"] == "UPLOAD_TOO_LARGE"

    corrupt = httpx.post(
        f"{asr_edge.url}/api/v1/asr",
        headers=AUTH,
        files={"file": ("x.wav", b"RIFF....WAVEjunk" * 100, "audio/wav")},
        timeout=60,
    )
    assert corrupt.status_code == 400 and corrupt.json()["details"][0]["reason"] == "AUDIO_DECODE_FAILED"

    anonymous = httpx.get(f"{asr_edge.url}/api/v1/asr/models", timeout=30)
    assert anonymous.status_code == 401
