"""The OCR service end to end over gRPC, with the real RapidOCR models and documents made here.

One server for the module (RapidOCR loads in ~10 s on 2 cores); it runs one worker and no queue, so the
overload test can fill it with a single document.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import ocr_testkit as kit
import pytest
from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack.ocr.v1 import ocr_service_pb2_grpc as pb_grpc
from aistack_kit.config import Env
from aistack_kit.errors import error_info_of
from aistack_kit.server import RunningServer
from aistack_kit.testing import auth_metadata, start_test_server
from aistack_ocr.app import OcrCapability
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from prometheus_client import REGISTRY

pytestmark = pytest.mark.slow

ENV = {
    "AISTACK_OCR_ENGINE": "rapidocr",
    "AISTACK_OCR_MAX_PAGES": "5",
    "AISTACK_OCR_MAX_PIXELS": "40000000",
    "AISTACK_OCR_MAX_UPLOAD_BYTES": str(4 * 1024 * 1024),
    "AISTACK_OCR_WORKERS": "1",
    "AISTACK_OCR_MAX_QUEUE": "0",
    "AISTACK_OCR_PROGRESS_LOG_SECONDS": "0",
}
MD = auth_metadata()


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[RunningServer]:
    capability = OcrCapability.from_env(Env(ENV))
    running = await start_test_server(capability, "ocr", ENV)
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.aio.Channel) -> pb_grpc.OcrServiceAsyncStub:
    return pb_grpc.OcrServiceStub(channel)


async def recognize(stub: pb_grpc.OcrServiceAsyncStub, content: bytes, **config: Any) -> pb.RecognizeResponse:
    return await stub.Recognize(
        pb.RecognizeRequest(content=content, config=pb.OcrConfig(**config)), metadata=MD
    )


def three_page_scan() -> bytes:
    pages = [
        kit.render_lines([f"Página {n} de 3", word])
        for n, word in ((1, "Abacate"), (2, "Banana"), (3, "Caju"))
    ]
    return kit.image_pdf(pages, resolution=100)


# --- reading ------------------------------------------------------------------------------------------


async def test_reads_portuguese_and_english_with_low_error_rate(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    before = REGISTRY.get_sample_value("aistack_ocr_pages_total", {"source": "ocr"}) or 0.0
    image = kit.render_lines(kit.PT_EN_LINES)
    reply = await recognize(stub, kit.encode(image, "PNG"), languages=["pt", "en"])

    assert reply.engine == "rapidocr/pp-ocrv6-small"
    assert reply.page_count == 1 and len(reply.pages) == 1
    page = reply.pages[0]
    assert (page.width, page.height) == image.size
    reference = "\n".join(kit.PT_EN_LINES)
    assert kit.cer(reply.text, reference) <= 0.02, reply.text
    assert kit.cer(page.text, reference) <= 0.02
    # One line per rendered row, top to bottom, each boxed where it was drawn.
    assert len(page.lines) == len(kit.PT_EN_LINES)
    tops = [min(v.y for v in line.bounding_poly.vertices) for line in page.lines]
    assert tops == sorted(tops)
    for line in page.lines:
        assert 0.5 < line.confidence <= 1.0
        assert len(line.bounding_poly.vertices) == 4
        assert all(0 <= v.x <= page.width and 0 <= v.y <= page.height for v in line.bounding_poly.vertices)
    assert reply.processing_duration.ToTimedelta().total_seconds() > 0
    assert REGISTRY.get_sample_value("aistack_ocr_pages_total", {"source": "ocr"}) == before + 1
    assert (REGISTRY.get_sample_value("aistack_ocr_page_seconds_count", {"source": "ocr"}) or 0) >= 1


@pytest.mark.parametrize(
    ("fmt", "params"), [("JPEG", {"quality": 92}), ("TIFF", {}), ("WEBP", {"lossless": True}), ("BMP", {})]
)
async def test_reads_every_image_format(
    stub: pb_grpc.OcrServiceAsyncStub, fmt: str, params: dict[str, object]
) -> None:
    content = kit.encode(kit.render_lines(["São Paulo 2026"], width=700), fmt, **params)
    reply = await recognize(stub, content)
    assert kit.cer(reply.text, "São Paulo 2026") <= 0.02, (fmt, reply.text)


async def test_pdf_pages_come_back_in_document_order(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    reply = await recognize(stub, three_page_scan(), dpi=100)
    assert reply.page_count == 3
    assert [p.page_number for p in reply.pages] == [1, 2, 3]
    assert not any(p.from_text_layer for p in reply.pages)
    for page, (number, word) in zip(reply.pages, ((1, "Abacate"), (2, "Banana"), (3, "Caju")), strict=True):
        assert kit.cer(page.text, f"Página {number} de 3\n{word}") <= 0.02, page.text
    # The document's text is its pages in order.
    assert reply.text.index("Abacate") < reply.text.index("Banana") < reply.text.index("Caju")


async def test_stream_yields_each_page_with_progress(
    stub: pb_grpc.OcrServiceAsyncStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aistack.ocr")
    config = pb.OcrConfig(dpi=100, page_range=pb.PageRange(first_page=2, last_page=3))
    call = stub.RecognizeStream(
        pb.RecognizeStreamRequest(content=three_page_scan(), config=config), metadata=MD
    )
    replies = [reply async for reply in call]
    assert [(r.pages_done, r.pages_total) for r in replies] == [(1, 2), (2, 2)]
    assert [r.page.page_number for r in replies] == [2, 3]
    assert "Banana" in replies[0].page.text and "Caju" in replies[1].page.text
    progress = [r for r in caplog.records if r.getMessage() == "ocr progress"]
    assert progress, "long documents log their progress"


async def test_text_layer_is_used_and_flagged(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    lines = ["Ação em São Paulo: preço R$ 1.234,56", "Vencimento 25/11/2026"]
    content = kit.text_pdf([lines, ["Second page in English"]])
    reply = await recognize(stub, content, dpi=100)
    assert [p.from_text_layer for p in reply.pages] == [True, True]
    # Exact: the text comes from the PDF, not from pixels.
    assert reply.pages[0].text == "\n".join(lines)
    assert reply.pages[1].text == "Second page in English"
    first = reply.pages[0].lines[0]
    assert first.confidence == 1.0
    # Helvetica 14 pt at 1 inch from the left edge: x = 100 px at 100 dpi, near the top of an A4 page.
    xs = [v.x for v in first.bounding_poly.vertices]
    assert abs(min(xs) - 100) < 3 and min(v.y for v in first.bounding_poly.vertices) < 150
    assert (reply.pages[0].width, reply.pages[0].height) == (827, 1170)

    # Switched off, the same page is read by OCR, and still right.
    ocr = await recognize(stub, content, dpi=150, use_text_layer=False, page_range=pb.PageRange(last_page=1))
    assert len(ocr.pages) == 1 and not ocr.pages[0].from_text_layer
    assert kit.cer(ocr.pages[0].text, "\n".join(lines)) <= 0.02, ocr.pages[0].text


@pytest.mark.parametrize("turned_by", [90, 180])
async def test_detects_a_turned_page(stub: pb_grpc.OcrServiceAsyncStub, turned_by: int) -> None:
    lines = ["Ação em São Paulo", "Invoice due 25/11/2026"]
    upright = kit.render_lines(lines, width=800)
    turned = upright.rotate(turned_by, expand=True)  # counter-clockwise
    reply = await recognize(stub, kit.encode(turned, "PNG"), detect_rotation=True)
    page = reply.pages[0]
    # Undone by the same turn clockwise; the page is reported upright.
    assert page.rotation_degrees == float(turned_by)
    assert (page.width, page.height) == upright.size
    assert kit.cer(page.text, "\n".join(lines)) <= 0.02, page.text
    tops = [min(v.y for v in line.bounding_poly.vertices) for line in page.lines]
    assert tops == sorted(tops)


# --- REST uploads (HttpBody as Envoy's transcoder sends it) ---------------------------------------------


async def test_multipart_upload_as_curl_sends_it(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    pdf = kit.text_pdf([["Primeira página"], ["Segunda página com preço R$ 10,00"]])
    boundary = "------------------------d74496d66958873e"
    body = kit.multipart(
        [("languages", "pt,en"), ("first_page", "2")], ("document.pdf", "application/pdf", pdf), boundary
    )
    reply = await stub.RecognizeUpload(
        httpbody_pb2.HttpBody(content_type=f"multipart/form-data; boundary={boundary}", data=body),
        metadata=MD,
    )
    assert reply.page_count == 2
    assert [p.page_number for p in reply.pages] == [2]
    assert reply.text == "Segunda página com preço R$ 10,00"


async def test_raw_image_body_and_json_body(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    png = kit.encode(kit.render_lines(["Recibo 25/11/2026"], width=700), "PNG")
    raw = await stub.RecognizeUpload(httpbody_pb2.HttpBody(content_type="image/png", data=png), metadata=MD)
    assert kit.cer(raw.text, "Recibo 25/11/2026") <= 0.02, raw.text

    pdf = kit.text_pdf([["Página um"], ["Página dois"], ["Página três"]])
    body = json.dumps(
        {
            "content": base64.b64encode(pdf).decode(),
            "config": {"languages": ["pt"], "pageRange": {"firstPage": 3}},
        }
    )
    reply = await stub.RecognizeUpload(
        httpbody_pb2.HttpBody(content_type="application/json", data=body.encode()), metadata=MD
    )
    assert [p.page_number for p in reply.pages] == [3]
    assert reply.text == "Página três"


# --- bad input: a clear status and reason each, and the server keeps serving ----------------------------


def _bomb_png(width: int, height: int) -> bytes:
    # A 1-bit image compresses to almost nothing whatever its size: kilobytes that decode to gigapixels.
    return kit.encode(Image.new("1", (width, height), 1), "PNG", optimize=True)


BAD_INPUTS: dict[str, tuple[Callable[[], bytes], str]] = {
    "encrypted_pdf": (lambda: kit.text_pdf([["segredo"]], encrypt="s3nha"), "PDF_ENCRYPTED"),
    "truncated_pdf": (lambda: kit.text_pdf([["texto"]])[:300], "CORRUPT_DOCUMENT"),
    "truncated_png": (lambda: kit.encode(kit.render_lines(["x"]), "PNG")[:200], "CORRUPT_DOCUMENT"),
    "gif": (lambda: kit.encode(kit.render_lines(["x"]), "GIF"), "UNSUPPORTED_MEDIA_TYPE"),
    "plain_text": (lambda: "Ação em São Paulo".encode(), "UNSUPPORTED_MEDIA_TYPE"),
    "empty": (lambda: b"", "EMPTY_DOCUMENT"),
    "too_many_pages": (lambda: kit.image_pdf([Image.new("RGB", (100, 100), "white")] * 6), "TOO_MANY_PAGES"),
    "pixel_bomb": (lambda: _bomb_png(20_000, 20_000), "IMAGE_TOO_LARGE"),
    "over_pixel_limit": (lambda: _bomb_png(7_000, 7_000), "IMAGE_TOO_LARGE"),
    "too_many_bytes": (lambda: b"%PDF-1.7\n" + bytes(5 * 1024 * 1024), "DOCUMENT_TOO_LARGE"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
async def test_bad_input_is_refused_with_a_reason(stub: pb_grpc.OcrServiceAsyncStub, case: str) -> None:
    make, reason = BAD_INPUTS[case]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize(stub, make())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    info = error_info_of(caught.value)
    assert info is not None and info.reason == reason, (case, info)
    assert info.domain == "ocr.aistack"


async def test_bad_options_are_refused(stub: pb_grpc.OcrServiceAsyncStub) -> None:
    pdf = kit.text_pdf([["um"], ["dois"]])
    cases: list[tuple[dict[str, Any], str]] = [
        ({"page_range": pb.PageRange(first_page=5)}, "PAGE_OUT_OF_RANGE"),
        ({"dpi": 5000}, "INVALID_DPI"),
        ({"languages": ["klingon"]}, "UNSUPPORTED_LANGUAGE"),
    ]
    for config, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await recognize(stub, pdf, **config)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        info = error_info_of(caught.value)
        assert info is not None and info.reason == reason
    body = kit.multipart([("langauges", "pt")], ("a.pdf", "application/pdf", pdf), "b0undary")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RecognizeUpload(
            httpbody_pb2.HttpBody(content_type="multipart/form-data; boundary=b0undary", data=body),
            metadata=MD,
        )
    info = error_info_of(caught.value)
    assert info is not None and info.reason == "UNKNOWN_FORM_FIELD" and info.metadata["field"] == "langauges"


async def test_server_still_serves_after_bad_input(
    stub: pb_grpc.OcrServiceAsyncStub, channel: grpc.aio.Channel
) -> None:
    for make, _ in BAD_INPUTS.values():
        with pytest.raises(grpc.aio.AioRpcError):
            await recognize(stub, make())
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reply = await recognize(stub, kit.text_pdf([["Ainda funcionando"]]))
    assert reply.text == "Ainda funcionando"


async def test_overload_is_refused_while_the_event_loop_stays_free(
    stub: pb_grpc.OcrServiceAsyncStub, channel: grpc.aio.Channel
) -> None:
    # One worker, no queue: a document being read fills the service.
    call = stub.RecognizeStream(
        pb.RecognizeStreamRequest(content=three_page_scan(), config=pb.OcrConfig(dpi=100)), metadata=MD
    )
    first = await call.read()
    assert isinstance(first, pb.RecognizeStreamResponse) and first.pages_done == 1
    # Page 2 is being read on the worker thread now; the loop still answers at once.
    started = time.perf_counter()
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert time.perf_counter() - started < 0.5
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await recognize(stub, kit.text_pdf([["mais um"]]))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info_of(caught.value)
    assert info is not None and info.reason == "OCR_QUEUE_FULL"
    call.cancel()
    # Once the cancelled document lets go (after its current page), work is admitted again.
    deadline = time.monotonic() + 30
    while True:
        try:
            reply = await recognize(stub, kit.text_pdf([["de volta"]]))
            break
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
    assert reply.text == "de volta"
