"""The seed's REST call, verbatim, through a real Envoy to a real `python -m aistack_ocr` process:

  curl -X POST http://localhost:8000/api/v1/ocr -H "Authorization: Bearer $TOKEN" \\
       -F "file=@document.pdf" -F "languages=pt,en"
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ocr_testkit as kit
import pytest
from aistack_edge.build import Upstreams
from aistack_edge.testing import RunningEnvoy, free_port, start_envoy, start_service
from aistack_kit.testing import TEST_TOKEN
from aistack_launcher.catalog import OCR

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is in requirements/apt.txt"),
]


@pytest.fixture(scope="module")
def edge() -> Iterator[RunningEnvoy]:
    port = free_port()
    env = {
        "API_TOKENS": json.dumps([TEST_TOKEN]),
        "AISTACK_OCR_ENGINE": "rapidocr",
        "AISTACK_OCR_MAX_PAGES": "4",
    }
    with start_service(OCR.module, port, env, timeout=120):
        upstreams = Upstreams.embedded([OCR], grpc_ports={OCR.name: [port]})
        with start_envoy([OCR], upstreams) as envoy:
            envoy.wait_healthy()
            yield envoy


def curl(edge: RunningEnvoy, *args: str) -> tuple[int, Any]:
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "POST",
            f"{edge.url}/api/v1/ocr",
            "-H",
            f"Authorization: Bearer {TEST_TOKEN}",
            "-w",
            "\n%{http_code}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_the_seed_call_reads_a_scanned_pdf(edge: RunningEnvoy, tmp_path: Path) -> None:
    document = tmp_path / "document.pdf"
    lines = ["Nota fiscal: São Paulo", "Total R$ 1.234,56"]
    document.write_bytes(kit.image_pdf([kit.render_lines(lines, width=900)], resolution=100))
    status, reply = curl(edge, "-F", f"file=@{document}", "-F", "languages=pt,en")
    assert status == 200, reply
    assert reply["page_count"] == 1 and reply["engine"] == "rapidocr/pp-ocrv6-small"
    page = reply["pages"][0]
    assert page["from_text_layer"] is False and page["page_number"] == 1
    assert kit.cer(reply["text"], "\n".join(lines)) <= 0.02, reply["text"]
    assert len(page["lines"][0]["bounding_poly"]["vertices"]) == 4


def test_rest_errors_are_json_with_a_reason(edge: RunningEnvoy, tmp_path: Path) -> None:
    locked = tmp_path / "locked.pdf"
    locked.write_bytes(kit.text_pdf([["segredo"]], encrypt="s3nha"))
    status, reply = curl(edge, "-F", f"file=@{locked}", "-F", "languages=pt,en")
    assert status == 400
    assert reply["details"][0]["reason"] == "PDF_ENCRYPTED", reply

    long = tmp_path / "long.pdf"
    long.write_bytes(kit.text_pdf([[f"Página {n} do contrato"] for n in range(1, 7)]))
    status, reply = curl(edge, "-F", f"file=@{long}")
    assert status == 400 and reply["details"][0]["reason"] == "TOO_MANY_PAGES", reply
    # A page range brings it under the limit; the text layer answers.
    status, reply = curl(edge, "-F", f"file=@{long}", "-F", "first_page=5")
    assert status == 200, reply
    assert [p["page_number"] for p in reply["pages"]] == [5, 6]
    assert reply["text"] == "Página 5 do contrato\n\nPágina 6 do contrato"


def test_cli_streams_pages_through_the_edge(edge: RunningEnvoy, tmp_path: Path) -> None:
    contract = tmp_path / "contrato.pdf"
    contract.write_bytes(kit.text_pdf([["Cláusula primeira"], ["Cláusula segunda"], ["Cláusula terceira"]]))
    cli = [sys.executable, "-m", "aistack_client.cli", "--url", edge.address, "--token", TEST_TOKEN]
    done = subprocess.run(
        [*cli, "ocr", str(contract), "--languages", "pt,en", "--pages", "2-"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Cláusula segunda\n\nCláusula terceira\n"
    assert "[page 2: 1/2, text layer]" in done.stderr and "[page 3: 2/2, text layer]" in done.stderr
