"""Turning uploaded bytes into pages: images (Pillow) and PDFs (PDFium), with every limit checked first.

Opening a document reads only headers and the page tree, so a decompression bomb, a 10,000-page PDF or a
page that would render to a billion pixels is refused before any pixel is decoded. Each page is then
produced on demand (decoded, rendered, or taken from the PDF's text layer) by the worker thread that
reads it.
"""

from __future__ import annotations

import io
import math
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pypdfium2 as pdfium  # type: ignore[import-untyped,unused-ignore]
import pypdfium2.raw as pdfium_c  # type: ignore[import-untyped,unused-ignore]
from aistack_kit import errors
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from aistack_ocr.engine import EngineLine, Image


class MediaType(StrEnum):
    PDF = "application/pdf"
    PNG = "image/png"
    JPEG = "image/jpeg"
    TIFF = "image/tiff"
    WEBP = "image/webp"
    BMP = "image/bmp"


SUPPORTED = ", ".join(m.value for m in MediaType)

_ALIASES = {"image/jpg": MediaType.JPEG, "image/x-ms-bmp": MediaType.BMP, "image/tif": MediaType.TIFF}
# Declared types that say nothing about the bytes (curl's default for unknown extensions).
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}


def sniff(content: bytes) -> MediaType | None:
    """The media type the bytes themselves show (magic numbers), or None."""
    head = content[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType.JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return MediaType.TIFF
    if head.startswith(b"RIFF") and content[8:12] == b"WEBP":
        return MediaType.WEBP
    if head.startswith(b"BM"):
        return MediaType.BMP
    # The PDF header may follow some junk; readers accept it within the first KiB.
    if b"%PDF-" in content[:1024]:
        return MediaType.PDF
    return None


def media_type_of(content: bytes, declared: str) -> MediaType:
    """What to read the bytes as. The bytes decide; a declared type only names what we could not read."""
    found = sniff(content)
    if found is not None:
        return found
    declared = declared.split(";", 1)[0].strip().lower()
    known = _ALIASES.get(declared) or (
        MediaType(declared) if declared in MediaType._value2member_map_ else None
    )
    if known is not None:
        raise errors.InvalidArgument(
            f"the content is not a readable {known.value} file",
            reason="CORRUPT_DOCUMENT",
            metadata={"mime_type": known.value},
        )
    raise errors.InvalidArgument(
        f"unsupported document type {declared or '(unknown)'}; send one of: {SUPPORTED}",
        reason="UNSUPPORTED_MEDIA_TYPE",
        metadata={"mime_type": declared or "unknown", "supported": SUPPORTED},
    )


@dataclass(frozen=True)
class Limits:
    max_pages: int = 200
    max_pixels: int = 40_000_000
    max_bytes: int = 50 * 1024 * 1024
    max_dpi: int = 600


@dataclass(frozen=True)
class PageRequest:
    """Which pages, and how to make them."""

    first_page: int = 0
    last_page: int = 0
    dpi: int = 200
    use_text_layer: bool = True
    # A PDF page counts as having a text layer when it holds at least this many non-space characters.
    text_layer_min_chars: int = 8


@dataclass(frozen=True)
class PageSource:
    """One page, ready for an engine (`image`) or already read from a text layer (`text_lines`)."""

    page_number: int
    width: int
    height: int
    image: Image | None = None
    text_lines: list[EngineLine] | None = None


class Document(ABC):
    """An opened document: its pages, the ones asked for, and a way to produce each."""

    media_type: MediaType
    page_count: int
    page_numbers: list[int]

    @abstractmethod
    def page(self, number: int) -> PageSource:
        """Decodes or renders page `number` (1-based). Blocking: call from a worker thread."""

    @abstractmethod
    def close(self) -> None: ...


def _select_pages(page_count: int, request: PageRequest, limits: Limits) -> list[int]:
    if page_count <= 0:
        raise errors.InvalidArgument("the document has no pages", reason="EMPTY_DOCUMENT")
    first = request.first_page or 1
    last = min(request.last_page or page_count, page_count)
    if first < 1 or first > page_count or (request.last_page and request.last_page < first):
        raise errors.InvalidArgument(
            f"page range {first}-{request.last_page or 'end'} is outside the document's {page_count} page(s)",
            reason="PAGE_OUT_OF_RANGE",
            metadata={
                "page_count": str(page_count),
                "first_page": str(first),
                "last_page": str(request.last_page),
            },
        )
    selected = list(range(first, last + 1))
    if len(selected) > limits.max_pages:
        raise errors.InvalidArgument(
            f"{len(selected)} pages asked for; at most {limits.max_pages} per request "
            "(send a page range: first_page/last_page)",
            reason="TOO_MANY_PAGES",
            metadata={
                "pages": str(len(selected)),
                "max_pages": str(limits.max_pages),
                "page_count": str(page_count),
            },
        )
    return selected


def _too_large(width: int, height: int, limits: Limits, page: int, hint: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"page {page} is {width}x{height} pixels, over the limit of {limits.max_pixels} pixels{hint}",
        reason="IMAGE_TOO_LARGE",
        metadata={
            "page": str(page),
            "width": str(width),
            "height": str(height),
            "max_pixels": str(limits.max_pixels),
        },
    )


def open_document(content: bytes, declared_mime: str, request: PageRequest, limits: Limits) -> Document:
    """Opens and checks a document. Blocking (PDF parsing): call from a worker thread."""
    if not content:
        raise errors.InvalidArgument("no document: content is empty", reason="EMPTY_DOCUMENT")
    if len(content) > limits.max_bytes:
        raise errors.InvalidArgument(
            f"the document is {len(content)} bytes, over the limit of {limits.max_bytes}",
            reason="DOCUMENT_TOO_LARGE",
            metadata={"bytes": str(len(content)), "max_bytes": str(limits.max_bytes)},
        )
    if not 36 <= request.dpi <= limits.max_dpi:
        raise errors.InvalidArgument(
            f"dpi must be between 36 and {limits.max_dpi}, got {request.dpi}",
            reason="INVALID_DPI",
            metadata={"dpi": str(request.dpi), "max_dpi": str(limits.max_dpi)},
        )
    media_type = media_type_of(content, declared_mime)
    if media_type is MediaType.PDF:
        return PdfDocument(content, request, limits)
    return ImageDocument(content, media_type, request, limits)


# --- images -------------------------------------------------------------------------------------------


@contextmanager
def _pillow_errors(media_type: MediaType) -> Iterator[None]:
    try:
        with warnings.catch_warnings():
            # Sizes are checked against our own limit before decoding; PIL's warning adds nothing.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            yield
    except PILImage.DecompressionBombError as exc:
        raise errors.InvalidArgument(
            f"the image is too large to decode safely ({exc})", reason="IMAGE_TOO_LARGE"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise errors.InvalidArgument(
            f"the {media_type.value} file is corrupt or truncated: {exc}",
            reason="CORRUPT_DOCUMENT",
            metadata={"mime_type": media_type.value},
        ) from None


def _to_rgb(frame: PILImage.Image) -> Image:
    frame = ImageOps.exif_transpose(frame) or frame
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        # Text on a transparent background: put it on white, as a viewer shows it.
        rgba = frame.convert("RGBA")
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        frame = PILImage.alpha_composite(white, rgba)
    return np.asarray(frame.convert("RGB"), dtype=np.uint8)


class ImageDocument(Document):
    """A still image, or a multi-page TIFF (one page per frame)."""

    def __init__(self, content: bytes, media_type: MediaType, request: PageRequest, limits: Limits) -> None:
        self.media_type = media_type
        self._lock = threading.Lock()
        with _pillow_errors(media_type):
            image = PILImage.open(io.BytesIO(content))
            frames = getattr(image, "n_frames", 1) if media_type is MediaType.TIFF else 1
        self._image = image
        self.page_count = int(frames)
        self.page_numbers = _select_pages(self.page_count, request, limits)
        self._limits = limits
        width, height = image.size
        if width * height > limits.max_pixels:
            raise _too_large(width, height, limits, self.page_numbers[0], "")

    def page(self, number: int) -> PageSource:
        with self._lock, _pillow_errors(self.media_type):
            self._image.seek(number - 1)
            width, height = self._image.size
            if width * height > self._limits.max_pixels:
                raise _too_large(width, height, self._limits, number, "")
            pixels = _to_rgb(self._image)
        return PageSource(page_number=number, width=pixels.shape[1], height=pixels.shape[0], image=pixels)

    def close(self) -> None:
        self._image.close()


# --- PDFs ---------------------------------------------------------------------------------------------

# PDFium is not thread-safe, not even across documents: every call into it holds this lock. Rendering is
# short next to OCR, which runs outside it.
_PDFIUM = threading.Lock()


def _non_space(text: str) -> int:
    return sum(1 for char in text if not char.isspace())


class PdfDocument(Document):
    media_type = MediaType.PDF

    def __init__(self, content: bytes, request: PageRequest, limits: Limits) -> None:
        self._request = request
        self._scale = request.dpi / 72.0
        with _PDFIUM:
            try:
                self._pdf = pdfium.PdfDocument(content)
            except pdfium.PdfiumError as exc:
                raise self._open_error(exc) from None
            try:
                self.page_count = len(self._pdf)
                self.page_numbers = _select_pages(self.page_count, request, limits)
                for number in self.page_numbers:
                    width_pt, height_pt = self._pdf.get_page_size(number - 1)
                    width, height = math.ceil(width_pt * self._scale), math.ceil(height_pt * self._scale)
                    if width * height > limits.max_pixels:
                        raise _too_large(
                            width, height, limits, number, f" at {request.dpi} dpi (ask a lower dpi)"
                        )
            except BaseException:
                self._pdf.close()
                raise

    @staticmethod
    def _open_error(exc: pdfium.PdfiumError) -> errors.AistackError:
        code = getattr(exc, "err_code", None)
        if code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            return errors.InvalidArgument(
                "the PDF is encrypted with a password; send it decrypted",
                reason="PDF_ENCRYPTED",
                metadata={"mime_type": MediaType.PDF.value},
            )
        return errors.InvalidArgument(
            f"the PDF is corrupt or truncated: {exc}",
            reason="CORRUPT_DOCUMENT",
            metadata={"mime_type": MediaType.PDF.value},
        )

    def page(self, number: int) -> PageSource:
        with _PDFIUM:
            page = self._pdf[number - 1]
            try:
                if self._request.use_text_layer and page.get_rotation() == 0:
                    from_text = self._text_layer(page, number)
                    if from_text is not None:
                        return from_text
                try:
                    bitmap = page.render(scale=self._scale, may_draw_forms=False)
                    pixels = np.asarray(bitmap.to_pil().convert("RGB"), dtype=np.uint8)
                except pdfium.PdfiumError as exc:
                    raise errors.InvalidArgument(
                        f"page {number} of the PDF cannot be rendered: {exc}",
                        reason="CORRUPT_DOCUMENT",
                        metadata={"page": str(number)},
                    ) from None
            finally:
                page.close()
        return PageSource(page_number=number, width=pixels.shape[1], height=pixels.shape[0], image=pixels)

    def _text_layer(self, page: pdfium.PdfPage, number: int) -> PageSource | None:
        """The page's own text with its line boxes, or None when it has (almost) none."""
        textpage = page.get_textpage()
        try:
            if _non_space(textpage.get_text_range()) < self._request.text_layer_min_chars:
                return None
            left, bottom, right, top = page.get_cropbox()
            scale = self._scale
            lines = []
            for index in range(textpage.count_rects()):
                x0, y0, x1, y1 = textpage.get_rect(index)
                text = " ".join(textpage.get_text_bounded(x0, y0, x1, y1).split())
                if not text:
                    continue
                # PDF space has its origin at the bottom left; page pixels at the top left.
                px0, px1 = (x0 - left) * scale, (x1 - left) * scale
                py0, py1 = (top - y1) * scale, (top - y0) * scale
                polygon = ((px0, py0), (px1, py0), (px1, py1), (px0, py1))
                lines.append(EngineLine(text=text, confidence=1.0, polygon=polygon))
        finally:
            textpage.close()
        # The size PDFium renders the page at (it rounds up).
        width, height = math.ceil((right - left) * scale), math.ceil((top - bottom) * scale)
        return PageSource(page_number=number, width=width, height=height, text_lines=lines)

    def close(self) -> None:
        with _PDFIUM:
            self._pdf.close()
