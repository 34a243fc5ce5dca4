"""REST uploads (`google.api.HttpBody`) to a `RecognizeRequest`: multipart form, raw audio, or JSON.

Envoy's transcoder hands the body over untouched with its content type, so this is the one place that
understands what curl sends:
  curl -F file=@call.wav -F language=pt -F model=whisper/medium   (multipart/form-data)
  curl --data-binary @call.mp3 -H 'Content-Type: audio/mpeg'      (raw audio)
  curl -d '{"audio": "<base64>", "config": {"language": "pt"}}'   (JSON shaped like RecognizeRequest)
Anything malformed is INVALID_ARGUMENT with a reason that says which part is wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser

from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.common.v1 import audio_pb2
from aistack_kit.errors import InvalidArgument
from google.protobuf import json_format

# Content types taken as the audio file itself.
_RAW_PREFIXES = ("audio/", "video/")
_RAW_TYPES = ("application/octet-stream", "application/ogg", "")
_FILE_FIELDS = ("file", "audio")
_MAX_PARTS = 64


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _bad(message: str, reason: str, **metadata: str) -> InvalidArgument:
    return InvalidArgument(message, reason=reason, metadata=metadata)


def _header(value: str) -> Message:
    message = Message()
    message["content-type"] = value
    return message


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    """RFC 7578 form data: parts split on CRLF--boundary, each with its own headers."""
    boundary = _header(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise _bad("multipart/form-data needs a boundary parameter", "MULTIPART_NO_BOUNDARY")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    # The first delimiter may open the body without a preceding CRLF.
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 2:
        raise _bad("the multipart body holds no part with the declared boundary", "MULTIPART_MALFORMED")
    parts: list[Part] = []
    closed = False
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            closed = True
            break
        if len(parts) >= _MAX_PARTS:
            raise _bad(f"the multipart body has more than {_MAX_PARTS} parts", "MULTIPART_MALFORMED")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise _bad("a multipart part has no blank line after its headers", "MULTIPART_MALFORMED")
        headers = HeaderParser().parsestr(
            head.lstrip(b" \t").removeprefix(b"\r\n").decode("utf-8", "replace")
        )
        disposition = headers.get("content-disposition", "")
        if not disposition.lower().startswith("form-data"):
            raise _bad("every multipart part needs 'Content-Disposition: form-data'", "MULTIPART_MALFORMED")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str) or not name:
            raise _bad("a multipart part has no name", "MULTIPART_MALFORMED")
        parts.append(Part(name, headers.get_filename(), headers.get_content_type(), data))
    if not closed:
        raise _bad(
            "the multipart body is truncated (no closing boundary); was the upload cut?",
            "MULTIPART_TRUNCATED",
        )
    return parts


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise _bad(f"form field {name} must be true or false, got {value!r}", "BAD_FORM_FIELD", field=name)


def _int(name: str, value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise _bad(
            f"form field {name} must be an integer, got {value!r}", "BAD_FORM_FIELD", field=name
        ) from None


def _temperatures(name: str, value: str) -> list[float]:
    try:
        return [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise _bad(
            f"form field {name} must be numbers separated by commas, got {value!r}",
            "BAD_FORM_FIELD",
            field=name,
        ) from None


def _encoding(name: str, value: str) -> int:
    key = value.strip().upper()
    if not key.startswith("AUDIO_ENCODING_"):
        key = f"AUDIO_ENCODING_{key}"
    if key not in audio_pb2.AudioEncoding.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        choices = ", ".join(k.removeprefix("AUDIO_ENCODING_") for k in audio_pb2.AudioEncoding.keys()[1:])
        raise _bad(f"form field {name} must be one of {choices}, got {value!r}", "BAD_FORM_FIELD", field=name)
    return int(audio_pb2.AudioEncoding.Value(key))


def _set(config: pb.RecognitionConfig, field: str) -> Callable[[str, str], None]:
    def setter(name: str, value: str) -> None:
        setattr(config, field, value.strip())

    return setter


def _form_fields(config: pb.RecognitionConfig) -> dict[str, Callable[[str, str], None]]:
    def set_bool(field: str) -> Callable[[str, str], None]:
        return lambda name, value: setattr(config, field, _bool(name, value))

    def set_int(field: str) -> Callable[[str, str], None]:
        return lambda name, value: setattr(config, field, _int(name, value))

    def set_temperatures(name: str, value: str) -> None:
        config.temperatures[:] = _temperatures(name, value)

    def set_encoding(name: str, value: str) -> None:
        config.encoding = audio_pb2.AudioEncoding.ValueType(_encoding(name, value))

    fields: dict[str, Callable[[str, str], None]] = {
        "model": _set(config, "model"),
        "language": _set(config, "language"),
        "initial_prompt": _set(config, "initial_prompt"),
        "hotwords": _set(config, "hotwords"),
        "word_timestamps": set_bool("enable_word_time_offsets"),
        "enable_word_time_offsets": set_bool("enable_word_time_offsets"),
        "vad_filter": set_bool("enable_vad_filter"),
        "enable_vad_filter": set_bool("enable_vad_filter"),
        "allow_model_fallback": set_bool("allow_model_fallback"),
        "beam_size": set_int("beam_size"),
        "sample_rate_hertz": set_int("sample_rate_hertz"),
        "temperature": set_temperatures,
        "temperatures": set_temperatures,
        "encoding": set_encoding,
    }
    return fields


def request_from_form(parts: list[Part]) -> pb.RecognizeRequest:
    request = pb.RecognizeRequest()
    fields = _form_fields(request.config)
    seen: set[str] = set()
    audio: bytes | None = None
    for part in parts:
        if part.name in _FILE_FIELDS:
            if audio is not None:
                raise _bad("send exactly one audio file part", "MULTIPART_MULTIPLE_FILES", field=part.name)
            audio = part.data
            continue
        setter = fields.get(part.name)
        if setter is None:
            known = ", ".join(sorted((*_FILE_FIELDS, *fields)))
            raise _bad(
                f"unknown form field {part.name!r}; known fields: {known}",
                "UNKNOWN_FORM_FIELD",
                field=part.name,
            )
        if part.name in seen:
            raise _bad(f"form field {part.name} is given twice", "BAD_FORM_FIELD", field=part.name)
        seen.add(part.name)
        try:
            value = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad(
                f"form field {part.name} is not UTF-8 text", "BAD_FORM_FIELD", field=part.name
            ) from None
        setter(part.name, value)
    if audio is None:
        raise _bad("the form has no 'file' part with the audio", "MULTIPART_NO_FILE")
    request.audio = audio
    return request


def request_from_http_body(content_type: str, body: bytes) -> pb.RecognizeRequest:
    """The RecognizeRequest an upload describes."""
    media_type = _header(content_type).get_content_type() if content_type.strip() else ""
    if media_type == "multipart/form-data":
        return request_from_form(parse_multipart(content_type, body))
    if media_type == "application/json":
        request = pb.RecognizeRequest()
        try:
            json_format.Parse(body, request)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise _bad(f"the JSON body is not a valid RecognizeRequest: {exc}", "INVALID_JSON") from None
        return request
    if media_type.startswith(_RAW_PREFIXES) or media_type in _RAW_TYPES:
        return pb.RecognizeRequest(audio=body)
    raise _bad(
        f"unsupported content type {content_type!r}: send multipart/form-data, audio/*, or application/json",
        "UNSUPPORTED_CONTENT_TYPE",
        content_type=content_type,
    )
