"""`aistack tts "text" --language pt -o out.wav` against the real service."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aistack_kit.server import RunningServer
from aistack_kit.testing import TEST_TOKEN
from aistack_tts.testing import decode


async def _aistack(server: RunningServer, *args: str) -> tuple[int, str]:
    # A real process; awaited so that the in-process server on this event loop keeps answering.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aistack_client.cli", "--url", f"127.0.0.1:{server.port}",
        "--token", TEST_TOKEN, "tts", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return await process.wait(), output.decode()


async def test_cli_writes_the_audio_file(tts_server: RunningServer, tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    code, output = await _aistack(tts_server, "Olá mundo. Tudo bem?", "--language", "pt", "-o", str(wav))
    assert code == 0, output
    audio = decode(wav.read_bytes())
    assert audio.codec == "pcm_s16le" and audio.seconds > 1.0

    mp3 = tmp_path / "out.mp3"
    code, output = await _aistack(
        tts_server, "Hello.", "--language", "en", "-o", str(mp3), "--sample-rate", "16000"
    )
    assert code == 0, output
    assert decode(mp3.read_bytes()).codec == "mp3float"

    streamed = tmp_path / "streamed.wav"
    code, output = await _aistack(tts_server, "Primeira. Segunda.", "-o", str(streamed), "--stream")
    assert code == 0 and "[1] Segunda." in output, output
    assert decode(streamed.read_bytes()).seconds > 0.5


async def test_cli_reports_the_reason(tts_server: RunningServer, tmp_path: Path) -> None:
    code, output = await _aistack(tts_server, "Bonjour", "--language", "fr", "-o", str(tmp_path / "x.wav"))
    assert code == 1
    assert "INVALID_ARGUMENT [UNSUPPORTED_LANGUAGE]" in output
    code, output = await _aistack(tts_server, "--list-voices", "--language", "pt")
    assert code == 0 and output.split("\t")[0] == "espeak-ng-pt-br"
