"""rsync.py: command lines as data, and the --stats parser on real rsync output."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from klink_sync.rsync import (
    BASE,
    HOT_WARNING_CODES,
    RsyncStats,
    copy_argv,
    dir_arg,
    escape_pattern,
    parse_stats,
    refresh_argv,
)

RSYNC = shutil.which("rsync")
needs_rsync = pytest.mark.skipif(RSYNC is None, reason="rsync is not installed")

FAITHFUL = ("rsync", "-aHAX", "--numeric-ids", "--delete", "--sparse", "--stats", "--no-h")


# --- copy_argv ---------------------------------------------------------------------------


def test_base_is_a_faithful_copy_and_never_inplace() -> None:
    assert BASE == FAITHFUL
    assert not any(a.startswith("--inplace") for a in BASE)


def test_copy_argv_plain_directory() -> None:
    assert copy_argv("/srv/k-link", "/backup/.staging/folder") == (
        *FAITHFUL,
        "/srv/k-link/",
        "/backup/.staging/folder/",
    )


def test_copy_argv_keeps_an_existing_trailing_slash_single() -> None:
    argv = copy_argv("/srv/k-link/", "/backup/.staging/folder/")
    assert argv[-2:] == ("/srv/k-link/", "/backup/.staging/folder/")


def test_copy_argv_link_dest_only_when_given() -> None:
    without = copy_argv("/a", "/b")
    assert not any(a.startswith("--link-dest") for a in without)
    assert copy_argv("/a", "/b", link_dest=None) == without
    assert copy_argv("/a", "/b", link_dest="") == without

    with_link = copy_argv("/a", "/b", link_dest="/backup/snapshots/x/folder")
    assert with_link == (
        *FAITHFUL,
        "--link-dest=/backup/snapshots/x/folder",
        "/a/",
        "/b/",
    )


def test_copy_argv_never_inplace_whatever_the_options() -> None:
    argv = copy_argv("/a", "/b", link_dest="/l", excludes=("x",), source_is_file=False)
    assert "--inplace" not in argv
    assert not any("inplace" in a for a in argv)
    assert "--delete" in argv


def test_copy_argv_excludes_are_anchored() -> None:
    argv = copy_argv(
        "/srv/k-link", "/b", excludes=("storage/data", "/storage/index/", "storage/database/")
    )
    assert argv == (
        *FAITHFUL,
        "--exclude=/storage/data",
        "--exclude=/storage/index",
        "--exclude=/storage/database",
        "/srv/k-link/",
        "/b/",
    )


def test_copy_argv_excludes_escape_wildcards() -> None:
    argv = copy_argv("/s", "/d", excludes=("a*b", "c?d", "e[f]", "g\\*h"))
    assert argv[len(FAITHFUL) : -2] == (
        "--exclude=/a\\*b",
        "--exclude=/c\\?d",
        "--exclude=/e\\[f]",
        "--exclude=/g\\\\\\*h",
    )


def test_escape_pattern_each_wildcard_character() -> None:
    assert escape_pattern("plain/path") == "plain/path"
    assert escape_pattern("*") == "\\*"
    assert escape_pattern("?") == "\\?"
    assert escape_pattern("[") == "\\["
    assert escape_pattern("]") == "]"
    assert escape_pattern("a\\b*") == "a\\\\b\\*"


def test_copy_argv_file_source_has_no_trailing_slash() -> None:
    argv = copy_argv("/srv/k-link/config.ini", "/b/.staging/folder/config.ini", source_is_file=True)
    # --copy-links: a file bind through a symlink is its content, not the bare link
    assert argv == (*FAITHFUL, "--copy-links", "/srv/k-link/config.ini",
                    "/b/.staging/folder/config.ini/")  # fmt: skip


def test_dir_arg() -> None:
    assert dir_arg("/a") == "/a/"
    assert dir_arg("/a/") == "/a/"
    assert dir_arg("/") == "/"


# --- copy_argv with real rsync: the excludes do what they say -------------------------


def _tree(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "f").write_text(name)


def _copied(tmp_path: Path, names: list[str], excludes: tuple[str, ...]) -> set[str]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    _tree(src, names)
    subprocess.run(copy_argv(str(src), str(dst), excludes=excludes), check=True,
                   capture_output=True)  # fmt: skip
    return {p.name for p in dst.iterdir()}


@needs_rsync
def test_real_rsync_excludes_only_the_named_paths_with_wildcards(tmp_path: Path) -> None:
    names = ["a*b", "aXb", "c?d", "cXd", "e[f]", "ef", "keep"]
    copied = _copied(tmp_path, names, ("a*b", "c?d", "e[f]"))
    assert copied == {"aXb", "cXd", "ef", "keep"}


@needs_rsync
def test_real_rsync_exclude_is_anchored_at_the_source_root(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "storage" / "data").mkdir(parents=True)
    (src / "storage" / "data" / "doc").write_text("doc")
    (src / "other" / "storage" / "data").mkdir(parents=True)
    (src / "other" / "storage" / "data" / "doc").write_text("doc")
    subprocess.run(copy_argv(str(src), str(dst), excludes=("storage/data",)), check=True,
                   capture_output=True)  # fmt: skip
    assert not (dst / "storage" / "data").exists()
    assert (dst / "storage").is_dir()
    assert (dst / "other" / "storage" / "data" / "doc").read_text() == "doc"


@needs_rsync
def test_real_rsync_excludes_a_path_with_a_backslash_and_no_wildcard(tmp_path: Path) -> None:
    copied = _copied(tmp_path, ["a\\b", "keep"], ("a\\b",))
    assert copied == {"keep"}


@needs_rsync
def test_real_rsync_excludes_a_path_with_a_backslash_and_a_wildcard(tmp_path: Path) -> None:
    copied = _copied(tmp_path, ["a\\b*", "a\\bX", "keep"], ("a\\b*",))
    assert copied == {"a\\bX", "keep"}


@needs_rsync
def test_real_rsync_file_source_lands_inside_the_dest_folder(tmp_path: Path) -> None:
    src = tmp_path / "config.ini"
    src.write_text("x=1")
    dest = tmp_path / "staging" / "config.ini"
    dest.parent.mkdir()
    subprocess.run(copy_argv(str(src), str(dest), source_is_file=True), check=True,
                   capture_output=True)  # fmt: skip
    assert (dest / "config.ini").read_text() == "x=1"


# --- refresh_argv ------------------------------------------------------------------------


def test_refresh_argv_exact() -> None:
    assert refresh_argv("/srv/k-link/storage", "/b/.staging/folder", "/b/.refresh-list") == (
        "rsync", "-aHAX", "--numeric-ids", "--sparse", "--stats", "--no-h",
        "--ignore-times", "--from0", "--files-from=/b/.refresh-list",
        "/srv/k-link/storage/", "/b/.staging/folder/",
    )  # fmt: skip


def test_refresh_argv_never_deletes_links_or_writes_in_place() -> None:
    argv = refresh_argv("/s", "/d", "/list")
    assert "--ignore-times" in argv
    assert "--from0" in argv
    assert "--files-from=/list" in argv
    assert not any(a.startswith(("--delete", "--link-dest", "--inplace")) for a in argv)


@needs_rsync
def test_real_rsync_refresh_copies_a_same_size_same_mtime_change(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub\nline").mkdir(parents=True)
    changed, untouched = src / "sub\nline" / "doc", src / "other"
    changed.write_bytes(b"old!")
    untouched.write_bytes(b"same")
    subprocess.run(copy_argv(str(src), str(dst)), check=True, capture_output=True)
    (dst / "extra").write_text("only in dest")
    stat = changed.stat()
    changed.write_bytes(b"new!")
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    listing = tmp_path / "list"
    listing.write_bytes(b"sub\nline/doc\0")
    out = subprocess.run(refresh_argv(str(src), str(dst), str(listing)), check=True,
                         capture_output=True, text=True)  # fmt: skip
    assert (dst / "sub\nline" / "doc").read_bytes() == b"new!"
    assert (dst / "extra").read_text() == "only in dest"  # no --delete
    assert parse_stats(out.stdout).regular_files_transferred == 1


# --- parse_stats -------------------------------------------------------------------------


@needs_rsync
def test_parse_stats_on_real_rsync_output(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "dir").mkdir(parents=True)
    (src / "a").write_bytes(b"x" * 1000)
    (src / "dir" / "b").write_bytes(b"y" * 2345)
    (src / "dir" / "c").write_bytes(b"")

    first = subprocess.run(copy_argv(str(src), str(dst)), check=True, capture_output=True,
                           text=True)  # fmt: skip
    stats = parse_stats(first.stdout)
    assert stats == RsyncStats(
        files=5,  # ".", "dir", and three files
        regular_files_transferred=3,
        total_size=3345,
        transferred_size=3345,
        literal_bytes=3345,
        deleted=0,
    )

    (src / "a").unlink()
    (src / "dir" / "b").write_bytes(b"z" * 2345 + b"!")
    second = subprocess.run(copy_argv(str(src), str(dst)), check=True, capture_output=True,
                            text=True)  # fmt: skip
    stats = parse_stats(second.stdout)
    assert stats.files == 4
    assert stats.deleted == 1
    assert stats.regular_files_transferred == 1
    assert stats.total_size == 2346
    assert stats.transferred_size == 2346
    assert 0 < stats.literal_bytes <= 2346

    third = subprocess.run(copy_argv(str(src), str(dst)), check=True, capture_output=True,
                           text=True)  # fmt: skip
    stats = parse_stats(third.stdout)
    assert (stats.files, stats.regular_files_transferred, stats.transferred_size) == (4, 0, 0)
    assert stats.total_size == 2346


SAMPLE = """\
sending incremental file list
storage/data/doc.pdf

Number of files: 1,234 (reg: 1,000, dir: 234)
Number of created files: 12 (reg: 12)
Number of deleted files: 3 (reg: 3)
Number of regular files transferred: 1,012
Total file size: 9,876,543,210 bytes
Total transferred file size: 1,234,567 bytes
Literal data: 234,567 bytes
Matched data: 1,000,000 bytes
File list size: 65,536
File list generation time: 0.003 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 250,000
Total bytes received: 20,000

sent 250,000 bytes  received 20,000 bytes  540,000.00 bytes/sec
total size is 9,876,543,210  speedup is 36,579.79
"""


def test_parse_stats_with_thousands_separators() -> None:
    assert parse_stats(SAMPLE) == RsyncStats(
        files=1234,
        regular_files_transferred=1012,
        total_size=9_876_543_210,
        transferred_size=1_234_567,
        literal_bytes=234_567,
        deleted=3,
    )


def test_parse_stats_missing_or_garbage_counts_zero() -> None:
    assert parse_stats("") == RsyncStats()
    assert parse_stats("rsync: connection unexpectedly closed\n") == RsyncStats()
    assert parse_stats("Total file size: unknown\nLiteral data: 7 bytes\n") == RsyncStats(
        literal_bytes=7
    )


def test_parse_stats_does_not_confuse_similar_lines() -> None:
    text = "Number of created files: 9\nTotal bytes sent: 99\nMatched data: 5 bytes\n"
    assert parse_stats(text) == RsyncStats()


# --- RsyncStats --------------------------------------------------------------------------


def test_stats_addition_adds_every_field() -> None:
    a = RsyncStats(1, 2, 3, 4, 5, 6)
    b = RsyncStats(10, 20, 30, 40, 50, 60)
    assert a + b == RsyncStats(11, 22, 33, 44, 55, 66)
    assert a + RsyncStats() == a
    assert sum((a, b, a), RsyncStats()) == RsyncStats(12, 24, 36, 48, 60, 72)


def test_stats_addition_leaves_operands_alone() -> None:
    a = RsyncStats(files=1)
    _ = a + RsyncStats(files=2)
    assert a == RsyncStats(files=1)


def test_hot_warning_codes_are_23_and_24() -> None:
    assert set(HOT_WARNING_CODES) == {23, 24}
    assert all(HOT_WARNING_CODES.values())
