"""REST uploads that reach a service as `google.api.HttpBody`: multipart form data, JSON, form values.

Envoy's transcoder passes an upload through untouched: `content_type` keeps the multipart boundary and
`data` the raw body. This module is the capability-independent half of reading one: splitting an RFC 7578
body into its parts, parsing a JSON body into a request message, and reading form values. Which fields a
form has and what they mean stays in each service's own `upload.py`.

Every refusal is `InvalidArgument` with an ErrorInfo reason. Services that name the same fault differently
keep their names: the multipart reasons are a parameter (`MultipartReasons`), and so is the reason of the
form-value readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from aistack_kit.errors import InvalidArgument

# RFC 2046 allows 70 characters; more than this is not a boundary any client builds.
MAX_BOUNDARY_LENGTH = 200
DEFAULT_MAX_PARTS = 64

_M = TypeVar("_M", bound=ProtoMessage)


@dataclass(frozen=True)
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    # The declared media type, lowercased and without parameters; `text/plain` when the part declares
    # none, which is RFC 7578's default for a form value.
    content_type: str
    data: bytes
    # The part's headers as sent (names lowercased, values stripped), for what `content_type` leaves out.
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class MultipartReasons:
    """ErrorInfo reasons for a body that is not valid multipart/form-data."""

    no_boundary: str = "MULTIPART_NO_BOUNDARY"
    malformed: str = "MULTIPART_MALFORMED"
    # No closing delimiter: usually an upload cut short on the way.
    truncated: str = "MULTIPART_TRUNCATED"


def invalid(message: str, reason: str, **metadata: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason, metadata=metadata)


def _content_type_header(value: str) -> Message:
    message = Message()
    message["content-type"] = value
    return message


def media_type(content_type: str) -> str:
    """`Multipart/Form-Data; boundary=x` -> `multipart/form-data`; empty for an empty header.

    A value that is not `type/subtype` reads as `text/plain`, as email does.
    """
    if not content_type.strip():
        return ""
    return _content_type_header(content_type).get_content_type()


def parse_multipart(
    content_type: str,
    body: bytes,
    *,
    max_parts: int = DEFAULT_MAX_PARTS,
    reasons: MultipartReasons = MultipartReasons(),
) -> list[Part]:
    """RFC 7578 form data: parts split on CRLF--boundary, each with its own headers."""
    boundary = _content_type_header(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > MAX_BOUNDARY_LENGTH:
        raise invalid("multipart/form-data needs a boundary parameter", reasons.no_boundary)
    # The header reached us as UTF-8 text, so its bytes in the body are the UTF-8 ones.
    delimiter = b"\r\n--" + boundary.encode("utf-8")
    # The first delimiter may open the body without a preceding CRLF; anything before it is a preamble.
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2:
        raise invalid("the multipart body holds no part with the declared boundary", reasons.malformed)
    parts: list[Part] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        if len(parts) >= max_parts:
            raise invalid(f"the multipart body has more than {max_parts} parts", reasons.malformed)
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise invalid("a multipart part has no blank line after its headers", reasons.malformed)
        # Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        headers = HeaderParser().parsestr(
            head.lstrip(b" \t").removeprefix(b"\r\n").decode("utf-8", "replace")
        )
        disposition = headers.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            raise invalid("every multipart part needs 'Content-Disposition: form-data'", reasons.malformed)
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise invalid("a multipart part has no name", reasons.malformed)
        parts.append(
            Part(
                name=name,
                filename=headers.get_filename(),
                content_type=headers.get_content_type(),
                data=data,
                headers={key.lower(): str(value).strip() for key, value in headers.items()},
            )
        )
    if not closed:
        raise invalid(
            "the multipart body is truncated (no closing boundary); was the upload cut?", reasons.truncated
        )
    return parts


def parse_json(body: bytes, message: _M, *, reason: str = "INVALID_JSON") -> _M:
    """`body` parsed into `message` (proto3 JSON mapping; unknown fields refused); returns `message`."""
    try:
        json_format.Parse(body, message)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise invalid(f"the JSON body is not a valid {message.DESCRIPTOR.name}: {exc}", reason) from None
    return message


def form_bool(name: str, value: str, *, reason: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise invalid(f"form field {name} must be true or false, got {value!r}", reason, field=name)


def form_int(name: str, value: str, *, reason: str, minimum: int | None = None) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise invalid(f"form field {name} must be an integer, got {value!r}", reason, field=name) from None
    if minimum is not None and number < minimum:
        raise invalid(f"form field {name} must be >= {minimum}, got {number}", reason, field=name)
    return number
