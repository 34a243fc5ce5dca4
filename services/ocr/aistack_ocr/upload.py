"""REST uploads (`google.api.HttpBody` from Envoy's transcoder) to a document and its options.

Three shapes reach `POST /api/v1/ocr`:
  curl -F file=@document.pdf -F languages=pt,en -F first_page=2   (multipart/form-data, RFC 7578)
  curl --data-binary @scan.png -H 'Content-Type: image/png'       (the raw image or PDF)
  curl -d '{"content": "<base64>", "config": {"languages": ["pt"]}}' -H 'Content-Type: application/json'
The transcoder keeps the multipart boundary in `content_type` and the raw body in `data`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack_kit import uploads
from aistack_kit.uploads import MultipartReasons, Part, form_bool, form_int, invalid

from aistack_ocr.pipeline import OcrOptions

_MAX_PARTS = 32
# OCR names every fault of the multipart framing itself one way.
_MULTIPART_REASONS = MultipartReasons(
    no_boundary="MULTIPART_MALFORMED", malformed="MULTIPART_MALFORMED", truncated="MULTIPART_MALFORMED"
)
_FIELD_REASON = "INVALID_FORM_FIELD"
FORM_FIELDS = (
    "file",
    "languages",
    "first_page",
    "last_page",
    "dpi",
    "detect_rotation",
    "use_text_layer",
    "mime_type",
)


@dataclass(frozen=True)
class Upload:
    content: bytes
    mime_type: str
    options: OcrOptions


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    return uploads.parse_multipart(content_type, body, max_parts=_MAX_PARTS, reasons=_MULTIPART_REASONS)


def _int_field(name: str, value: str) -> int:
    return form_int(name, value, reason=_FIELD_REASON, minimum=0)


def _bool_field(name: str, value: str) -> bool:
    return form_bool(name, value, reason=_FIELD_REASON)


def from_form(parts: list[Part]) -> Upload:
    files = [p for p in parts if p.name == "file"]
    if len(files) != 1:
        raise invalid(
            "send exactly one file part: curl -F file=@document.pdf", "MISSING_FILE", parts=str(len(files))
        )
    values: dict[str, str] = {}
    for part in parts:
        if part.name not in FORM_FIELDS:
            raise invalid(
                f"unknown form field {part.name!r}; known: {', '.join(FORM_FIELDS)}",
                "UNKNOWN_FORM_FIELD",
                field=part.name,
            )
        if part.name != "file":
            values[part.name] = part.data.decode("utf-8", "replace")
    options = OcrOptions(
        languages=tuple(values["languages"].split(",")) if "languages" in values else (),
        first_page=_int_field("first_page", values["first_page"]) if "first_page" in values else 0,
        last_page=_int_field("last_page", values["last_page"]) if "last_page" in values else 0,
        dpi=_int_field("dpi", values["dpi"]) if "dpi" in values else 0,
        detect_rotation=_bool_field("detect_rotation", values["detect_rotation"])
        if "detect_rotation" in values
        else False,
        use_text_layer=_bool_field("use_text_layer", values["use_text_layer"])
        if "use_text_layer" in values
        else True,
    )
    file = files[0]
    # As declared, "" for none: the bytes decide what a document is; this only names what it was meant to be.
    declared = file.headers.get("content-type", "")
    return Upload(content=file.data, mime_type=values.get("mime_type", declared), options=options)


def options_from_config(config: pb.OcrConfig) -> OcrOptions:
    return OcrOptions(
        languages=tuple(config.languages),
        first_page=config.page_range.first_page,
        last_page=config.page_range.last_page,
        dpi=config.dpi,
        detect_rotation=config.detect_rotation,
        use_text_layer=config.use_text_layer if config.HasField("use_text_layer") else True,
    )


def from_http_body(content_type: str, data: bytes) -> Upload:
    media_type = uploads.media_type(content_type)
    if media_type == "multipart/form-data":
        return from_form(parse_multipart(content_type, data))
    if media_type == "application/json":
        request = uploads.parse_json(data, pb.RecognizeRequest())
        return Upload(request.content, request.mime_type, options_from_config(request.config))
    if media_type == "application/x-www-form-urlencoded":
        raise invalid(
            "send the file as multipart/form-data (curl -F file=@document.pdf), not a urlencoded form",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    # A raw image or PDF body; its bytes decide what it is.
    return Upload(content=data, mime_type=content_type, options=OcrOptions())
