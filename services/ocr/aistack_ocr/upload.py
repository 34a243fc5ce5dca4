"""REST uploads (`google.api.HttpBody` from Envoy's transcoder) to a document and its options.

Three shapes reach `POST /api/v1/ocr`:
  curl -F file=@document.pdf -F languages=pt,en -F first_page=2   (multipart/form-data, RFC 7578)
  curl --data-binary @scan.png -H 'Content-Type: image/png'       (the raw image or PDF)
  curl -d '{"content": "<base64>", "config": {"languages": ["pt"]}}' -H 'Content-Type: application/json'
The transcoder keeps the multipart boundary in `content_type` and the raw body in `data`.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from aistack.ocr.v1 import ocr_service_pb2 as pb
from aistack_kit import errors
from google.protobuf import json_format

from aistack_ocr.pipeline import OcrOptions

_MAX_PARTS = 32
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


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _bad(message: str, reason: str, **metadata: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(message, reason=reason, metadata=metadata)


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="file"; filename="a b.pdf"` -> ("form-data", {...}), quoting handled by email."""
    message = Message()
    message["content-type"] = value
    params = dict((k.lower(), str(v)) for k, v in message.get_params(failobj=[])[1:])
    return message.get_content_type(), params


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise _bad("multipart/form-data needs a boundary parameter", "MULTIPART_MALFORMED")
    delimiter = b"--" + boundary.encode("utf-8")
    # The opening delimiter starts the body or follows a preamble line; later ones follow a CRLF.
    if body.startswith(delimiter):
        rest = body[len(delimiter) :]
    else:
        start = body.find(b"\r\n" + delimiter)
        if start < 0:
            raise _bad("the multipart body holds no part with the declared boundary", "MULTIPART_MALFORMED")
        rest = body[start + 2 + len(delimiter) :]
    chunks = rest.split(b"\r\n" + delimiter)
    parts: list[Part] = []
    closed = False
    for chunk in chunks:
        if chunk.startswith(b"--"):
            closed = True
            break
        if len(parts) >= _MAX_PARTS:
            raise _bad(f"the multipart body has more than {_MAX_PARTS} parts", "MULTIPART_MALFORMED")
        chunk = chunk.split(b"\r\n", 1)[1] if b"\r\n" in chunk else b""
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise _bad("a multipart part has no blank line after its headers", "MULTIPART_MALFORMED")
        headers: dict[str, str] = {}
        for raw in head.split(b"\r\n"):
            key, colon, value = raw.decode("utf-8", "replace").partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        _, disposition_params = _header_params(headers.get("content-disposition", ""))
        name = disposition_params.get("name")
        if "content-disposition" not in headers or not name:
            raise _bad(
                "every multipart part needs Content-Disposition: form-data with a name", "MULTIPART_MALFORMED"
            )
        parts.append(
            Part(
                name=name,
                filename=disposition_params.get("filename"),
                content_type=headers.get("content-type", ""),
                data=data,
            )
        )
    if not closed:
        raise _bad(
            "the multipart body is truncated (no closing boundary); was the upload cut?",
            "MULTIPART_MALFORMED",
        )
    return parts


def _int_field(name: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise _bad(
            f"form field {name} must be an integer, got {value!r}", "INVALID_FORM_FIELD", field=name
        ) from None
    if number < 0:
        raise _bad(f"form field {name} must be >= 0, got {number}", "INVALID_FORM_FIELD", field=name)
    return number


def _bool_field(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise _bad(f"form field {name} must be true or false, got {value!r}", "INVALID_FORM_FIELD", field=name)


def from_form(parts: list[Part]) -> Upload:
    files = [p for p in parts if p.name == "file"]
    if len(files) != 1:
        raise _bad(
            "send exactly one file part: curl -F file=@document.pdf", "MISSING_FILE", parts=str(len(files))
        )
    values: dict[str, str] = {}
    for part in parts:
        if part.name not in FORM_FIELDS:
            raise _bad(
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
    return Upload(content=file.data, mime_type=values.get("mime_type", file.content_type), options=options)


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
    media_type, _ = _header_params(content_type) if content_type else ("", {})
    if media_type == "multipart/form-data":
        return from_form(parse_multipart(content_type, data))
    if media_type == "application/json":
        request = pb.RecognizeRequest()
        try:
            json_format.Parse(data.decode("utf-8"), request)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise _bad(f"the JSON body is not a RecognizeRequest: {exc}", "INVALID_JSON") from None
        return Upload(request.content, request.mime_type, options_from_config(request.config))
    if media_type == "application/x-www-form-urlencoded":
        raise _bad(
            "send the file as multipart/form-data (curl -F file=@document.pdf), not a urlencoded form",
            "UNSUPPORTED_MEDIA_TYPE",
        )
    # A raw image or PDF body; its bytes decide what it is.
    return Upload(content=data, mime_type=content_type, options=OcrOptions())
