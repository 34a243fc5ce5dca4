"""`aistack ocr FILE [--languages pt,en]`: the text of an image or PDF.

Text output streams page by page (progress on stderr), so a long PDF shows its first page early;
`--json` prints the whole RecognizeResponse instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack.ocr.v1 import ocr_service_pb2_grpc as pb_grpc
from google.protobuf import json_format

from aistack_client.client import AistackClient


def _page_range(value: str) -> tuple[int, int]:
    """`3` -> (3, 3); `2-5` -> (2, 5); `4-` -> (4, 0) (to the end)."""
    first, dash, last = value.partition("-")
    try:
        start = int(first)
        end = (int(last) if last else 0) if dash else start
    except ValueError:
        raise argparse.ArgumentTypeError(f"pages must look like 3, 2-5 or 4-, got {value!r}") from None
    if start < 1 or (end and end < start):
        raise argparse.ArgumentTypeError(f"pages must look like 3, 2-5 or 4-, got {value!r}")
    return start, end


def register(subparsers: Any) -> None:
    ocr: argparse.ArgumentParser = subparsers.add_parser("ocr", help="read the text of an image or PDF")
    ocr.add_argument("file", type=Path, help="png, jpeg, tiff, webp, bmp or pdf")
    ocr.add_argument("--languages", default="pt,en", help="languages in the document (default pt,en)")
    ocr.add_argument("--pages", type=_page_range, help="PDF pages: 3, 2-5 or 4- (default all)")
    ocr.add_argument("--dpi", type=int, default=0, help="PDF render resolution (default: the service's, 200)")
    ocr.add_argument("--detect-rotation", action="store_true", help="undo pages turned by 90/180/270 degrees")
    ocr.add_argument(
        "--no-text-layer", action="store_true", help="OCR PDF pages even when they carry their own text"
    )
    ocr.add_argument("--lines", action="store_true", help="print each line with its confidence and box")
    ocr.add_argument("--json", action="store_true", help="print the whole response as JSON")
    ocr.add_argument("--timeout", type=float, default=600.0, help="seconds to wait (default 600)")
    ocr.set_defaults(handler=run)


def _config(args: argparse.Namespace) -> pb.OcrConfig:
    first, last = args.pages or (0, 0)
    config = pb.OcrConfig(
        languages=[code.strip() for code in args.languages.split(",") if code.strip()],
        page_range=pb.PageRange(first_page=first, last_page=last),
        dpi=args.dpi,
        detect_rotation=args.detect_rotation,
    )
    if args.no_text_layer:
        config.use_text_layer = False
    return config


def _print_lines(page: pb.Page) -> None:
    for line in page.lines:
        corners = " ".join(f"{v.x:.0f},{v.y:.0f}" for v in line.bounding_poly.vertices)
        print(f"  {line.confidence:.2f}  [{corners}]  {line.text}")


async def run(args: argparse.Namespace, client: AistackClient) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        print(f"aistack: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    stub = client.stub(pb_grpc.OcrServiceStub)
    if args.json:
        response = await stub.Recognize(
            pb.RecognizeRequest(content=content, config=_config(args)), timeout=args.timeout
        )
        print(json.dumps(json_format.MessageToDict(response), ensure_ascii=False, indent=2))
        return 0
    request = pb.RecognizeStreamRequest(content=content, config=_config(args))
    first = True
    async for reply in stub.RecognizeStream(request, timeout=args.timeout):
        page = reply.page
        source = "text layer" if page.from_text_layer else "ocr"
        rotated = f", rotated {page.rotation_degrees:.0f}°" if page.rotation_degrees else ""
        print(
            f"[page {page.page_number}: {reply.pages_done}/{reply.pages_total}, {source}{rotated}]",
            file=sys.stderr,
        )
        if not first:
            print()
        first = False
        if args.lines:
            _print_lines(page)
        else:
            print(page.text)
    return 0
