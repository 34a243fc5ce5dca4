"""Pages per minute through the OCR service vs RapidOCR called directly, on the same pages.

    .venv/bin/python bench/ocr/throughput.py                 # CPU, 4 pages, 1 round
    .venv/bin/python bench/ocr/throughput.py --pages 16 --rounds 3 --cuda   # onnxruntime-gpu

The document is an image-only PDF of full A4 pages of Portuguese and English text (made here, so no
text layer short-cuts OCR). Three ways to read each page, interleaved page by page so that machine
load hits all of them alike:
  direct   rapidocr.RapidOCR on each page image (rendered beforehand with pypdfium2), nothing else;
  engine   aistack_ocr's RapidOcrEngine in this process (adds reading order and the ink crop);
  service  `python -m aistack_ocr` in its own process, one Recognize call per page (a page range of
           the whole PDF) over gRPC: adds sending and parsing the PDF, rendering the page, the worker
           pool, protobuf, the network stack. At the end the whole document goes in one call too.
Overhead is service vs direct, in wall time and in CPU seconds (steadier on a shared machine); the
goal is <= 5 %.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack.ocr.v1 import ocr_service_pb2_grpc as pb_grpc
from aistack_edge.testing import free_port, start_service
from aistack_kit.testing import machine_description
from aistack_ocr.rapid_engine import SHIPPED_MODELS, RapidOcrEngine, RapidOcrSettings, shipped_model_dir
from PIL import Image, ImageDraw, ImageFont

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TOKEN = "bench-token-0123456789"
DPI = 150
SENTENCES = (
    "Ação de cobrança em São Paulo, preço total R$ 1.234,56 com vencimento em 25/11/2026.",
    "The customer called on 25/11/2026 about invoice 4471 and asked for a payment plan.",
    "Atendimento: o cliente confirmou o endereço e pediu a segunda via do boleto.",
    "Please confirm the delivery address and the contract number before closing the ticket.",
)


def page_text(number: int) -> str:
    return "\n".join(SENTENCES[(number + line) % len(SENTENCES)] for line in range(30))


def character_error_rate(hypothesis: str, reference: str) -> float:
    previous = list(range(len(reference) + 1))
    for i, char in enumerate(hypothesis, start=1):
        current = [i]
        for j, ref_char in enumerate(reference, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != ref_char)))
        previous = current
    return previous[-1] / max(len(reference), 1)


def make_pdf(pages: int) -> bytes:
    """Full A4 pages at 150 dpi: 30 lines of 12 pt text each, margins of 1.5 cm."""
    font = ImageFont.truetype(FONT, 25)
    images = []
    for number in range(pages):
        image = Image.new("RGB", (1240, 1754), "white")
        draw = ImageDraw.Draw(image)
        for line, text in enumerate(page_text(number).split("\n")):
            draw.text((90, 90 + line * 52), text, fill="black", font=font)
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:], resolution=DPI)
    return buffer.getvalue()


def render(pdf: bytes) -> list[np.ndarray[Any, Any]]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [np.asarray(page.render(scale=DPI / 72).to_pil().convert("RGB")) for page in document]
    finally:
        document.close()


def direct_reader(cuda: bool) -> Any:
    from rapidocr import RapidOCR

    folder = shipped_model_dir()
    return RapidOCR(
        params={
            "Global.log_level": "error",
            "Global.use_cls": False,
            "Det.model_path": str(folder / SHIPPED_MODELS["det"][0]),
            "Rec.model_path": str(folder / SHIPPED_MODELS["rec"][0]),
            "Cls.model_path": str(folder / SHIPPED_MODELS["cls"][0]),
            "EngineConfig.onnxruntime.use_cuda": cuda,
        }
    )


METHODS = ("direct", "engine", "service")
_TICKS = os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cuda", action="store_true", help="onnxruntime CUDA provider (onnxruntime-gpu)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    pdf = make_pdf(args.pages)
    images = render(pdf)
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
    where = machine_description()
    print(f"machine: {where}", flush=True)
    print(f"document: {args.pages} A4 pages at {DPI} dpi, 30 lines each, {len(pdf) // 1024} KiB", flush=True)

    reader = direct_reader(args.cuda)
    engine = RapidOcrEngine(RapidOcrSettings(use_cuda=args.cuda))
    engine.load()
    reader(bgr[0])  # build the sessions before timing

    env = {
        "API_TOKENS": json.dumps([TOKEN]),
        "AISTACK_OCR_ENGINE": "rapidocr",
        "AISTACK_OCR_RAPID_USE_CUDA": "true" if args.cuda else "false",
        "AISTACK_OCR_DPI": str(DPI),
        "AISTACK_LOG_LEVEL": "warning",
    }
    port = free_port()
    # Wall time and CPU time per method. Other work on a shared machine inflates wall time unevenly;
    # CPU seconds spent (the service process's plus this client's, or this process's for the in-process
    # readers) are the steadier measure of overhead.
    wall: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    cpu: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    with (
        start_service("aistack_ocr", port, env, timeout=300) as service,
        grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        ) as channel,
    ):
        stub = pb_grpc.OcrServiceStub(channel)
        metadata = (("authorization", f"Bearer {TOKEN}"),)

        def one_page(number: int) -> pb.RecognizeResponse:
            config = pb.OcrConfig(dpi=DPI, page_range=pb.PageRange(first_page=number, last_page=number))
            reply: pb.RecognizeResponse = stub.Recognize(
                pb.RecognizeRequest(content=pdf, config=config), metadata=metadata, timeout=600
            )
            return reply

        one_page(1)  # build the service's sessions before timing
        pid = service.popen.pid
        runs: dict[str, Any] = {
            "direct": lambda i: reader(bgr[i]),
            "engine": lambda i: engine.read(images[i], detect_rotation=False),
            "service": lambda i: one_page(i + 1),
        }
        # Interleaved page by page, so that load changes hit every method alike.
        for round_number in range(1, args.rounds + 1):
            for index in range(args.pages):
                for name, run in runs.items():
                    cpu_before = _own_cpu() + (_process_cpu(pid) if name == "service" else 0.0)
                    started = time.perf_counter()
                    result = run(index)
                    wall[name] += time.perf_counter() - started
                    cpu[name] += _own_cpu() + (_process_cpu(pid) if name == "service" else 0.0) - cpu_before
                    if name == "service":
                        assert len(result.pages) == 1 and result.pages[0].page_number == index + 1
            print(f"round {round_number}: " + ", ".join(f"{n} {wall[n]:.1f} s" for n in METHODS), flush=True)
        # Same pages, whole document in one call: what a caller sees.
        started = time.perf_counter()
        whole = stub.Recognize(
            pb.RecognizeRequest(content=pdf, config=pb.OcrConfig(dpi=DPI)), metadata=metadata
        )
        document_seconds = time.perf_counter() - started
        assert len(whole.pages) == args.pages

    pages = args.pages * args.rounds
    results: dict[str, Any] = {"machine": where, "pages": pages, "cuda": args.cuda}
    for name in METHODS:
        results[name] = {
            "pages_per_minute": round(60 * pages / wall[name], 2),
            "cpu_seconds_per_page": round(cpu[name] / pages, 2),
        }
    results["service_whole_document_pages_per_minute"] = round(60 * args.pages / document_seconds, 2)
    # Speed means nothing if the text is wrong: the character error rate of that whole-document read.
    errors = [character_error_rate(page.text, page_text(page.page_number - 1)) for page in whole.pages]
    results["service_character_error_rate"] = round(sum(errors) / len(errors), 4)
    results["service_overhead_percent_wall"] = round(100 * (wall["service"] / wall["direct"] - 1), 1)
    results["service_overhead_percent_cpu"] = round(100 * (cpu["service"] / cpu["direct"] - 1), 1)
    for name in METHODS:
        rate, seconds = results[name]["pages_per_minute"], results[name]["cpu_seconds_per_page"]
        print(f"{name:8} {rate:7.2f} pages/min  {seconds:6.2f} CPU s/page")
    whole_rate, error_rate = (
        results["service_whole_document_pages_per_minute"],
        results["service_character_error_rate"],
    )
    print(
        f"service, whole document in one call: {whole_rate} pages/min; character error rate {error_rate:.2%}"
    )
    print(
        f"service overhead vs direct: wall {results['service_overhead_percent_wall']:+.1f} %, "
        f"CPU {results['service_overhead_percent_cpu']:+.1f} %"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
