"""The OCR use case: a document in, pages of lines in reading order out, one page at a time.

Engines block for seconds per page, so pages are read on a bounded thread pool, never on the event loop.
Admission is bounded too: at most `workers + max_queue` documents are in flight; the next one is refused
with RESOURCE_EXHAUSTED (and a retry delay) instead of queueing without end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from aistack_kit import errors
from aistack_kit.logs import log_fields
from PIL import Image as PILImage
from prometheus_client import Counter, Gauge, Histogram

from aistack_ocr.documents import Document, Limits, PageRequest, PageSource, open_document
from aistack_ocr.engine import EngineLine, OcrEngine
from aistack_ocr.layout import document_text, page_text, rows_in_reading_order

logger = logging.getLogger("aistack.ocr")

PAGES = Counter(
    "aistack_ocr_pages_total", "Pages read, by where the text came from (ocr, text_layer).", ["source"]
)
PAGE_SECONDS = Histogram(
    "aistack_ocr_page_seconds",
    "Wall time to produce one page (decode or render, then OCR), by source.",
    ["source"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
IN_FLIGHT = Gauge("aistack_ocr_documents_in_flight", "Documents being read or waiting for a worker.")
REJECTED = Counter("aistack_ocr_documents_rejected_total", "Documents refused because the queue was full.")


@dataclass(frozen=True)
class OcrOptions:
    """What a caller may choose; zero values mean the service's defaults."""

    languages: tuple[str, ...] = ()
    first_page: int = 0
    last_page: int = 0
    dpi: int = 0
    detect_rotation: bool = False
    use_text_layer: bool = True


@dataclass(frozen=True)
class PageResult:
    page_number: int
    width: int
    height: int
    # In reading order.
    lines: list[EngineLine]
    text: str
    from_text_layer: bool = False
    rotation_degrees: int = 0


@dataclass(frozen=True)
class PageProgress:
    page: PageResult
    pages_done: int
    pages_total: int
    # Pages in the whole document (a page range may ask for fewer).
    page_count: int


@dataclass(frozen=True)
class DocumentResult:
    pages: list[PageResult]
    text: str
    page_count: int
    engine: str
    seconds: float


@dataclass(frozen=True)
class PipelineSettings:
    limits: Limits = field(default_factory=Limits)
    default_dpi: int = 200
    default_languages: tuple[str, ...] = ("pt", "en")
    workers: int = 1
    max_queue: int = 8
    text_layer_min_chars: int = 8
    # Seconds between progress log lines while a long document is read.
    progress_log_seconds: float = 5.0


def normalize_languages(requested: Sequence[str]) -> tuple[str, ...]:
    """`["pt-BR", "EN", "pt"]` -> `("pt", "en")`; items may themselves be comma lists."""
    seen: list[str] = []
    for item in requested:
        for part in item.split(","):
            code = part.strip().lower().replace("_", "-").split("-", 1)[0]
            if code and code not in seen:
                seen.append(code)
    return tuple(seen)


class OcrPipeline:
    def __init__(self, engine: OcrEngine, settings: PipelineSettings | None = None) -> None:
        self._engine = engine
        self._settings = settings or PipelineSettings()
        self._executor = ThreadPoolExecutor(max_workers=self._settings.workers, thread_name_prefix="ocr")
        self._in_flight = 0
        self._loaded = False
        # Pillow refuses (DecompressionBombError) images over twice this before decoding them; ours is
        # the stricter check, this one is the safety net for every other path into Pillow.
        PILImage.MAX_IMAGE_PIXELS = self._settings.limits.max_pixels

    @property
    def engine_name(self) -> str:
        return self._engine.info.name

    @property
    def settings(self) -> PipelineSettings:
        return self._settings

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._engine.load)
        self._loaded = True

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self._engine.close)

    def check_languages(self, requested: Sequence[str]) -> tuple[str, ...]:
        languages = normalize_languages(requested) or self._settings.default_languages
        supported = self._engine.info.languages
        unknown = [code for code in languages if supported and code not in supported]
        if unknown:
            raise errors.InvalidArgument(
                f"language(s) {', '.join(unknown)} not read by {self.engine_name}; "
                f"supported: {', '.join(sorted(supported))}",
                reason="UNSUPPORTED_LANGUAGE",
                metadata={"languages": ",".join(unknown), "engine": self.engine_name},
            )
        return languages

    async def recognize(self, content: bytes, mime_type: str, options: OcrOptions) -> DocumentResult:
        started = time.perf_counter()
        pages: list[PageResult] = []
        page_count = 0
        async for progress in self.stream(content, mime_type, options):
            pages.append(progress.page)
            page_count = progress.page_count
        return DocumentResult(
            pages=pages,
            text=document_text([p.text for p in pages]),
            page_count=page_count,
            engine=self.engine_name,
            seconds=time.perf_counter() - started,
        )

    async def stream(
        self, content: bytes, mime_type: str, options: OcrOptions
    ) -> AsyncIterator[PageProgress]:
        if not self._loaded:
            raise errors.Unavailable("the OCR engine is still loading", reason="ENGINE_NOT_READY")
        self.check_languages(options.languages)
        settings = self._settings
        capacity = settings.workers + settings.max_queue
        if self._in_flight >= capacity:
            REJECTED.inc()
            raise errors.ResourceExhausted(
                f"OCR is busy: {self._in_flight} documents in flight (limit {capacity}); retry later",
                reason="OCR_QUEUE_FULL",
                metadata={"in_flight": str(self._in_flight), "limit": str(capacity)},
                retry_after_seconds=2.0,
            )
        self._in_flight += 1
        IN_FLIGHT.inc()
        try:
            request = PageRequest(
                first_page=options.first_page,
                last_page=options.last_page,
                dpi=options.dpi or settings.default_dpi,
                use_text_layer=options.use_text_layer,
                text_layer_min_chars=settings.text_layer_min_chars,
            )
            # Opening only parses headers; it runs beside the OCR pool so bad input is refused at once.
            document = await asyncio.to_thread(open_document, content, mime_type, request, settings.limits)
            try:
                async for progress in self._read_pages(document, options):
                    yield progress
            finally:
                await asyncio.to_thread(document.close)
        finally:
            self._in_flight -= 1
            IN_FLIGHT.dec()

    async def _read_pages(self, document: Document, options: OcrOptions) -> AsyncIterator[PageProgress]:
        loop = asyncio.get_running_loop()
        total = len(document.page_numbers)
        started = last_log = time.perf_counter()
        for done, number in enumerate(document.page_numbers, start=1):
            page = await loop.run_in_executor(self._executor, self._read_page, document, number, options)
            now = time.perf_counter()
            if total > 1 and (done == total or now - last_log >= self._settings.progress_log_seconds):
                last_log = now
                logger.info(
                    "ocr progress",
                    extra=log_fields(
                        pages_done=done,
                        pages_total=total,
                        page_count=document.page_count,
                        elapsed_seconds=round(now - started, 1),
                    ),
                )
            yield PageProgress(page=page, pages_done=done, pages_total=total, page_count=document.page_count)

    def _read_page(self, document: Document, number: int, options: OcrOptions) -> PageResult:
        """One page, on a worker thread: produce it, read it, put its lines in order."""
        started = time.perf_counter()
        source: PageSource = document.page(number)
        if source.text_lines is not None:
            lines, width, height, rotation, kind = (
                source.text_lines,
                source.width,
                source.height,
                0,
                "text_layer",
            )
        else:
            assert source.image is not None
            read = self._engine.read(source.image, detect_rotation=options.detect_rotation)
            lines, width, height, rotation, kind = (
                read.lines,
                read.width,
                read.height,
                read.rotation_degrees,
                "ocr",
            )
        rows = rows_in_reading_order(lines)
        PAGES.labels(kind).inc()
        PAGE_SECONDS.labels(kind).observe(time.perf_counter() - started)
        return PageResult(
            page_number=number,
            width=width,
            height=height,
            lines=[line for row in rows for line in row],
            text=page_text(rows),
            from_text_layer=kind == "text_layer",
            rotation_degrees=rotation,
        )
