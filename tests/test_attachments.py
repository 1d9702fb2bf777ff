"""Tests for utils.intake.attachments: decoding, names, types, previews, caps, and that links are never fetched."""

from __future__ import annotations

import base64
import io
import json
import posixpath
import socket
from pathlib import PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import utils.intake.attachments as attachments_module
from utils.errors import InvalidAttachment, RequestTooLarge
from utils.intake.attachments import PREVIEW_LIMIT, decode_attachments
from utils.records import AttachmentRef, LinkedAttachment


def b64(data: bytes) -> str:
    """Standard base64 text of ``data``."""
    return base64.b64encode(data).decode()


def data_uri(data: bytes, media_type: str = "text/plain") -> str:
    """A base64 data: URI for ``data``."""
    return f"data:{media_type};base64,{b64(data)}"


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    """A real PNG built with Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def decode_one(name: str, url: str, **limits: int):
    """Decode a single attachment and return the Attachments."""
    return decode_attachments([AttachmentRef(name=name, url=url)], **limits)


def only_file(name: str, url: str):
    """Decode a single attachment and return its one Attachment."""
    result = decode_one(name, url)
    assert len(result.files) == 1 and result.links == ()
    return result.files[0]


# --- decoding -------------------------------------------------------------


def test_base64_data_uri():
    file = only_file("hello.txt", data_uri(b"Hello, World"))
    assert file.data == b"Hello, World"
    assert file.name == "hello.txt" and file.path == "hello.txt"
    assert file.media_type == "text/plain"


def test_percent_encoded_data_uri():
    file = only_file("hello.txt", "data:text/plain,Hello%2C%20World")
    assert file.data == b"Hello, World"
    assert file.media_type == "text/plain"


def test_data_uri_with_params_and_uppercase_scheme():
    file = only_file("notes.md", "DATA:text/markdown;charset=utf-8;BASE64," + b64("# Titre é".encode()))
    assert file.data == "# Titre é".encode()
    assert file.media_type == "text/markdown"


@pytest.mark.parametrize(
    "payload",
    [
        b64(b"any carnal pleasure."),  # with padding
        b64(b"any carnal pleasure.").rstrip("="),  # without padding
        "\n".join(b64(b"any carnal pleasure.")[i : i + 8] for i in range(0, 28, 8)) + "\n",  # wrapped lines
        "  " + b64(b"any carnal pleasure.") + "\r\n",
    ],
)
def test_bare_base64(payload):
    assert only_file("p.txt", payload).data == b"any carnal pleasure."


def test_urlsafe_base64():
    data = bytes([0xFB, 0xFF, 0xBF, 0xFE])
    payload = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert "-" in payload or "_" in payload
    assert only_file("bytes.bin", payload).data == data


def test_percent_encoded_base64_data_uri():
    data = bytes([0xFB, 0xFF, 0xBF, 0xFE, 0x01])
    encoded = b64(data).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert only_file("bytes.bin", "data:application/octet-stream;base64," + encoded).data == data


def test_http_link_is_kept_as_link_and_not_fetched(monkeypatch):
    class NoSockets(socket.socket):
        def __init__(self, *args, **kwargs):
            raise AssertionError("decode_attachments opened a socket")

    monkeypatch.setattr(socket, "socket", NoSockets)
    refs = [
        AttachmentRef(name="x.csv", url="http://127.0.0.1:9/x.csv"),
        AttachmentRef(name="y.png", url="https://127.0.0.1:9/y.png?size=2"),
    ]
    result = decode_attachments(refs)
    assert result.files == ()
    assert result.links == (
        LinkedAttachment(name="x.csv", url="http://127.0.0.1:9/x.csv"),
        LinkedAttachment(name="y.png", url="https://127.0.0.1:9/y.png?size=2"),
    )


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a.csv",
        "javascript:alert(1)",
        "gopher://127.0.0.1:70/_x",
        "JaVaScRiPt:alert(1)",
        "http:/missing-slash",
    ],
)
def test_other_schemes_are_refused(url):
    with pytest.raises(InvalidAttachment) as info:
        decode_one("a.csv", url)
    assert info.value.status == 400
    assert "'a.csv'" in info.value.message and "scheme" in info.value.message
    assert info.value.field == "attachments[0].url"


@pytest.mark.parametrize("url", ["http://", "https:///path", "http://exa mple.com/x", "http://host:99999999/x"])
def test_malformed_links_are_refused(url):
    with pytest.raises(InvalidAttachment) as info:
        decode_one("l", url)
    assert info.value.field == "attachments[0].url"


@pytest.mark.parametrize(
    "url",
    [
        "not base64!!",
        "abc$def",
        "a",  # impossible length
        "YWJj=ZGVm",  # padding in the middle
        "YQ=====",  # too much padding
        "data:text/plain;base64,@@@@",
        "data:text/plain;base64",  # no comma
        "aGVsbG8gd29ybGQ\u00e9",  # non-ASCII character
    ],
)
def test_invalid_payload_names_the_attachment(url):
    refs = [AttachmentRef(name="ok.txt", url=b64(b"fine")), AttachmentRef(name="bad.bin", url=url)]
    with pytest.raises(InvalidAttachment) as info:
        decode_attachments(refs)
    assert info.value.status == 400
    assert info.value.stage == "attachments"
    assert "'bad.bin'" in info.value.message and "attachments[1]" in info.value.message
    assert info.value.field == "attachments[1].url"


def test_error_message_does_not_echo_the_payload():
    with pytest.raises(InvalidAttachment) as info:
        decode_one("k.txt", "c2VjcmV0LXRva2Vu!")
    assert "c2VjcmV0" not in info.value.message


@pytest.mark.parametrize("url", ["data:text/plain,", "data:text/plain;base64,", "  ", "\n\n"])
def test_empty_payload_is_refused(url):
    with pytest.raises(InvalidAttachment) as info:
        decode_one("empty.txt", url)
    assert "empty" in info.value.message
    assert info.value.field == "attachments[0].url"


# --- names ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "/etc/passwd",
        "C:\\x",
        ".git/config",
        ".github/workflows/a.yml",
        "a/../../b",
        "x\x00y",
        "",
        ".",
        "..",
        ".gitattributes",
        "docs/.gitignore",
        "\\\\server\\share\\x",
    ],
)
def test_hostile_names_are_refused(name):
    refs = [AttachmentRef(name="fine.txt", url=b64(b"ok")), AttachmentRef(name=name, url=b64(b"payload"))]
    with pytest.raises(InvalidAttachment) as info:
        decode_attachments(refs)
    assert info.value.status == 400
    assert repr(name) in info.value.message or "attachments[1]" in info.value.message
    assert "attachments[1]" in info.value.message
    assert info.value.field == "attachments[1].name"


def test_hostile_link_names_are_refused_too():
    with pytest.raises(InvalidAttachment) as info:
        decode_one("../x.csv", "https://127.0.0.1:9/x.csv")
    assert info.value.field == "attachments[0].name"


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("my file.csv", "my-file.csv"),
        ("données.csv", "donnees.csv"),
        ("data/sales.csv", "data/sales.csv"),
        ("./data//sales.csv", "data/sales.csv"),
        ("data\\sales.csv", "data/sales.csv"),
    ],
)
def test_unusual_names_are_normalized(name, path):
    file = only_file(name, b64(b"a,b\n1,2\n"))
    assert file.path == path
    assert file.name == name


def test_long_name_is_truncated_keeping_its_extension():
    name = "a" * 296 + ".csv"
    file = only_file(name, b64(b"a,b\n1,2\n"))
    assert file.path.endswith(".csv")
    assert len(file.path) <= 100
    assert file.name == name


def test_duplicate_names_are_deduplicated_case_insensitively():
    refs = [AttachmentRef(name=n, url=b64(b"x")) for n in ("a.csv", "A.csv", "a.csv", "my file.csv", "my-file.csv")]
    paths = [f.path for f in decode_attachments(refs).files]
    assert paths == ["a.csv", "A-2.csv", "a-3.csv", "my-file.csv", "my-file-2.csv"]
    assert len({p.lower() for p in paths}) == len(paths)


def test_file_and_folder_of_the_same_name_do_not_collide():
    names = ("data/sales.csv", "data", "report", "report/q1.csv")
    refs = [AttachmentRef(name=n, url=b64(b"x")) for n in names]
    paths = [f.path for f in decode_attachments(refs).files]
    assert paths == ["data/sales.csv", "data-2", "report", "report-2/q1.csv"]


@given(st.one_of(st.text(), st.text(alphabet="./\\:aG it-\x00é")))
def test_any_name_is_refused_or_safe(name):
    try:
        result = decode_one(name, "data:text/plain;base64,aGk=")
    except InvalidAttachment as exc:
        assert exc.field == "attachments[0].name"
        return
    path = result.files[0].path
    segments = path.split("/")
    assert ".." not in segments and "." not in segments and "" not in segments
    assert not PurePosixPath(path).is_absolute() and not PureWindowsPath(path).anchor
    assert not path.lower().startswith(".git")
    assert not any(s.lower() == ".git" for s in segments)


# --- types ----------------------------------------------------------------


def test_bytes_win_over_the_declared_type():
    file = only_file("logo.txt", data_uri(png_bytes(), "text/plain"))
    assert file.media_type == "image/png"


@pytest.mark.parametrize(
    ("name", "url", "media_type"),
    [
        ("page", "data:text/html,%3Cp%3Ehi%3C%2Fp%3E", "text/html"),  # declared, bytes unknown
        ("sales.csv", b64(b"a,b\n1,2\n"), "text/csv"),  # extension
        ("data.json", data_uri(b'{"a": 1}', "application/octet-stream"), "application/json"),
        ("README.md", b64(b"# Hi\n"), "text/markdown"),
        ("noext", b64(b"just words\n"), "text/plain"),
        ("noext", b64(bytes(range(256))), "application/octet-stream"),
        ("photo", data_uri(png_bytes(), "application/octet-stream"), "image/png"),
    ],
)
def test_type_detection_order(name, url, media_type):
    assert only_file(name, url).media_type == media_type


# --- previews -------------------------------------------------------------


def test_csv_preview_header_row_count_and_first_rows():
    rows = [f"2024-01-{d:02d},North,{d * 10}" for d in range(1, 13)]
    data = ("date,region,amount\n" + "\n".join(rows) + "\n").encode()
    file = only_file("data/sales.csv", data_uri(data, "text/csv"))
    lines = file.preview.splitlines()
    assert lines[0] == f"data/sales.csv (text/csv, {len(data):,} bytes)"
    assert "12 data rows" in file.preview and "3 columns" in file.preview
    assert "header: date,region,amount" in lines
    assert rows[0] in lines and rows[4] in lines
    assert rows[5] not in lines


def test_csv_preview_sniffs_the_delimiter():
    data = b"name;price;qty\napple;1,50;3\npear;2,00;4\n"
    file = only_file("fruit.csv", b64(data))
    assert "delimiter ';'" in file.preview
    assert "3 columns" in file.preview and "2 data rows" in file.preview


def test_json_preview_shows_keys_and_types():
    doc = {"users": [{"id": 1, "name": "Ada", "tags": ["x"]}], "total": 1, "ok": True}
    data = json.dumps(doc).encode()
    file = only_file("users.json", data_uri(data, "application/json"))
    assert file.preview.startswith(f"users.json (application/json, {len(data):,} bytes)\n")
    assert "object with 3 keys" in file.preview
    assert '"users": array(1) of {"id": number, "name": string' in file.preview
    assert '"ok": boolean' in file.preview


def test_json_preview_of_a_top_level_array():
    data = json.dumps([{"x": i} for i in range(50)]).encode()
    file = only_file("points.json", b64(data))
    assert "array of 50 items" in file.preview
    assert 'array(50) of {"x": number}' in file.preview


def test_invalid_json_falls_back_to_text():
    file = only_file("broken.json", b64(b'{"a": '))
    assert "not valid JSON" in file.preview


def test_image_preview_shows_dimensions():
    data = png_bytes(40, 30)
    file = only_file("img/logo.png", data_uri(data, "image/png"))
    assert file.preview.startswith(f"img/logo.png (image/png, {len(data):,} bytes)\n")
    assert "PNG" in file.preview and "40x30" in file.preview


def test_unreadable_image_preview_does_not_raise():
    file = only_file("fake.png", data_uri(b"not really a png", "image/png"))
    assert file.media_type == "image/png"
    assert "could not read" in file.preview


def test_text_preview_shows_first_lines_only():
    data = "".join(f"line {i}\n" for i in range(1, 101)).encode()
    file = only_file("notes.txt", b64(data))
    assert "line 20" in file.preview and "line 21" not in file.preview
    assert "100 lines" in file.preview


def test_binary_preview_is_type_and_size_only():
    data = bytes(range(256)) * 4
    file = only_file("blob.bin", b64(data))
    assert file.preview == f"blob.bin (application/octet-stream, {len(data):,} bytes)"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("long.txt", ("x" * 5000 + "\n") * 50),
        ("wide.csv", ",".join(f"column_{i}" for i in range(500)) + "\n" + ",".join("9" * 500) + "\n"),
        ("big.json", json.dumps({f"key_{i}_" + "k" * 50: {"nested": list(range(100))} for i in range(200)})),
    ],
)
def test_preview_is_bounded(name, data):
    file = only_file(name, b64(data.encode()))
    assert len(file.preview) <= PREVIEW_LIMIT
    assert file.preview.startswith(f"{name} (")


# --- caps -----------------------------------------------------------------


def test_too_many_attachments():
    refs = [AttachmentRef(name=f"f{i}.txt", url=b64(b"x")) for i in range(3)]
    with pytest.raises(InvalidAttachment) as info:
        decode_attachments(refs, max_count=2)
    assert info.value.status == 400
    assert info.value.field == "attachments"
    assert len(decode_attachments(refs, max_count=3).files) == 3


def test_total_size_over_the_limit_is_413_naming_the_attachment():
    refs = [
        AttachmentRef(name="first.bin", url=b64(b"a" * 600)),
        AttachmentRef(name="second.bin", url=b64(b"b" * 600)),
    ]
    with pytest.raises(RequestTooLarge) as info:
        decode_attachments(refs, max_total_bytes=1000)
    assert info.value.status == 413
    assert info.value.stage == "attachments"
    assert "'second.bin'" in info.value.message and "attachments[1]" in info.value.message
    assert len(decode_attachments(refs, max_total_bytes=1200).files) == 2


def test_links_do_not_count_towards_the_size_limit():
    refs = [AttachmentRef(name="x", url="https://127.0.0.1:9/" + "a" * 1000),
            AttachmentRef(name="y", url=b64(b"y" * 10))]
    result = decode_attachments(refs, max_total_bytes=10)
    assert len(result.links) == 1 and len(result.files) == 1


@pytest.mark.parametrize(
    ("url", "decoder"),
    [
        (b64(b"z" * 3000), "b64decode"),
        ("data:text/plain;base64," + b64(b"z" * 3000), "b64decode"),
        ("data:text/plain," + "z" * 3000, "unquote_to_bytes"),
    ],
)
def test_huge_payload_is_refused_before_decoding(monkeypatch, url, decoder):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded a payload that was already known to be too large")

    target = attachments_module.base64 if decoder == "b64decode" else attachments_module
    monkeypatch.setattr(target, decoder, refuse)
    with pytest.raises(RequestTooLarge):
        decode_one("huge.txt", url, max_total_bytes=1000)


def test_exact_limit_is_allowed():
    data = b"q" * 1000
    assert only_file("q.bin", b64(data)).data == data
    assert decode_one("q.bin", b64(data), max_total_bytes=1000).files[0].data == data
    with pytest.raises(RequestTooLarge):
        decode_one("q.bin", b64(data), max_total_bytes=999)


def test_paths_are_posix_relative():
    file = only_file("a/b/c.txt", b64(b"x"))
    assert posixpath.normpath(file.path) == file.path == "a/b/c.txt"
