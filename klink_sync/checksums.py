"""SHA256SUMS: a checksum of every file in a snapshot, in `sha256sum -c` format.

Written after the run with the stack up, so it costs no downtime. A file that
is the same inode as the previous snapshot's file at the same path (a hard link
made by `rsync --link-dest`) has the same content: its checksum is reused, not
recomputed, so a snapshot of unchanged data hashes nothing. `verify` re-reads
the files and compares; `cd SNAPSHOT && sha256sum -c SHA256SUMS` does the same
without klink-sync.

Names are bytes throughout (any file name a filesystem allows). GNU's format:
`<hex>  <name>`; a name holding a backslash, newline or carriage return is
escaped (`\\\\`, `\\n`, `\\r`, as coreutils 9.1 writes it) and its line starts
with a backslash.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .errors import KlinkSyncError

log = logging.getLogger(__name__)

SUMS = "SHA256SUMS"
COVERED = ("folder", "volumes")  # the copied data; the snapshot's own files are not covered
CHUNK = 1 << 20  # stream files, never load one whole

_LINE = re.compile(rb"^(\\?)([0-9a-fA-F]{64}) [ *](.+)$", re.DOTALL)
_UNESCAPE = {b"\\": b"\\", b"n": b"\n", b"r": b"\r"}


class ChecksumFileError(KlinkSyncError):
    """A SHA256SUMS file that cannot be read as one."""


@dataclass(frozen=True)
class ChecksumResult:
    files: int  # files listed in SHA256SUMS
    hashed_files: int  # files read in full
    hashed_bytes: int
    reused: int  # checksums taken from the previous snapshot (same inode)
    seconds: float = 0.0


def escape_name(name: bytes) -> tuple[bytes, bool]:
    """GNU's escaping: (escaped name, whether the line needs the leading backslash)."""
    if b"\\" not in name and b"\n" not in name and b"\r" not in name:
        return name, False
    escaped = name.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    return escaped, True


def unescape_name(escaped: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(escaped):
        c = escaped[i : i + 1]
        if c == b"\\":
            nxt = escaped[i + 1 : i + 2]
            if nxt not in _UNESCAPE:
                raise ValueError(f"bad escape \\{nxt.decode(errors='replace')}")
            out += _UNESCAPE[nxt]
            i += 2
        else:
            out += c
            i += 1
    return bytes(out)


def format_line(name: bytes, digest: str) -> bytes:
    escaped, flagged = escape_name(name)
    return (b"\\" if flagged else b"") + digest.encode() + b"  " + escaped + b"\n"


def format_sums(entries: Mapping[bytes, str]) -> bytes:
    """The whole file, sorted by name, so two snapshots' files compare by diff."""
    return b"".join(format_line(name, entries[name]) for name in sorted(entries))


def parse_sums(data: bytes, origin: str = SUMS) -> dict[bytes, str]:
    """name -> lowercase hex digest; a malformed line is an error naming its number."""
    entries: dict[bytes, str] = {}
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line:
            continue
        match = _LINE.match(line)
        try:
            if match is None:
                raise ValueError("not '<sha256>  <name>'")
            flagged, digest, name = match.groups()
            entries[unescape_name(name) if flagged else name] = digest.decode().lower()
        except ValueError as exc:
            raise ChecksumFileError(f"{origin}: line {number}: {exc}") from None
    return entries


def read_sums(path: Path) -> dict[bytes, str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChecksumFileError(f"{path}: {exc.strerror}") from None
    return parse_sums(data, str(path))


def sha256_file(path: bytes | str | os.PathLike) -> tuple[str, int]:
    """(hex digest, bytes read), reading 1 MiB at a time."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size


def walk(snapshot: Path) -> Iterator[tuple[bytes, os.stat_result]]:
    """(name relative to the snapshot, lstat) of every regular file under folder/ and volumes/.

    Symlinks are neither followed nor listed (rsync keeps them as links).
    """
    root = os.fsencode(snapshot)
    for top in COVERED:
        if os.path.isdir(os.path.join(root, top.encode())):
            yield from _walk(root, top.encode())


def _walk(root: bytes, rel: bytes) -> Iterator[tuple[bytes, os.stat_result]]:
    with os.scandir(os.path.join(root, rel)) as entries:
        for entry in entries:
            name = rel + b"/" + entry.name
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(root, name)
            elif entry.is_file(follow_symlinks=False):
                yield name, entry.stat(follow_symlinks=False)


def _previous_sums(previous: Path | None) -> dict[bytes, str]:
    """The checksums to reuse; a damaged file is only a reason to hash everything again."""
    if previous is None or not (previous / SUMS).is_file():
        return {}
    try:
        return read_sums(previous / SUMS)
    except ChecksumFileError as exc:
        log.warning("not reusing the previous checksums: %s", exc)
        return {}


def lowest_priority() -> None:
    """This thread only yields the CPU to anything else (Linux: nice is per thread)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


def compute(
    snapshot: Path, previous: Path | None = None, background: bool = False
) -> tuple[dict[bytes, str], ChecksumResult]:
    """Checksums of every covered file; reused where the previous snapshot has the same inode.

    The files left to read are hashed by a few threads (hashlib lets go of the GIL);
    `background`: at the lowest CPU priority (while the stack starts).
    """
    began = time.monotonic()
    if background:
        lowest_priority()
    known = _previous_sums(previous)
    prev_root = os.fsencode(previous) if previous is not None else b""
    root = os.fsencode(snapshot)
    digests: dict[tuple[int, int], str] = {}  # by inode: hard links are read once
    names: dict[bytes, tuple[int, int]] = {}
    to_read: dict[tuple[int, int], bytes] = {}
    reused = 0
    for name, st in walk(snapshot):
        inode = names[name] = (st.st_dev, st.st_ino)
        if inode in digests or inode in to_read:
            continue
        if name in known:
            try:
                prev = os.lstat(os.path.join(prev_root, name))
            except OSError:
                prev = None
            if prev is not None and (prev.st_dev, prev.st_ino) == inode:
                digests[inode] = known[name]
                reused += 1
                continue
        to_read[inode] = name
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1),
                            initializer=lowest_priority if background else None) as pool:
        paths = [os.path.join(root, name) for name in to_read.values()]
        read = list(pool.map(sha256_file, paths))
    for inode, (digest, _) in zip(to_read, read, strict=True):
        digests[inode] = digest
    entries = {name: digests[inode] for name, inode in names.items()}
    result = ChecksumResult(len(entries), len(read), sum(size for _, size in read), reused,
                            time.monotonic() - began)  # fmt: skip
    return entries, result


def reuse_or_hash(
    new: Mapping[bytes, tuple[tuple[int, int], int]],
    old: Mapping[bytes, tuple[int, int]],
    known: Mapping[bytes, str],
    hash_names: Callable[[list[bytes]], Mapping[bytes, str]],
) -> tuple[dict[bytes, str], ChecksumResult]:
    """Checksums from walks made elsewhere: `new` name -> (inode, size) of the tree,
    `old` name -> inode of the previous snapshot, `known` its checksums; a name that is
    the same inode as before reuses its checksum, one name per other inode is hashed."""
    began = time.monotonic()
    by_inode: dict[tuple[int, int], str] = {}
    reused = 0
    for name, (inode, _) in new.items():
        if name in known and old.get(name) == inode:
            by_inode[inode] = known[name]
            reused += 1
    to_read: dict[tuple[int, int], bytes] = {}
    for name, (inode, _) in new.items():
        if inode not in by_inode:
            to_read.setdefault(inode, name)
    hashed = hash_names(sorted(to_read.values()))
    missing = [n for n in to_read.values() if n not in hashed]
    if missing:
        raise KlinkSyncError(f"cannot read {show_name(missing[0])} to hash it")
    for inode, name in to_read.items():
        by_inode[inode] = hashed[name]
    entries = {name: by_inode[inode] for name, (inode, _) in new.items()}
    size = sum(new[n][1] for n in to_read.values())
    return entries, ChecksumResult(len(entries), len(to_read), size, reused,
                                   time.monotonic() - began)  # fmt: skip


def show_name(name: bytes) -> str:
    """A file name on one line of output: escaped as in SHA256SUMS."""
    return os.fsdecode(escape_name(name)[0])


def names(entries: Iterable[bytes]) -> list[str]:
    return [show_name(n) for n in sorted(entries)]
