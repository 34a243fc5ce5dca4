"""Document handling without a model: type sniffing, multipart parsing, reading order, PDF text layers."""

from __future__ import annotations

import io

import ocr_testkit as kit
import pytest
from aistack_kit import errors
from aistack_ocr.documents import Limits, MediaType, PageRequest, media_type_of, open_document, sniff
from aistack_ocr.engine import EngineLine
from aistack_ocr.layout import page_text, rows_in_reading_order
from aistack_ocr.pipeline import normalize_languages
from aistack_ocr.upload import from_http_body, parse_multipart
from PIL import Image


def test_sniffs_every_supported_type_from_the_bytes() -> None:
    image = kit.render_lines(["x"], width=200)
    for fmt, expected in (
        ("PNG", MediaType.PNG),
        ("JPEG", MediaType.JPEG),
        ("TIFF", MediaType.TIFF),
        ("WEBP", MediaType.WEBP),
        ("BMP", MediaType.BMP),
    ):
        assert sniff(kit.encode(image, fmt)) is expected
    assert sniff(kit.image_pdf([image])) is MediaType.PDF
    assert sniff(kit.encode(image, "GIF")) is None
    # The bytes win over a wrong declaration.
    assert media_type_of(kit.encode(image, "PNG"), "application/pdf") is MediaType.PNG


def test_declared_type_tells_corrupt_from_unsupported() -> None:
    with pytest.raises(errors.InvalidArgument) as corrupt:
        media_type_of(b"garbage", "image/jpeg")
    assert corrupt.value.reason == "CORRUPT_DOCUMENT"
    with pytest.raises(errors.InvalidArgument) as unsupported:
        media_type_of(b"garbage", "application/msword")
    assert unsupported.value.reason == "UNSUPPORTED_MEDIA_TYPE"


def test_multipart_keeps_binary_file_bytes_exactly() -> None:
    # CRLFs and a would-be delimiter prefix inside the file must survive.
    payload = b"%PDF-1.7\r\n\r\n--not-the-boundary\r\n\x00\xff" * 100
    boundary = "XyZ123"
    body = kit.multipart(
        [("languages", "pt,en"), ("dpi", "150"), ("detect_rotation", "true")],
        ("nota fiscal.pdf", "application/pdf", payload),
        boundary,
    )
    upload = from_http_body(f'multipart/form-data; boundary="{boundary}"', b"preamble\r\n" + body)
    assert upload.content == payload
    assert upload.mime_type == "application/pdf"
    assert upload.options.languages == ("pt", "en")
    assert upload.options.dpi == 150 and upload.options.detect_rotation is True
    parts = parse_multipart(f"multipart/form-data; boundary={boundary}", body)
    assert [p.name for p in parts] == ["languages", "dpi", "detect_rotation", "file"]
    assert parts[-1].filename == "nota fiscal.pdf"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
            "multipart/form-data; boundary=b",
            "MULTIPART_MALFORMED",
        ),
        (b"--b--\r\n", "multipart/form-data", "MULTIPART_MALFORMED"),
        (
            b'--b\r\nContent-Disposition: form-data; name="languages"\r\n\r\npt\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "MISSING_FILE",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n'
            b'--b\r\nContent-Disposition: form-data; name="dpi"\r\n\r\nhigh\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            "INVALID_FORM_FIELD",
        ),
        (b"{not json", "application/json", "INVALID_JSON"),
        (b"file=abc", "application/x-www-form-urlencoded", "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_malformed_uploads_are_named(body: bytes, content_type: str, reason: str) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        from_http_body(content_type, body)
    assert caught.value.reason == reason


def _line(text: str, left: float, top: float, right: float, bottom: float) -> EngineLine:
    return EngineLine(text, 0.9, ((left, top), (right, top), (right, bottom), (left, bottom)))


def test_reading_order_groups_rows_and_merges_word_pieces() -> None:
    # Shuffled detector output: a skewed two-piece row, a far-right value, and a row below.
    lines = [
        _line("R$ 1.234,56", 700, 104, 850, 136),
        _line("Total", 100, 100, 180, 130),
        _line("Vencimento", 100, 160, 260, 190),
        _line("geral", 192, 102, 260, 132),
        _line("25/11/2026", 272, 162, 420, 192),
    ]
    rows = rows_in_reading_order(lines)
    assert [[line.text for line in row] for row in rows] == [
        ["Total geral", "R$ 1.234,56"],
        ["Vencimento 25/11/2026"],
    ]
    merged = rows[0][0]
    assert merged.polygon[0] == (100.0, 100.0)
    assert merged.polygon[2] == (260.0, 132.0)
    assert page_text(rows) == "Total geral R$ 1.234,56\nVencimento 25/11/2026"


def test_languages_are_normalized() -> None:
    assert normalize_languages(["pt-BR,EN", "pt", " en_US "]) == ("pt", "en")
    assert normalize_languages([]) == ()


def test_pdf_text_layer_lines_and_page_selection() -> None:
    pdf = kit.text_pdf([["Primeira"], ["Olá, São Paulo!", "Segunda linha"], ["Terceira"]])
    document = open_document(pdf, "", PageRequest(first_page=2, last_page=9, dpi=72), Limits())
    try:
        assert document.page_count == 3 and document.page_numbers == [2, 3]
        page = document.page(2)
        assert page.image is None and page.text_lines is not None
        assert [line.text for line in page.text_lines] == ["Olá, São Paulo!", "Segunda linha"]
        # At 72 dpi pixels are points: reportlab drew at x = 72.
        assert abs(page.text_lines[0].polygon[0][0] - 72) < 1
    finally:
        document.close()
    # Without the text layer the page is rendered at the asked resolution.
    document = open_document(pdf, "", PageRequest(dpi=100, use_text_layer=False), Limits())
    try:
        rendered = document.page(1)
        assert rendered.image is not None and rendered.image.shape == (1170, 827, 3)
    finally:
        document.close()


def test_limits_are_checked_before_decoding() -> None:
    big_page = kit.image_pdf([Image.new("RGB", (1000, 1000), "white")], resolution=10)  # 100 x 100 inches
    with pytest.raises(errors.InvalidArgument) as caught:
        open_document(big_page, "", PageRequest(dpi=200), Limits(max_pixels=40_000_000))
    assert caught.value.reason == "IMAGE_TOO_LARGE"
    assert "lower dpi" in caught.value.message
    frames = [Image.new("RGB", (50, 50), "white") for _ in range(4)]
    tiff = kit.encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    document = open_document(tiff, "image/tiff", PageRequest(), Limits())
    assert document.page_count == 4
    document.close()
    with pytest.raises(errors.InvalidArgument) as too_many:
        open_document(tiff, "image/tiff", PageRequest(), Limits(max_pages=3))
    assert too_many.value.reason == "TOO_MANY_PAGES"


def test_owner_password_only_pdf_is_read_and_user_password_is_refused() -> None:
    from reportlab.lib import pdfencrypt  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=pdfencrypt.StandardEncryption("", ownerPassword="dono", canPrint=0))
    pdf.drawString(72, 700, "Somente leitura aqui")
    pdf.showPage()
    pdf.save()
    document = open_document(buffer.getvalue(), "", PageRequest(), Limits())
    try:
        page = document.page(1)
        assert page.text_lines is not None and [line.text for line in page.text_lines] == [
            "Somente leitura aqui"
        ]
    finally:
        document.close()
    with pytest.raises(errors.InvalidArgument) as caught:
        open_document(kit.text_pdf([["segredo"]], encrypt="s3nha"), "", PageRequest(), Limits())
    assert caught.value.reason == "PDF_ENCRYPTED"
