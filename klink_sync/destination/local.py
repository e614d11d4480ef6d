"""A destination folder on this host."""

from __future__ import annotations

import fcntl
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import checksums, fileindex
from ..errors import DestinationUnavailable, LockedError, RunFailed, UsageError
from .base import (
    DELETING,
    MARKER,
    SNAPSHOTS,
    STAGING,
    CopyState,
    Destination,
    Listing,
)

PRIVATE = 0o700


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem that holds `path` (or would hold it)."""
    path = Path(os.path.realpath(path))
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def check_apart(root: str | Path, sources: Sequence[str], spec: str | None = None) -> None:
    """A destination inside a source copies itself; a source inside it gets --delete'd."""
    dest = os.path.realpath(root)
    for source in sources:
        src = os.path.realpath(source)
        if dest == src or dest.startswith(src.rstrip("/") + "/"):
            raise UsageError(f"{spec or root}: destination is inside the source {source}: "
                             "refusing")  # fmt: skip
        if src.startswith(dest.rstrip("/") + "/"):
            raise UsageError(f"{source}: source is inside the destination {spec or root}: "
                             "refusing")  # fmt: skip


def open_private(path: Path) -> int:
    """A file descriptor of `path`, created or emptied, mode 0600 whatever the umask (an
    existing file's mode is set too): what a snapshot holds is for its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def flocked(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock: the kernel drops it when the holder dies, so none goes stale.
    Never through a symlink planted in its place."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LockedError(f"{what}: cannot open the lock {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{what}: another klink-sync run (pid {holder}) holds the lock"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def rmtree(path: Path) -> None:
    """Remove a tree even if it holds read-only folders (chmod folders only: files are
    hard links shared with other snapshots)."""
    try:
        shutil.rmtree(path)
        return
    except PermissionError:
        pass
    for dirpath, dirnames, _ in os.walk(path):
        for d in [dirpath, *(os.path.join(dirpath, n) for n in dirnames)]:
            if not os.path.islink(d):
                os.chmod(d, os.lstat(d).st_mode | stat.S_IRWXU)
    shutil.rmtree(path)


def _inode_sizes(root: Path) -> dict[tuple[int, int], int]:
    """(device, inode) -> size of every regular file: a hard link counts once."""
    sizes = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                sizes[(st.st_dev, st.st_ino)] = st.st_size
    return sizes


class LocalDestination(Destination):
    """DEST as a folder of this host."""

    def __init__(self, root: str | Path):
        self.root = Path(root).absolute()
        self.spec = str(self.root)

    def __repr__(self) -> str:
        return f"LocalDestination({self.spec!r})"

    def path(self, rel: str = "") -> str:
        return str(self.root / rel) if rel else str(self.root)

    def rsync_address(self, path: str) -> str:
        return path

    def rsync_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        return tuple(argv)

    def local_path(self, rel: str) -> Path:
        return self.root / rel

    def scratch(self, name: str) -> Path:
        """Beside .staging: on the destination's disk, which has room for the copies."""
        return self.root / f".{name}"

    def check_usable(self, require_mount: bool = False, create: bool = False) -> None:
        root = self.root
        if require_mount and mount_point(root) == Path("/"):
            raise DestinationUnavailable(
                f"{root}: not on a mounted disk (require_mount: true): is the backup disk "
                "mounted?"
            )
        if root.exists() and not root.is_dir():
            raise DestinationUnavailable(f"{root}: destination is not a folder")
        parent = root if root.exists() else root.parent
        if not parent.is_dir():
            raise DestinationUnavailable(f"{root}: destination's parent folder does not exist")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise DestinationUnavailable(f"{root}: destination is not writable")
        if root.exists() and not (root / MARKER).exists() and any(root.iterdir()):
            raise UsageError(
                f"{root}: destination is not empty and has no {MARKER} marker: refusing to use it"
            )
        if create:
            self._create()

    def _create(self) -> None:
        """The layout, owner-only whatever the umask, and the marker."""
        try:
            self.root.mkdir(mode=PRIVATE, exist_ok=True)
            (self.root / MARKER).touch()
            snapshots = self.root / SNAPSHOTS
            snapshots.mkdir(mode=PRIVATE, exist_ok=True)
            os.chmod(snapshots, PRIVATE)
        except OSError as exc:
            raise DestinationUnavailable(f"{self.root}: {exc.strerror}") from exc

    def check_existing(self) -> None:
        if not self.root.is_dir():
            raise UsageError(f"{self.root}: no such destination")

    def check_apart(self, sources: Sequence[str]) -> None:
        check_apart(self.root, sources)

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def lock(self):  # type: ignore[no-untyped-def]
        return flocked(self.root / ".lock", str(self.root))

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def write_atomic(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        tmp = path.with_name(f".{path.name}.tmp")
        fd = open_private(tmp)
        try:
            with os.fdopen(fd, "wb", closefd=False) as out:
                out.write(data)
                out.flush()
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def listing(self) -> Listing:
        root, snapshots = self.root, self.root / SNAPSHOTS
        latest = root / "latest"
        folders = []
        if snapshots.is_dir():
            folders = [p.name for p in snapshots.iterdir() if p.is_dir() and not p.is_symlink()]
        files = frozenset(f"{name}/{f}" for name in folders for f in ("manifest.json",
                          checksums.SUMS) if (snapshots / name / f).is_file())  # fmt: skip
        return Listing(root.is_dir(), (root / MARKER).exists(), snapshots.is_dir(),
                       os.readlink(latest) if latest.is_symlink() else None, tuple(folders),
                       files)  # fmt: skip

    def fresh_staging(self, folders: Sequence[str]) -> None:
        staging = self.root / STAGING
        if staging.exists() or staging.is_symlink():
            rmtree(staging) if not staging.is_symlink() else staging.unlink()
        staging.mkdir(mode=PRIVATE)
        os.chmod(staging, PRIVATE)
        for folder in folders:
            (staging / folder).mkdir(parents=True, exist_ok=True)

    def existing_folders(self, rel: str, folders: Sequence[str]) -> set[str]:
        return {f for f in folders if (self.root / rel / f).is_dir()}

    def copy_states(self, rels: Sequence[str]) -> Callable[[str], CopyState | None]:
        return fileindex.lstat_file  # lstat when asked: these trees are here

    def drop_copies(self, rel: str, names: Sequence[str]) -> bool:
        """Unlink the copies (a hard link's other names keep their data); never through a
        symlink on the way (a copied `storage -> /bigdisk` link would lead into the source)."""
        base = self.root / rel
        parents = {os.path.join(base, os.path.dirname(n)).rstrip("/") for n in names}
        if any(os.path.realpath(p) != p for p in parents):
            return False  # left in place: the refresh replaces them instead
        for name in names:
            try:
                os.unlink(self.root / rel / name)
            except FileNotFoundError:
                pass
        return True

    def promote(self, name: str, move_latest: bool) -> None:
        snapshots = self.root / SNAPSHOTS
        os.rename(self.root / STAGING, snapshots / name)
        if move_latest:
            tmp_link = self.root / ".latest.tmp"
            if tmp_link.is_symlink():
                tmp_link.unlink()
            os.symlink(f"{SNAPSHOTS}/{name}", tmp_link)
            os.replace(tmp_link, self.root / "latest")
        fsync_dir(snapshots)
        fsync_dir(self.root)

    def remove(self, name: str) -> None:
        snapshots = self.root / SNAPSHOTS
        path = snapshots / name
        try:
            if not name.startswith(DELETING):
                os.rename(path, snapshots / f"{DELETING}{name}")
                fsync_dir(snapshots)
                path = snapshots / f"{DELETING}{name}"
            rmtree(path)
        except OSError as exc:
            raise RunFailed(f"{path}: cannot remove: {exc.strerror}") from None

    def files(self, rel: str) -> tuple[dict[bytes, int], set[bytes]]:
        root = self.root / rel
        regular: dict[bytes, int] = {}
        other: set[bytes] = set()
        try:
            for top in checksums.COVERED:
                for dirpath, dirnames, filenames in os.walk(os.fsencode(root / top)):
                    _sort_entries(os.fsencode(root), dirpath, dirnames + filenames, regular,
                                  other)  # fmt: skip
        except OSError as exc:
            raise RunFailed(f"{root}: cannot read the snapshot: {exc}") from None
        return regular, other

    def links(self, rel: str) -> set[bytes]:
        _, other = self.files(rel)
        root = os.fsencode(self.root / rel)
        return {n for n in other if os.path.islink(os.path.join(root, n))}

    def hash_files(self, rel: str, names: Sequence[bytes]) -> dict[bytes, str]:
        root = os.fsencode(self.root / rel)
        found = {}
        for name in names:
            try:
                found[name] = checksums.sha256_file(os.path.join(root, name))[0]
            except OSError as exc:
                checksums.log.warning("%s: %s", checksums.show_name(name), exc.strerror)
        return found

    def compute_sums(self, rel: str, previous: str | None, background: bool = False
                     ) -> tuple[dict[bytes, str], checksums.ChecksumResult]:  # fmt: skip
        prev = self.root / previous if previous else None
        return checksums.compute(self.root / rel, prev, background)

    def sizes(self, names: Sequence[str]) -> list[tuple[int, int]]:
        found, previous = [], {}
        for name in names:
            sizes = _inode_sizes(self.root / SNAPSHOTS / name)
            found.append((sum(sizes.values()),
                          sum(n for ino, n in sizes.items() if ino not in previous)))
            previous = sizes
        return found


def _sort_entries(root: bytes, dirpath: bytes, entries: list[bytes], regular: dict,
                  other: set) -> None:  # fmt: skip
    """Regular files with their size, anything else (links, folders, devices) by name."""
    for entry in entries:
        full = os.path.join(dirpath, entry)
        st = os.lstat(full)
        name = os.path.relpath(full, root)
        if stat.S_ISREG(st.st_mode):
            regular[name] = st.st_size
        else:
            other.add(name)
