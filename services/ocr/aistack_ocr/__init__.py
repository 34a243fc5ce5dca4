"""OCR service: images and PDFs to text with lines, confidences and polygons (RapidOCR or PaddleOCR)."""
