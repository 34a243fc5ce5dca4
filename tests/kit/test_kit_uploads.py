"""The kit's upload parsing: bodies built the way real clients build them, and each refusal's reason."""

from __future__ import annotations

import httpx
import pytest
from aistack_kit.errors import InvalidArgument
from aistack_kit.uploads import (
    MultipartReasons,
    form_bool,
    form_int,
    media_type,
    parse_json,
    parse_multipart,
)
from google.rpc import error_details_pb2

# Bytes a naive parser would trip on: every byte value, CRLFs, a would-be delimiter and a blank line.
PAYLOAD = bytes(range(256)) * 4 + b"\r\n--not-the-boundary\r\n\r\n\r\n" + b"\x00\xff"


def client_body(files: dict[str, tuple[str, bytes, str]], fields: dict[str, str]) -> tuple[str, bytes]:
    """What httpx (the encoder curl -F matches) sends: its content type with the boundary, and the body."""
    request = httpx.Request("POST", "http://service/upload", files=files, data=fields)
    return request.headers["content-type"], request.read()


def refusal(content_type: str, body: bytes, **options: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        parse_multipart(content_type, body, **options)  # type: ignore[arg-type]
    return caught.value


def test_client_upload_gives_fields_and_file_bytes_exactly() -> None:
    content_type, body = client_body(
        {"file": ("chamada 1.wav", PAYLOAD, "audio/wav")}, {"language": "pt", "note": "Ação"}
    )
    parts = parse_multipart(content_type, body)
    by_name = {p.name: p for p in parts}
    assert sorted(by_name) == ["file", "language", "note"]
    assert by_name["file"].data == PAYLOAD
    assert (by_name["file"].filename, by_name["file"].content_type) == ("chamada 1.wav", "audio/wav")
    assert by_name["file"].headers["content-type"] == "audio/wav"
    assert by_name["language"].data == b"pt" and by_name["language"].filename is None
    assert by_name["note"].data.decode() == "Ação"
    # A value part declares no type: RFC 7578's default, while its headers show that none was sent.
    assert by_name["language"].content_type == "text/plain"
    assert "content-type" not in by_name["language"].headers


def test_preamble_padding_and_declared_parameters() -> None:
    body = (
        b"a preamble line\r\n"
        b"--XyZ  \r\n"  # transport padding after the delimiter
        b'Content-Disposition: form-data; name="file"; filename="nota.pdf"\r\n'
        b"Content-Type: Application/PDF; name=nota\r\n\r\n" + PAYLOAD + b"\r\n--XyZ--\r\nan epilogue"
    )
    (part,) = parse_multipart('multipart/form-data; boundary="XyZ"', body)
    assert part.data == PAYLOAD and part.filename == "nota.pdf"
    assert part.content_type == "application/pdf"
    assert part.headers["content-type"] == "Application/PDF; name=nota"


def test_part_count_is_limited() -> None:
    content_type, body = client_body(
        {"file": ("a.wav", PAYLOAD, "audio/wav")}, {f"f{i}": str(i) for i in range(4)}
    )
    assert len(parse_multipart(content_type, body, max_parts=5)) == 5
    error = refusal(content_type, body, max_parts=4)
    assert error.reason == "MULTIPART_MALFORMED" and "more than 4 parts" in error.message


OK_PART = b'--b\r\nContent-Disposition: form-data; name="language"\r\n\r\npt\r\n'
FORM_B = "multipart/form-data; boundary=b"
MALFORMED = [
    pytest.param("multipart/form-data", OK_PART + b"--b--\r\n", "MULTIPART_NO_BOUNDARY", id="no boundary"),
    pytest.param(
        "multipart/form-data; boundary=", OK_PART + b"--b--\r\n", "MULTIPART_NO_BOUNDARY", id="empty boundary"
    ),
    pytest.param(f"{FORM_B}{'b' * 200}", b"", "MULTIPART_NO_BOUNDARY", id="boundary too long"),
    pytest.param(
        "multipart/form-data; boundary=c",
        OK_PART + b"--b--\r\n",
        "MULTIPART_MALFORMED",
        id="boundary not in body",
    ),
    pytest.param(FORM_B, OK_PART, "MULTIPART_TRUNCATED", id="no closing delimiter"),
    pytest.param(
        FORM_B,
        OK_PART + b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\nhal",
        "MULTIPART_TRUNCATED",
        id="cut inside a part",
    ),
    pytest.param(
        FORM_B,
        b"--b\r\nContent-Disposition: form-data; name=x\r\n--b--",
        "MULTIPART_MALFORMED",
        id="no blank line after headers",
    ),
    pytest.param(
        FORM_B,
        b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--",
        "MULTIPART_MALFORMED",
        id="no disposition",
    ),
    pytest.param(
        FORM_B,
        b"--b\r\nContent-Disposition: attachment; name=x\r\n\r\nx\r\n--b--",
        "MULTIPART_MALFORMED",
        id="not form-data",
    ),
    pytest.param(
        FORM_B,
        b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--",
        "MULTIPART_MALFORMED",
        id="no name",
    ),
]


@pytest.mark.parametrize(("content_type", "body", "reason"), MALFORMED)
def test_malformed_bodies_are_refused_with_their_reason(content_type: str, body: bytes, reason: str) -> None:
    assert refusal(content_type, body).reason == reason


def test_a_service_names_the_faults_its_own_way() -> None:
    one_name = MultipartReasons(no_boundary="BAD_UPLOAD", malformed="BAD_UPLOAD", truncated="BAD_UPLOAD")
    assert refusal("multipart/form-data", OK_PART, reasons=one_name).reason == "BAD_UPLOAD"
    assert refusal("multipart/form-data; boundary=b", OK_PART, reasons=one_name).reason == "BAD_UPLOAD"
    assert (
        refusal("multipart/form-data; boundary=b", b"--b\r\n\r\n--b--", reasons=one_name).reason
        == "BAD_UPLOAD"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Multipart/Form-Data; boundary=x", "multipart/form-data"),
        ("application/json; charset=utf-8", "application/json"),
        ("audio/wav", "audio/wav"),
        ("", ""),
        ("   ", ""),
        ("nonsense", "text/plain"),
    ],
)
def test_media_type_of_a_content_type_header(header: str, expected: str) -> None:
    assert media_type(header) == expected


def test_json_body_fills_the_message_or_is_refused() -> None:
    info = parse_json(
        b'{"reason": "X", "domain": "d", "metadata": {"k": "v"}}', error_details_pb2.ErrorInfo()
    )
    assert (info.reason, info.domain, dict(info.metadata)) == ("X", "d", {"k": "v"})
    for body in (b"{not json", b'{"unknown_field": 1}', b"\xff\xfe"):
        with pytest.raises(InvalidArgument) as caught:
            parse_json(body, error_details_pb2.ErrorInfo())
        assert caught.value.reason == "INVALID_JSON" and "ErrorInfo" in caught.value.message
    with pytest.raises(InvalidArgument) as caught:
        parse_json(b"{not json", error_details_pb2.ErrorInfo(), reason="BAD_BODY")
    assert caught.value.reason == "BAD_BODY"


def test_form_values() -> None:
    assert [form_bool("f", v, reason="R") for v in ("1", " TRUE", "yes", "On")] == [True] * 4
    assert [form_bool("f", v, reason="R") for v in ("0", "false ", "NO", "off")] == [False] * 4
    assert form_int("dpi", " 150 ", reason="R") == 150
    assert form_int("offset", "-3", reason="R") == -3
    refused = []
    for name, value, minimum in (("dpi", "high", None), ("dpi", "-1", 0), ("offset", "1.5", None)):
        with pytest.raises(InvalidArgument) as caught:
            form_int(name, value, reason="BAD_FIELD", minimum=minimum)
        refused.append((caught.value.reason, caught.value.metadata["field"]))
    with pytest.raises(InvalidArgument) as caught:
        form_bool("vad", "maybe", reason="BAD_FIELD")
    refused.append((caught.value.reason, caught.value.metadata["field"]))
    assert refused == [
        ("BAD_FIELD", "dpi"),
        ("BAD_FIELD", "dpi"),
        ("BAD_FIELD", "offset"),
        ("BAD_FIELD", "vad"),
    ]
