"""Documents made by the tests, so every expected answer is known: PIL-rendered text (DejaVu Sans),
image-only PDFs (Pillow), text-layer and encrypted PDFs (reportlab)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from aistack_kit.testing import edit_distance
from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

PT_EN_LINES = (
    "Ação em São Paulo",
    "preço: R$ 1.234,56",
    "Vencimento 25/11/2026",
    "Invoice total due today",
)


def font(size: int = 36) -> ImageFont.FreeTypeFont:
    if not FONT.is_file():
        raise RuntimeError(f"{FONT} is missing: apt-get install fonts-dejavu-core (requirements/apt.txt)")
    return ImageFont.truetype(str(FONT), size)


def render_lines(lines: Sequence[str], *, width: int = 1000, size: int = 36, margin: int = 60) -> Image.Image:
    """Black text on white, one line per row, generous spacing (a clean scan)."""
    step = int(size * 2.0)
    height = max(2 * margin + step * len(lines), 200)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((margin, margin + index * step), line, fill="black", font=font(size))
    return image


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def image_pdf(pages: Sequence[Image.Image], resolution: float = 100.0) -> bytes:
    """A scanned-style PDF: each page one image, no text layer."""
    buffer = io.BytesIO()
    first, *rest = pages
    first.save(buffer, format="PDF", save_all=True, append_images=list(rest), resolution=resolution)
    return buffer.getvalue()


def text_pdf(pages: Sequence[Sequence[str]], *, encrypt: str | None = None) -> bytes:
    """A born-digital PDF: real text objects (Helvetica, WinAnsi covers Portuguese accents)."""
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, encrypt=encrypt)
    for lines in pages:
        pdf.setFont("Helvetica", 14)
        for index, line in enumerate(lines):
            pdf.drawString(72, 770 - index * 28, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def cer(hypothesis: str, reference: str) -> float:
    """Character error rate, whitespace runs collapsed on both sides."""
    hyp, ref = " ".join(hypothesis.split()), " ".join(reference.split())
    return edit_distance(ref, hyp) / max(len(ref), 1)


def multipart(fields: Sequence[tuple[str, str]], file: tuple[str, str, bytes], boundary: str) -> bytes:
    """A body exactly as curl -F builds it: fields, then the file part."""
    chunks: list[bytes] = []
    for name, value in fields:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    filename, content_type, data = file
    chunks.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n".encode()
        + data
        + b"\r\n"
    )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def paddlex_onnx_models(dest: Path) -> tuple[str, str]:
    """PaddleX model folders (PaddleOCR 3.x layout, onnxruntime engine) made from the PP-OCRv6 small ONNX
    files that the rapidocr wheel ships: `inference.onnx` plus the `inference.yml` PaddleX reads (the
    recognizer's character list comes from the ONNX metadata). Returns the det and rec model names."""
    import onnxruntime
    import yaml  # type: ignore[import-untyped,unused-ignore]
    from aistack_ocr.rapid_engine import SHIPPED_MODELS, shipped_model_dir

    det, rec = "PP-OCRv6_small_det", "PP-OCRv6_small_rec"
    for name, role in ((det, "det"), (rec, "rec")):
        (dest / name).mkdir(parents=True)
        (dest / name / "inference.onnx").symlink_to(shipped_model_dir() / SHIPPED_MODELS[role][0])
    det_config = {
        "Global": {"model_name": det},
        "PreProcess": {
            "transform_ops": [
                {"DetResizeForTest": {"limit_side_len": 736, "limit_type": "min"}},
                {"NormalizeImage": {"mean": [0.5] * 3, "std": [0.5] * 3, "scale": 1 / 255, "order": "hwc"}},
                {"ToCHWImage": None},
            ]
        },
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.6},
    }
    session = onnxruntime.InferenceSession(str(dest / rec / "inference.onnx"))
    characters = session.get_modelmeta().custom_metadata_map["character"].splitlines()
    rec_config = {
        "Global": {"model_name": rec},
        "PreProcess": {
            "transform_ops": [
                {"DecodeImage": {"channel_first": False, "img_mode": "BGR"}},
                {"RecResizeImg": {"image_shape": [3, 48, 320]}},
            ]
        },
        "PostProcess": {"name": "CTCLabelDecode", "character_dict": characters},
    }
    (dest / det / "inference.yml").write_text(yaml.safe_dump(det_config))
    (dest / rec / "inference.yml").write_text(yaml.safe_dump(rec_config, allow_unicode=True))
    return det, rec
