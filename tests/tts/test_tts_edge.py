"""The seed's REST call through a real Envoy to the real TTS process: a playable WAV comes back."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_kit.testing import TEST_TOKEN
from aistack_launcher.catalog import TTS
from aistack_tts.testing import decode


@pytest.fixture(scope="module")
def tts_edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningEnvoy]:
    port = free_port()
    env = {"API_TOKENS": json.dumps([TEST_TOKEN]), "TTS_VOICES_DIR": str(tmp_path_factory.mktemp("voices"))}
    with start_service(TTS.module, port, env, timeout=120):
        upstreams = Upstreams.embedded([TTS], grpc_ports={TTS.name: [port]})
        with start_envoy([TTS], upstreams) as envoy:
            envoy.wait_healthy()
            yield envoy


@pytest.mark.slow
def test_seed_curl_call_returns_a_playable_wav(tts_edge: RunningEnvoy, tmp_path: Path) -> None:
    output = tmp_path / "output.wav"
    # The seed's call verbatim, but for the port of this test's Envoy.
    subprocess.run(
        ["curl", "-sS", "--fail-with-body", "-X", "POST", f"{tts_edge.url}/api/v1/tts",
         "-H", f"Authorization: Bearer {TEST_TOKEN}", "-H", "Content-Type: application/json",
         "-d", '{"text": "Olá mundo", "language": "pt"}', "-o", str(output)],
        check=True,
        timeout=60,
    )  # fmt: skip
    data = output.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    audio = decode(data)
    assert audio.codec == "pcm_s16le" and audio.sample_rate == 22050
    assert 0.5 < audio.seconds < 5


@pytest.mark.slow
def test_rest_errors_are_json_with_the_reason(tts_edge: RunningEnvoy) -> None:
    reply = httpx.post(
        f"{tts_edge.url}/api/v1/tts",
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
        json={"text": "Bonjour", "language": "fr"},
        timeout=30,
    )
    assert reply.status_code == 400
    details = reply.json()["details"]
    assert details[0]["reason"] == "UNSUPPORTED_LANGUAGE"

    voices = httpx.get(
        f"{tts_edge.url}/api/v1/tts/voices", headers={"Authorization": f"Bearer {TEST_TOKEN}"}, timeout=30
    )
    assert voices.status_code == 200
    assert "espeak-ng-pt-br" in {v["voice_id"] for v in voices.json()["voices"]}


@pytest.mark.slow
def test_rest_synthesize_with_format_and_rate(tts_edge: RunningEnvoy) -> None:
    reply = httpx.post(
        f"{tts_edge.url}/api/v1/tts",
        headers={"Authorization": f"Bearer {TEST_TOKEN}"},
        json={"text": "Hello there.", "language": "en", "audioFormat": "AUDIO_FORMAT_OGG_OPUS"},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.headers["content-type"] == "audio/ogg"
    assert decode(reply.content).codec == "opus"
