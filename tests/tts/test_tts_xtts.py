"""XTTS-v2 through the real service process, on a small random-init checkpoint in XTTS's own format.

The process runs in the XTTS environment (run/xtts-venv, made by services/tts/setup_xtts_env.sh), so the
default .venv needs no torch. What this covers: the folder layout and Xtts loading, built-in speakers
from speakers_xtts.pth, cloning (conditioning latents from uploaded audio), the voice surviving a
restart, streaming inside a sentence, and deletion. What it cannot: that the audio is speech (the
weights are random), which needs the real XTTS-v2 weights.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from aistack.tts.v1 import tts_service_pb2 as pb
from aistack.tts.v1 import tts_service_pb2_grpc as pb_grpc
from aistack_edge.testing import free_port, start_process, wait_serving
from aistack_kit.errors import error_info_of
from aistack_kit.testing import TEST_TOKEN, auth_metadata
from aistack_tts.testing import decode, pcm16

REPO = Path(__file__).resolve().parents[2]
XTTS_PYTHON = Path(os.environ.get("AISTACK_XTTS_PYTHON", REPO / "run" / "xtts-venv" / "bin" / "python"))
AUTH = auth_metadata()

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not XTTS_PYTHON.exists(),
        reason=f"no XTTS environment at {XTTS_PYTHON} (run services/tts/setup_xtts_env.sh)",
    ),
]


@pytest.fixture(scope="module")
def tiny_xtts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("xtts-tiny")
    subprocess.run(
        [str(XTTS_PYTHON), str(Path(__file__).with_name("xtts_tiny.py")), str(folder)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return folder


@contextlib.contextmanager
def xtts_service(model: Path, voices: Path) -> Iterator[pb_grpc.TtsServiceStub]:
    port = free_port()
    env = {
        "TTS_ENGINE": "xtts",
        "TTS_XTTS_MODEL_DIR": str(model),
        "TTS_XTTS_DEVICE": "cpu",
        "TTS_XTTS_STREAM_CHUNK_TOKENS": "4",
        "TTS_VOICES_DIR": str(voices),
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_GRPC_PORT": str(port),
        "AISTACK_SHUTDOWN_GRACE_SECONDS": "1",
        "OMP_NUM_THREADS": "2",
    }
    with start_process("tts-xtts", [str(XTTS_PYTHON), "-m", "aistack_tts"], env) as process:
        wait_serving(port, process, timeout=240)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield pb_grpc.TtsServiceStub(channel)


def _reference_speech(tmp_path: Path) -> bytes:
    wav = tmp_path / "reference.wav"
    subprocess.run(
        ["espeak-ng", "-v", "pt-br", "-w", str(wav),
         "Olá, meu nome é Ana. Estou gravando alguns segundos de voz para criar uma voz nova."],
        check=True,
        timeout=60,
    )  # fmt: skip
    return wav.read_bytes()


def test_xtts_clones_a_voice_that_survives_a_restart(tiny_xtts: Path, tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    with xtts_service(tiny_xtts, voices) as stub:
        listed = stub.ListVoices(pb.ListVoicesRequest(), metadata=AUTH).voices
        assert [(v.voice_id, v.engine, v.cloned) for v in listed] == [("xtts-tiny-speaker", "xtts-v2", False)]

        builtin = stub.Synthesize(pb.SynthesizeRequest(text="Olá mundo.", language="pt"), metadata=AUTH)
        assert builtin.voice == "xtts-tiny-speaker"
        audio = decode(builtin.audio)
        assert audio.sample_rate == 24000 == builtin.sample_rate_hertz
        assert audio.seconds > 0.1 and np.isfinite(audio.samples).all()

        created = stub.CreateVoice(
            pb.CreateVoiceRequest(
                display_name="Ana", reference_audio=_reference_speech(tmp_path), language="pt"
            ),
            metadata=AUTH,
        ).voice
        assert created.voice_id.startswith("voice-") and created.cloned
        assert created.engine == "xtts-v2" and list(created.languages) == ["pt", "en"]
        assert created.create_time.seconds > 0

        chunks = list(
            stub.StreamingSynthesize(
                pb.StreamingSynthesizeRequest(text="Bom dia.", language="pt", voice=created.voice_id),
                metadata=AUTH,
            )
        )
        # Four GPT tokens a chunk: audio arrives before the sentence is finished.
        assert len(chunks) >= 2
        assert {c.text for c in chunks} == {"Bom dia."}
        assert pcm16(b"".join(c.audio for c in chunks)).size > 0

        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateVoice(
                pb.CreateVoiceRequest(
                    display_name="Curta", reference_audio=_reference_speech(tmp_path)[:8000]
                ),
                metadata=AUTH,
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info_of(caught.value)
        assert info is not None and info.reason == "REFERENCE_AUDIO_TOO_SHORT"

    assert (voices / created.voice_id / "voice.json").is_file()

    with xtts_service(tiny_xtts, voices) as stub:
        listed = stub.ListVoices(pb.ListVoicesRequest(language="en"), metadata=AUTH).voices
        cloned = [v for v in listed if v.cloned]
        assert [(v.voice_id, v.display_name) for v in cloned] == [(created.voice_id, "Ana")]

        spoken = stub.Synthesize(
            pb.SynthesizeRequest(text="Hello.", language="en", voice=created.voice_id), metadata=AUTH
        )
        assert spoken.voice == created.voice_id and decode(spoken.audio).seconds > 0.1

        stub.DeleteVoice(pb.DeleteVoiceRequest(voice_id=created.voice_id), metadata=AUTH)
        assert not [v for v in stub.ListVoices(pb.ListVoicesRequest(), metadata=AUTH).voices if v.cloned]
        with pytest.raises(grpc.RpcError) as caught:
            stub.Synthesize(pb.SynthesizeRequest(text="Oi.", voice=created.voice_id), metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
