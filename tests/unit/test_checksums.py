"""SHA256SUMS format: GNU's lines and escapes, parsing, streaming hashes."""

from __future__ import annotations

import hashlib

import pytest

from klink_sync import checksums
from klink_sync.checksums import (
    ChecksumFileError,
    escape_name,
    format_line,
    format_sums,
    parse_sums,
    unescape_name,
)

HEX = hashlib.sha256(b"x").hexdigest()
OTHER = hashlib.sha256(b"y").hexdigest()


def test_plain_name_is_written_as_sha256sum_does():
    assert format_line(b"folder/a b.txt", HEX) == HEX.encode() + b"  folder/a b.txt\n"


@pytest.mark.parametrize(
    ("name", "line_name"),
    [
        (b"a\nb", b"a\\nb"),
        (b"a\\b", b"a\\\\b"),
        (b"a\rb", b"a\\rb"),
        (b"\\n literally", b"\\\\n literally"),
        (b"both\\\n", b"both\\\\\\n"),
    ],
)
def test_newline_backslash_and_cr_are_escaped_and_flagged(name, line_name):
    assert format_line(name, HEX) == b"\\" + HEX.encode() + b"  " + line_name + b"\n"
    assert escape_name(name) == (line_name, True)
    assert unescape_name(line_name) == name


def test_escaping_leaves_other_bytes_alone():
    name = "folder/dökument\t€ *x".encode() + b"\xff\xfe"
    assert escape_name(name) == (name, False)


@pytest.mark.parametrize(
    "name", [b"plain", b"a\nb", b"a\\b", b"\\", b"\n", b"tab\there", b"\xff\\\n\r", b"*star"]
)
def test_format_then_parse_round_trips(name):
    assert parse_sums(format_line(name, HEX)) == {name: HEX}


def test_file_is_sorted_and_parses_back():
    entries = {b"volumes/b": OTHER, b"folder/z": HEX, b"folder/a\nb": OTHER}
    data = format_sums(entries)
    names = [line.split(b"  ", 1)[1] for line in data.splitlines()]
    assert names == [b"folder/a\\nb", b"folder/z", b"volumes/b"]
    assert parse_sums(data) == entries


def test_parse_accepts_binary_marker_uppercase_and_blank_lines():
    data = b"\n" + HEX.upper().encode() + b" *folder/bin\n\n"
    assert parse_sums(data) == {b"folder/bin": HEX}


def test_parse_keeps_spaces_inside_and_at_the_end_of_names():
    assert parse_sums(HEX.encode() + b"  a  b \n") == {b"a  b ": HEX}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"nothex  x\n", "line 1: not '<sha256>  <name>'"),
        (HEX.encode() + b"  ok\n" + HEX[:63].encode() + b"  short\n", "line 2"),
        (HEX.encode() + b"x\n", "line 1"),  # no separator
        (b"\\" + HEX.encode() + b"  bad\\escape\n", "line 1: bad escape \\e"),
        (b"\\" + HEX.encode() + b"  ends\\\n", "line 1: bad escape"),
    ],
)
def test_malformed_lines_are_errors_naming_the_line(data, why):
    with pytest.raises(ChecksumFileError, match=why.replace("\\", "\\\\")):
        parse_sums(data, "SHA256SUMS")


def test_sha256_file_streams_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(checksums, "CHUNK", 1000)  # not a multiple of the file size
    data = bytes(range(256)) * 40 + b"tail"
    path = tmp_path / "f"
    path.write_bytes(data)
    assert checksums.sha256_file(path) == (hashlib.sha256(data).hexdigest(), len(data))
    (tmp_path / "empty").write_bytes(b"")
    assert checksums.sha256_file(tmp_path / "empty") == (hashlib.sha256().hexdigest(), 0)


def test_show_name_keeps_one_line():
    assert checksums.show_name(b"folder/a\nb") == "folder/a\\nb"
    assert checksums.names([b"b", b"a\\"]) == ["a\\\\", "b"]
