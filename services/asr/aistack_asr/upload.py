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

from aistack.asr.v1 import asr_service_pb2 as pb
from aistack.common.v1 import audio_pb2
from aistack_kit import uploads
from aistack_kit.uploads import Part, form_bool, form_int, invalid

# Content types taken as the audio file itself.
_RAW_PREFIXES = ("audio/", "video/")
_RAW_TYPES = ("application/octet-stream", "application/ogg", "")
_FILE_FIELDS = ("file", "audio")
_MAX_PARTS = 64
_FIELD_REASON = "BAD_FORM_FIELD"


def parse_multipart(content_type: str, body: bytes) -> list[Part]:
    return uploads.parse_multipart(content_type, body, max_parts=_MAX_PARTS)


def _bool(name: str, value: str) -> bool:
    return form_bool(name, value, reason=_FIELD_REASON)


def _int(name: str, value: str) -> int:
    return form_int(name, value, reason=_FIELD_REASON)


def _temperatures(name: str, value: str) -> list[float]:
    try:
        return [float(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise invalid(
            f"form field {name} must be numbers separated by commas, got {value!r}",
            _FIELD_REASON,
            field=name,
        ) from None


def _encoding(name: str, value: str) -> int:
    key = value.strip().upper()
    if not key.startswith("AUDIO_ENCODING_"):
        key = f"AUDIO_ENCODING_{key}"
    if key not in audio_pb2.AudioEncoding.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        choices = ", ".join(k.removeprefix("AUDIO_ENCODING_") for k in audio_pb2.AudioEncoding.keys()[1:])
        raise invalid(f"form field {name} must be one of {choices}, got {value!r}", _FIELD_REASON, field=name)
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
                raise invalid("send exactly one audio file part", "MULTIPART_MULTIPLE_FILES", field=part.name)
            audio = part.data
            continue
        setter = fields.get(part.name)
        if setter is None:
            known = ", ".join(sorted((*_FILE_FIELDS, *fields)))
            raise invalid(
                f"unknown form field {part.name!r}; known fields: {known}",
                "UNKNOWN_FORM_FIELD",
                field=part.name,
            )
        if part.name in seen:
            raise invalid(f"form field {part.name} is given twice", _FIELD_REASON, field=part.name)
        seen.add(part.name)
        try:
            value = part.data.decode("utf-8")
        except UnicodeDecodeError:
            raise invalid(
                f"form field {part.name} is not UTF-8 text", _FIELD_REASON, field=part.name
            ) from None
        setter(part.name, value)
    if audio is None:
        raise invalid("the form has no 'file' part with the audio", "MULTIPART_NO_FILE")
    request.audio = audio
    return request


def request_from_http_body(content_type: str, body: bytes) -> pb.RecognizeRequest:
    """The RecognizeRequest an upload describes."""
    media_type = uploads.media_type(content_type)
    if media_type == "multipart/form-data":
        return request_from_form(parse_multipart(content_type, body))
    if media_type == "application/json":
        return uploads.parse_json(body, pb.RecognizeRequest())
    if media_type.startswith(_RAW_PREFIXES) or media_type in _RAW_TYPES:
        return pb.RecognizeRequest(audio=body)
    raise invalid(
        f"unsupported content type {content_type!r}: send multipart/form-data, audio/*, or application/json",
        "UNSUPPORTED_CONTENT_TYPE",
        content_type=content_type,
    )
