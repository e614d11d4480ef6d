"""What rsync's quick check cannot see: changes that keep size and mtime.

A writer can put an old mtime back (`cp -p`, `touch -r`) or change a file
within the same second without changing its size; rsync then keeps a stale
copy. A writer cannot set ctime. So every copy records, before it reads, each
file's (inode, ctime, mtime, size); during the cold pass the same stat walk
(metadata only, no file content) names the files whose copy may be stale, and
only those are copied again with --ignore-times.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

# A file whose ctime is this close to the walk that recorded it may change again
# (ctime ticks are coarse: one jiffy, 1 to 10 ms; this allows for many of them)
# within the same ctime tick without its ctime moving: never trust it.
RACY_NS = 200_000_000

FileState = tuple[int, int, int, int]  # inode, ctime_ns, mtime_ns, size


@dataclass(frozen=True)
class Scan:
    """Regular files below one source root, as they were when the walk started."""

    root: str
    started_ns: int
    files: Mapping[str, FileState] = field(repr=False)
    xattrs: bool = True  # some entry may hold an extended attribute or ACL (True: not asked)

    def unchanged(self, rel: str, now: FileState) -> bool:
        """True when the file is provably the one this walk recorded."""
        before = self.files.get(rel)
        return before == now and now[1] < self.started_ns - RACY_NS


@dataclass
class HotReference:
    """For each file copied hot, its state in the walk just before its last copy.

    The hot pass may run several rounds; a file copied again in a later round
    takes that round's walk as its reference, one copied once keeps the first.
    """

    files: dict[str, FileState] = field(default_factory=dict)
    xattrs: bool = False  # some walk found an extended attribute or ACL

    def record(self, scan: Scan, copied: Iterable[str] | None = None) -> None:
        """Take `scan` as the reference of the files just copied (None: all of them)."""
        self.xattrs = self.xattrs or scan.xattrs
        for rel in scan.files if copied is None else copied:
            state = scan.files.get(rel)
            if state is None or state[1] >= scan.started_ns - RACY_NS:
                self.files.pop(rel, None)  # appeared or changed during the walk: never trusted
            else:
                self.files[rel] = state

    def unchanged(self, rel: str, now: FileState) -> bool:
        return self.files.get(rel) == now

    def changed(self, scan: Scan) -> list[str]:
        """Files of `scan` not provably the ones last copied (new ones included)."""
        return [rel for rel, state in scan.files.items() if not self.unchanged(rel, state)]


def _walk(
    root: str, rel: str, skip: frozenset[str], other: Callable[[str], None] | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """Regular files (path, lstat); every other entry's path goes to `other`. A file or
    folder deleted while the walk runs (the stack writes) is left out, not an error."""
    try:
        entries = os.scandir(os.path.join(root, rel) if rel else root)
    except FileNotFoundError:
        if not rel:
            raise
        return
    with entries:
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if path in skip:
                continue
            if entry.is_dir(follow_symlinks=False):
                if other is not None:
                    other(path)
                yield from _walk(root, path, skip, other)
            elif entry.is_file(follow_symlinks=False):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield path, st
            elif other is not None:
                other(path)


def state_of(st: os.stat_result) -> FileState:
    return (st.st_ino, st.st_ctime_ns, st.st_mtime_ns, st.st_size)


def has_xattrs(path: str) -> bool:
    """Whether the entry holds an extended attribute (POSIX ACLs are ones too)."""
    try:
        return bool(os.listxattr(path, follow_symlinks=False))
    except FileNotFoundError:
        return False  # gone since the walk listed it
    except OSError as exc:
        return exc.errno != errno.ENOTSUP  # no support: none; any other doubt: assume some


def scan(
    root: str,
    excludes: Sequence[str] = (),
    xattrs: bool = False,
    known: Callable[[str, FileState], bool] | None = None,
) -> Scan:
    """Stat every regular file below root (a file source counts as one file).

    With `xattrs`, also ask every entry for extended attributes, except regular
    files `known` (unchanged since a walk that found none: a change of them moves ctime).
    """
    started = time.time_ns()
    skip = frozenset(e.strip("/") for e in excludes)
    found = [False]

    def look(rel: str) -> None:
        if xattrs and not found[0]:
            found[0] = has_xattrs(os.path.join(root, rel) if rel else root)

    if os.path.isfile(root):
        st = os.lstat(root)
        look("")
        return Scan(root, started, {os.path.basename(root): state_of(st)}, found[0] or not xattrs)
    if not os.path.isdir(root):
        return Scan(root, started, {}, not xattrs)
    look("")
    files = {}
    for rel, st in _walk(root, "", skip, look if xattrs else None):
        state = files[rel] = state_of(st)
        if xattrs and not found[0] and (known is None or not known(rel, state)):
            look(rel)
    return Scan(root, started, files, found[0] or not xattrs)


def lstat_file(path: str) -> os.stat_result | None:
    """lstat of a regular file; None if it is missing or something else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def files_to_refresh(
    now: Scan,
    staged: str,
    latest: str | None,
    hot: Scan | HotReference | None = None,
    previous: Scan | None = None,
    lstat: Callable[[str], os.stat_result | None] | None = None,
) -> list[str]:
    """Files whose copy in `staged` may be stale although rsync's quick check will pass it.

    `now` is the walk taken with the stack stopped. A staged file is a hot copy
    (trusted if unchanged since the `hot` walk) or a hard link to `latest`
    (trusted if unchanged since the `previous` run's walk). Files that rsync
    will copy anyway (missing, other size or mtime second) are left to it.
    `lstat` (path -> stat of a regular file, or None) looks at the copies; default: this
    host's (a remote destination passes what one walk of its staging and latest found).
    """
    lstat = lstat or lstat_file
    stale = []
    for rel, state in now.files.items():
        since_hot = hot is not None and hot.unchanged(rel, state)
        since_previous = previous is not None and previous.unchanged(rel, state)
        if since_hot and (since_previous or latest is None):
            continue  # nothing to doubt (with no older snapshot, no copy is a link to one)
        copy = lstat(os.path.join(staged, rel))
        old = lstat(os.path.join(latest, rel)) if latest else None
        linked = copy is None or (old is not None and copy.st_ino == old.st_ino)
        basis = old if copy is None else copy
        if basis is None or basis.st_size != state[3]:
            continue
        if basis.st_mtime_ns // 1_000_000_000 != state[2] // 1_000_000_000:
            continue
        if (since_previous if linked else since_hot):
            continue
        stale.append(rel)
    return stale


def null_list(names: Sequence[str]) -> bytes:
    """A --from0 list: names may hold newlines; bytes as they are on disk."""
    return b"".join(os.fsencode(n) + b"\0" for n in names)



def dumps(scans: Mapping[str, Scan]) -> bytes:
    """The walks of a run, for the next run (source-index.json.gz)."""
    data = {
        key: {"root": s.root, "started_ns": s.started_ns, "xattrs": s.xattrs, "files": s.files}
        for key, s in scans.items()
    }
    text = json.dumps(data, separators=(",", ":"))  # ASCII: odd names as \u escapes
    return gzip.compress(text.encode("ascii"), compresslevel=1)


def loads(data: bytes) -> dict[str, Scan]:
    """The previous run's walks; an unreadable index trusts nothing."""
    try:
        text = gzip.decompress(data).decode("utf-8", "surrogateescape")
        return {
            key: Scan(str(v["root"]), int(v["started_ns"]),
                      {str(k): (int(i), int(c), int(m), int(n))
                       for k, (i, c, m, n) in v["files"].items()},
                      v.get("xattrs") is not False)  # older indexes: not asked
            for key, v in json.loads(text).items()
        }  # fmt: skip
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError):
        return {}
