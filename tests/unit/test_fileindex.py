"""fileindex.py: stat walks, the racy rule, which files the cold pass must copy again."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from klink_sync import fileindex
from klink_sync.destination.local import LocalDestination
from klink_sync.fileindex import (
    RACY_NS,
    HotReference,
    Scan,
    files_to_refresh,
    null_list,
    scan,
    state_of,
)
from klink_sync.rsync import copy_argv

SEC = 1_000_000_000
MTIME = 1_700_000_000 * SEC + 123_456_789  # some mtime, well inside its second
CTIME = 1_700_000_100 * SEC  # the ctime the walks recorded
FUTURE = 4_000_000_000 * SEC  # a walk started long after every ctime here
PAST = 1_000_000_000 * SEC  # a walk started before every ctime here
BAD = os.fsdecode(b"bad\xff")  # a name that is not UTF-8



def save(path: Path, scans: dict) -> None:
    """As a run saves its walks into a destination."""
    LocalDestination(path.parent).save_index(path.name, scans)


def load(path: Path) -> dict:
    """As the next run reads them: a missing or unreadable index trusts nothing."""
    return LocalDestination(path.parent).read_index(path.name)

def put(path: Path, size: int, mtime_ns: int = MTIME) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def state(size: int = 4, ctime: int = CTIME, mtime: int = MTIME, inode: int = 7) -> tuple:
    return (inode, ctime, mtime, size)


# --- scan --------------------------------------------------------------------------------


def test_scan_regular_files_only_symlinks_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "src"
    put(root / "a", 1)
    put(root / "sub" / "b", 2)
    (root / "empty").mkdir()
    outside = tmp_path / "outside"
    put(outside / "secret", 3)
    (root / "link-to-file").symlink_to(root / "a")
    (root / "link-to-dir").symlink_to(outside)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "fifo")

    before = time.time_ns()
    result = scan(str(root))
    after = time.time_ns()

    assert result.root == str(root)
    assert before <= result.started_ns <= after
    assert set(result.files) == {"a", "sub/b"}
    assert result.files["a"] == state_of(os.lstat(root / "a"))
    assert result.files["sub/b"] == state_of(os.lstat(root / "sub" / "b"))
    inode, _, mtime, size = result.files["sub/b"]
    assert (inode, mtime, size) == (os.lstat(root / "sub" / "b").st_ino, MTIME, 2)


def test_scan_through_a_symlinked_root(tmp_path: Path) -> None:
    put(tmp_path / "real" / "a", 1)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert set(scan(str(tmp_path / "link")).files) == {"a"}


def test_scan_excludes_skip_whole_subtrees(tmp_path: Path) -> None:
    root = tmp_path / "k-link"
    for name in ["docker-compose.yml", "storage/data/doc.pdf", "storage/data/sub/x",
                 "storage/database/ibdata1", "storage/database-notes.txt",
                 "storage/index/core/segments", "skipped-file"]:  # fmt: skip
        put(root / name, 1)

    result = scan(str(root), excludes=("storage/data", "/storage/database/", "storage/index",
                                       "skipped-file"))  # fmt: skip
    assert set(result.files) == {"docker-compose.yml", "storage/database-notes.txt"}


def test_scan_exclude_is_anchored_at_the_root(tmp_path: Path) -> None:
    root = tmp_path / "src"
    put(root / "data" / "a", 1)
    put(root / "other" / "data" / "b", 1)
    assert set(scan(str(root), excludes=("data",)).files) == {"other/data/b"}


def test_scan_of_a_file_root(tmp_path: Path) -> None:
    path = put(tmp_path / "config.ini", 5)
    result = scan(str(path))
    assert result.root == str(path)
    assert result.files == {"config.ini": state_of(os.lstat(path))}


def test_scan_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    result = scan(str(tmp_path / "gone"))
    assert result.files == {}


def test_scan_odd_names(tmp_path: Path) -> None:
    root = tmp_path / "src"
    put(root / "line\nbreak", 1)
    put(Path(os.fsdecode(os.fsencode(str(root)) + b"/bad\xff")), 1)
    assert set(scan(str(root)).files) == {"line\nbreak", BAD}


# --- Scan.unchanged: the racy rule -------------------------------------------------------


def test_unchanged_when_equal_and_older_than_the_walk() -> None:
    walk = Scan("/src", FUTURE, {"a": state()})
    assert walk.unchanged("a", state())


@pytest.mark.parametrize(
    "now",
    [
        state(size=5),
        state(ctime=CTIME + 1),
        state(mtime=MTIME + 1),
        state(inode=8),
    ],
)
def test_changed_state_is_not_unchanged(now: tuple) -> None:
    assert not Scan("/src", FUTURE, {"a": state()}).unchanged("a", now)


def test_unknown_file_is_not_unchanged() -> None:
    assert not Scan("/src", FUTURE, {"a": state()}).unchanged("b", state())


def test_walk_before_the_ctime_is_never_trusted() -> None:
    assert not Scan("/src", PAST, {"a": state()}).unchanged("a", state())


@pytest.mark.parametrize(
    ("started", "trusted"),
    [
        (CTIME, False),
        (CTIME + RACY_NS - 1, False),
        (CTIME + RACY_NS, False),
        (CTIME + RACY_NS + 1, True),
    ],
)
def test_ctime_within_racy_ns_of_the_walk_is_never_trusted(started: int, trusted: bool) -> None:
    assert Scan("/src", started, {"a": state()}).unchanged("a", state()) is trusted


def test_racy_ns_allows_for_coarse_ctime_ticks() -> None:
    assert 10_000_000 < RACY_NS <= SEC


# --- files_to_refresh with hand-made walks -----------------------------------------------


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    staged, latest = tmp_path / "staging" / "folder", tmp_path / "latest" / "folder"
    staged.mkdir(parents=True)
    latest.mkdir(parents=True)
    return staged, latest


def refresh(staged: Path, latest: Path | None, now: tuple, hot: tuple | None = None,
            previous: tuple | None = None, hot_started: int = FUTURE) -> list[str]:  # fmt: skip
    return files_to_refresh(
        Scan("/src", FUTURE, {"doc": now}),
        str(staged),
        str(latest) if latest else None,
        hot=None if hot is None else Scan("/src", hot_started, {"doc": hot}),
        previous=None if previous is None else Scan("/src", FUTURE, {"doc": previous}),
    )


def test_hot_copy_unchanged_since_the_hot_walk_is_trusted(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    assert refresh(staged, latest, now=state(), hot=state()) == []
    assert refresh(staged, None, now=state(), hot=state()) == []


def test_changed_ctime_same_size_same_mtime_second_is_flagged(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    same_second = MTIME - MTIME % SEC + SEC - 1
    now = state(ctime=CTIME + 5 * SEC, mtime=same_second)
    assert refresh(staged, latest, now=now, hot=state()) == ["doc"]
    assert refresh(staged, latest, now=state(ctime=CTIME + 1), hot=state()) == ["doc"]


def test_writer_that_put_the_old_mtime_back_is_flagged(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    assert refresh(staged, latest, now=state(ctime=CTIME + 60 * SEC), hot=state()) == ["doc"]


def test_different_size_is_left_to_rsync(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    assert refresh(staged, latest, now=state(size=5, ctime=CTIME + SEC), hot=state()) == []


def test_different_mtime_second_is_left_to_rsync(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    later = state(ctime=CTIME + SEC, mtime=MTIME + SEC)
    assert refresh(staged, latest, now=later, hot=state()) == []


def test_hot_copy_without_a_hot_walk_is_flagged(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    assert refresh(staged, latest, now=state()) == ["doc"]


def test_hot_walk_too_close_to_the_ctime_is_not_trusted(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(staged / "doc", 4)
    racy = CTIME + RACY_NS // 2
    assert refresh(staged, latest, now=state(), hot=state(), hot_started=racy) == ["doc"]


def test_file_missing_everywhere_is_left_to_rsync(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    assert refresh(staged, latest, now=state()) == []
    assert refresh(staged, None, now=state()) == []


def test_linked_to_latest_trusted_only_if_unchanged_since_previous_walk(
    dirs: tuple[Path, Path],
) -> None:
    staged, latest = dirs
    put(latest / "doc", 4)
    os.link(latest / "doc", staged / "doc")  # what --link-dest made in the hot pass

    assert refresh(staged, latest, now=state(), hot=state(), previous=state()) == []
    assert refresh(staged, latest, now=state(), previous=state()) == []
    # unchanged since the hot walk is not enough: the link is the previous run's copy
    assert refresh(staged, latest, now=state(), hot=state()) == ["doc"]
    assert refresh(staged, latest, now=state()) == ["doc"]
    changed = state(ctime=CTIME + SEC)
    assert refresh(staged, latest, now=changed, hot=changed, previous=state()) == ["doc"]


def test_not_yet_staged_uses_latest_as_the_basis(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(latest / "doc", 4)  # the cold pass will hard-link it from latest

    assert refresh(staged, latest, now=state(), previous=state()) == []
    assert refresh(staged, latest, now=state()) == ["doc"]
    assert refresh(staged, latest, now=state(ctime=CTIME + 1), previous=state()) == ["doc"]
    assert refresh(staged, latest, now=state(size=9, ctime=CTIME + 1), previous=state()) == []


def test_separate_hot_copy_is_judged_by_the_hot_walk_not_previous(
    dirs: tuple[Path, Path],
) -> None:
    staged, latest = dirs
    put(latest / "doc", 4)
    put(staged / "doc", 4)  # its own inode: the hot pass copied it

    assert refresh(staged, latest, now=state(), hot=state()) == []
    assert refresh(staged, latest, now=state(), previous=state()) == ["doc"]


def test_staged_symlink_counts_as_missing(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    put(latest / "target", 4)
    (staged / "doc").symlink_to(latest / "target")
    assert refresh(staged, latest, now=state()) == []


def test_only_the_stale_files_are_named(dirs: tuple[Path, Path]) -> None:
    staged, latest = dirs
    names = ["ok", "touched", "grown", "sub/line\nbreak", BAD]
    for name in names:
        put(staged / name, 4)
    hot = Scan("/src", FUTURE, {n: state() for n in names})
    now = Scan("/src", FUTURE, {
        "ok": state(),
        "touched": state(ctime=CTIME + SEC),
        "grown": state(size=8, ctime=CTIME + SEC),
        "sub/line\nbreak": state(ctime=CTIME + SEC),
        BAD: state(ctime=CTIME + SEC),
        "new": state(),
    })  # fmt: skip
    assert files_to_refresh(now, str(staged), str(latest), hot=hot) == [
        "touched", "sub/line\nbreak", BAD,
    ]  # fmt: skip


# --- files_to_refresh on a real hot copy -------------------------------------------------


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed")
def test_real_hot_copy_then_a_same_size_same_second_change(tmp_path: Path) -> None:
    src, staged = tmp_path / "src", tmp_path / "staging"
    put(src / "stable", 4)
    changed = put(src / "changed", 4)
    put(src / "grown", 4)
    time.sleep(RACY_NS / SEC + 0.05)  # the files are older than the racy window

    hot = scan(str(src))
    subprocess.run(copy_argv(str(src), str(staged)), check=True, capture_output=True)
    changed.write_bytes(b"yyyy")
    os.utime(changed, ns=(MTIME, MTIME))  # the writer put the old mtime back
    put(src / "grown", 9)
    now = scan(str(src))

    assert files_to_refresh(now, str(staged), None, hot=hot) == ["changed"]


# --- save / load -------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    scans = {
        "folder": Scan("/srv/k-link", 1_700_000_000_123_456_789, {
            "docker-compose.yml": (12, CTIME, MTIME, 3000),
            "line\nbreak": (13, CTIME + 1, MTIME + 1, 0),
            BAD: (14, CTIME + 2, MTIME + 2, 2**40),
        }),
        "volumes/" + BAD: Scan("/mnt/" + BAD, 5, {}),
    }  # fmt: skip
    path = tmp_path / "index.json.gz"
    save(path, scans)

    loaded = load(path)
    assert loaded == scans
    assert loaded["folder"].files[BAD] == (14, CTIME + 2, MTIME + 2, 2**40)
    assert all(isinstance(s, tuple) for s in loaded["folder"].files.values())
    with gzip.open(path, "rb") as raw:
        json.loads(raw.read())  # a gzip'd JSON document


def test_save_load_round_trip_of_a_real_scan(tmp_path: Path) -> None:
    root = tmp_path / "src"
    put(root / "line\nbreak", 1)
    put(Path(os.fsdecode(os.fsencode(str(root)) + b"/bad\xff")), 2)
    walk = scan(str(root))
    save(tmp_path / "index.gz", {"folder": walk})
    loaded = load(tmp_path / "index.gz")["folder"]
    assert loaded == walk
    assert loaded.files[BAD] == state_of(os.lstat(os.fsencode(str(root)) + b"/bad\xff"))


def test_the_index_keeps_whether_a_walk_found_no_xattr(tmp_path: Path) -> None:
    """A walk that asked and found none lets the next run skip asking unchanged files; an
    index without the key (an older run's) trusts nothing."""
    scans = {"asked": Scan("/a", 5, {}, xattrs=False), "not-asked": Scan("/b", 5, {})}
    save(tmp_path / "index.gz", scans)
    loaded = load(tmp_path / "index.gz")
    assert loaded["asked"].xattrs is False and loaded["not-asked"].xattrs is True
    older = {"folder": {"root": "/a", "started_ns": 5, "files": {}}}
    (tmp_path / "old.gz").write_bytes(gzip.compress(json.dumps(older).encode()))
    assert load(tmp_path / "old.gz")["folder"].xattrs is True


def test_a_walk_asks_the_xattrs_of_changed_files_only(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "src"
    put(root / "same", 1)
    put(root / "changed", 2)
    time.sleep(0.3)  # past the racy window
    first = scan(str(root), xattrs=True)
    assert first.xattrs is False
    os.chmod(root / "changed", 0o600)  # moves its ctime, as setting an xattr would
    asked = []
    real = fileindex.has_xattrs
    monkeypatch.setattr(fileindex, "has_xattrs", lambda path: asked.append(path) or real(path))
    assert scan(str(root), xattrs=True, known=first.unchanged).xattrs is False
    assert str(root / "changed") in asked and str(root / "same") not in asked
    os.setxattr(root / "changed", "user.k", b"1")
    assert scan(str(root), xattrs=True, known=first.unchanged).xattrs is True


def test_load_missing_file(tmp_path: Path) -> None:
    assert load(tmp_path / "nope.gz") == {}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not gzip at all",
        gzip.compress(b"{not json", mtime=0),
        gzip.compress(b"\xff\xfe", mtime=0),
    ],
)
def test_load_corrupt_file_trusts_nothing(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "index.gz"
    path.write_bytes(content)
    assert load(path) == {}


def test_load_a_directory_trusts_nothing(tmp_path: Path) -> None:
    assert load(tmp_path) == {}


def test_load_truncated_gzip_trusts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "index.gz"
    save(path, {"folder": Scan("/srv", 1, {f"f{i}": (i, i, i, i) for i in range(500)})})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert load(path) == {}


@pytest.mark.parametrize(
    "document",
    [[1, 2], {"folder": {"root": "/srv"}}, {"folder": {"root": "/srv", "started_ns": 1,
                                                     "files": {"a": 5}}}],
)
def test_load_valid_json_of_the_wrong_shape_trusts_nothing(tmp_path: Path, document) -> None:
    path = tmp_path / "index.gz"
    path.write_bytes(gzip.compress(json.dumps(document).encode()))
    assert load(path) == {}


# --- null_list ---------------------------------------------------------------------------


def test_null_list_raw_bytes() -> None:
    assert null_list(["doc.pdf", "sub/line\nbreak", BAD, "sp ace"]) == (
        b"doc.pdf\0sub/line\nbreak\0bad\xff\0sp ace\0")


def test_null_list_empty() -> None:
    assert null_list([]) == b""


# --- HotReference: several hot rounds ----------------------------------------------------

def _scan(started_s: int, files: dict) -> Scan:
    return Scan("/src", started_s * 1_000_000_000, files)


def _st(ctime_s: int, size: int = 10) -> tuple[int, int, int, int]:
    return (1, ctime_s * 1_000_000_000, ctime_s * 1_000_000_000, size)


def test_hot_reference_keeps_the_first_walk_for_files_not_copied_again() -> None:
    ref = HotReference()
    ref.record(_scan(100, {"a": _st(10), "b": _st(20)}))
    # between round 1 and 2, "a" changed invisibly; round 2 copied only "b"
    ref.record(_scan(200, {"a": _st(150), "b": _st(20)}), copied={"b"})
    assert not ref.unchanged("a", _st(150))  # its copy is from round 1: stale
    assert ref.unchanged("b", _st(20))


def test_hot_reference_takes_the_walk_before_the_last_copy() -> None:
    ref = HotReference()
    ref.record(_scan(100, {"a": _st(10)}))
    ref.record(_scan(200, {"a": _st(150)}), copied={"a"})
    assert ref.unchanged("a", _st(150))
    assert not ref.unchanged("a", _st(10))


def test_hot_reference_never_trusts_a_file_changing_during_its_walk() -> None:
    ref = HotReference()
    racy = (1, 100 * 1_000_000_000 - RACY_NS // 2, 0, 10)
    ref.record(_scan(100, {"a": racy, "new": _st(10)}), copied=None)
    ref.record(_scan(200, {"a": racy}), copied={"gone"})
    assert not ref.unchanged("a", racy)
    assert not ref.unchanged("gone", _st(10))
