"""Pages per minute through the OCR service vs RapidOCR called directly, on the same pages.

    .venv/bin/python bench/ocr/throughput.py                 # CPU, 4 pages, 2 rounds
    .venv/bin/python bench/ocr/throughput.py --pages 8 --rounds 3 --cuda   # onnxruntime-gpu

The document is an image-only PDF of full A4 pages of Portuguese and English text (made here, so no
text layer short-cuts OCR). Three ways to read it, interleaved round by round so that machine load
hits all of them alike:
  direct   rapidocr.RapidOCR on each page image (rendered beforehand with pypdfium2), nothing else;
  engine   aistack_ocr's RapidOcrEngine in this process (adds reading order and the ink crop);
  service  `python -m aistack_ocr` in its own process, one Recognize call per document over gRPC
           (adds PDF parsing and rendering, the worker pool, protobuf, the network stack).
Overhead is service vs direct; the goal is <= 5 %.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
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


def make_pdf(pages: int) -> bytes:
    """Full A4 pages at 150 dpi: 30 lines of 12 pt text each, margins of 1.5 cm."""
    font = ImageFont.truetype(FONT, 25)
    images = []
    for number in range(pages):
        image = Image.new("RGB", (1240, 1754), "white")
        draw = ImageDraw.Draw(image)
        for line in range(30):
            text = SENTENCES[(number + line) % len(SENTENCES)]
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


def timed(run: Any) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at start"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cuda", action="store_true", help="onnxruntime CUDA provider (onnxruntime-gpu)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    pdf = make_pdf(args.pages)
    images = render(pdf)
    bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in images]
    print(f"machine: {machine()}", flush=True)
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
    times: dict[str, list[float]] = {"direct": [], "engine": [], "service": []}
    with (
        start_service("aistack_ocr", port, env, timeout=300),
        grpc.insecure_channel(
            f"127.0.0.1:{port}",
            options=[
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
            ],
        ) as channel,
    ):
        stub = pb_grpc.OcrServiceStub(channel)
        request = pb.RecognizeRequest(content=pdf, config=pb.OcrConfig(dpi=DPI))
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        stub.Recognize(request, metadata=metadata, timeout=600)  # warm the service's sessions
        for round_number in range(1, args.rounds + 1):
            times["direct"].append(timed(lambda: [reader(page) for page in bgr]))
            times["engine"].append(
                timed(lambda: [engine.read(page, detect_rotation=False) for page in images])
            )
            started = time.perf_counter()
            reply = stub.Recognize(request, metadata=metadata, timeout=600)
            times["service"].append(time.perf_counter() - started)
            assert len(reply.pages) == args.pages
            print(
                f"round {round_number}: "
                + ", ".join(f"{name} {values[-1]:.1f} s" for name, values in times.items()),
                flush=True,
            )

    results: dict[str, Any] = {
        "machine": machine(),
        "pages": args.pages,
        "rounds": args.rounds,
        "cuda": args.cuda,
    }
    for name, values in times.items():
        seconds = statistics.median(values)
        results[name] = {
            "pages_per_minute": round(60 * args.pages / seconds, 2),
            "median_seconds": round(seconds, 2),
        }
    overhead = results["service"]["median_seconds"] / results["direct"]["median_seconds"] - 1
    results["service_overhead_percent"] = round(100 * overhead, 1)
    for name in times:
        rate, seconds = results[name]["pages_per_minute"], results[name]["median_seconds"]
        print(f"{name:8} {rate:7.2f} pages/min  (median {seconds} s)")
    print(f"service overhead vs direct: {results['service_overhead_percent']:+.1f} %")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
