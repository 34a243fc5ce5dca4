"""`python -m aistack_ocr`: the OCR service."""

from aistack_kit.server import run

from aistack_ocr.app import DEFAULT_PORT, OcrCapability

if __name__ == "__main__":
    run("ocr", DEFAULT_PORT, OcrCapability.from_env)
