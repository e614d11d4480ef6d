"""The backup destination: marker, lock, staging, snapshots, `latest`.

Layout (see DESIGN.md): DEST/.klink-sync, DEST/snapshots/<UTC time>/,
DEST/latest -> snapshots/<name>, DEST/.staging/ for the run in progress.
A snapshot is complete when its manifest.json exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import DestinationUnavailable, LockedError, RunFailed, UsageError
from .retention import Retention, decide, name_time, sort_key

MARKER = ".klink-sync"
DELETING = ".deleting-"  # a snapshot being removed: renamed first, so never listed
MANIFEST = "manifest.json"
INDEX = "source-index.json.gz"
PRIVATE = 0o700

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    name: str
    path: Path

    @property
    def complete(self) -> bool:
        return (self.path / MANIFEST).is_file()

    def manifest(self) -> dict:
        return json.loads((self.path / MANIFEST).read_text())


@dataclass(frozen=True)
class Destination:
    root: Path

    @property
    def snapshots_dir(self) -> Path:
        return self.root / "snapshots"

    @property
    def staging(self) -> Path:
        return self.root / ".staging"

    @property
    def latest_link(self) -> Path:
        return self.root / "latest"

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot folder, oldest first; never one that prune is removing."""
        if not self.snapshots_dir.is_dir():
            return []
        found = [
            Snapshot(p.name, p)
            for p in self.snapshots_dir.iterdir()
            if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")
        ]
        return sorted(found, key=lambda s: sort_key(s.name))

    def latest(self) -> Snapshot | None:
        """The snapshot `latest` points to, if it is complete."""
        if not self.latest_link.is_symlink():
            return None
        target = self.snapshots_dir / os.path.basename(os.readlink(self.latest_link))
        snapshot = Snapshot(target.name, target)
        return snapshot if snapshot.complete else None

    def find(self, name: str) -> Snapshot:
        if name == "latest":
            found = self.latest()
            if found is None:
                raise UsageError(f"{self.root}: no complete snapshot yet")
            return found
        for snapshot in self.snapshots():
            if snapshot.name == name:
                return snapshot
        raise UsageError(f"{self.root}: no snapshot named '{name}'")


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem that holds `path` (or would hold it)."""
    path = Path(os.path.realpath(path))
    while not path.exists():
        path = path.parent
    while not os.path.ismount(path):
        path = path.parent
    return path


def check_usable(root: Path, require_mount: bool = False) -> None:
    """Refuse, before anything is stopped, a destination that cannot take a backup."""
    if require_mount and mount_point(root) == Path("/"):
        raise DestinationUnavailable(
            f"{root}: not on a mounted disk (require_mount: true): is the backup disk mounted?"
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


def check_apart(root: Path, sources: Sequence[str]) -> None:
    """A destination inside a source copies itself; a source inside it gets --delete'd."""
    dest = os.path.realpath(root)
    for source in sources:
        src = os.path.realpath(source)
        if dest == src or dest.startswith(src.rstrip("/") + "/"):
            raise UsageError(f"{root}: destination is inside the source {source}: refusing")
        if src.startswith(dest.rstrip("/") + "/"):
            raise UsageError(f"{source}: source is inside the destination {root}: refusing")


def check_free_space(root: Path, needed: int) -> None:
    """Fail before the stop, not half way through the cold pass."""
    st = os.statvfs(root)
    free = st.f_bavail * st.f_frsize
    if free < needed:
        raise DestinationUnavailable(
            f"{root}: not enough free space: about {needed // 2**20} MiB needed, "
            f"{free // 2**20} MiB free"
        )


def prepare(root: Path, require_mount: bool = False) -> Destination:
    """Create the layout (owner-only, whatever the umask) and the marker."""
    check_usable(root, require_mount)
    try:
        root.mkdir(mode=PRIVATE, exist_ok=True)
        (root / MARKER).touch()
        dest = Destination(root)
        dest.snapshots_dir.mkdir(mode=PRIVATE, exist_ok=True)
        os.chmod(dest.snapshots_dir, PRIVATE)
    except OSError as exc:
        raise DestinationUnavailable(f"{root}: {exc.strerror}") from exc
    return dest


@contextmanager
def locked(dest: Destination) -> Iterator[None]:
    """One run per destination."""
    with _flock(dest.root / ".lock", str(dest.root)):
        yield


@contextmanager
def deployment_locked(folder: Path) -> Iterator[None]:
    """One run per deployment, whatever the destination."""
    digest = hashlib.sha256(os.fsencode(os.path.realpath(folder))).hexdigest()[:16]
    lock_dir = Path("/run/lock") if os.access("/run/lock", os.W_OK) else Path(tempfile.gettempdir())
    with _flock(lock_dir / f"klink-sync-{digest}.lock", str(folder)):
        yield


@contextmanager
def _flock(path: Path, what: str) -> Iterator[None]:
    """An exclusive flock: the kernel drops it when the holder dies, so none goes stale."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
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


def fresh_staging(dest: Destination) -> Path:
    """An empty staging folder; a failed run's leftovers are never trusted."""
    if dest.staging.exists():
        shutil.rmtree(dest.staging)
    dest.staging.mkdir(mode=PRIVATE)
    os.chmod(dest.staging, PRIVATE)
    return dest.staging


def snapshot_name(when: float, taken: set[str], suffix: str = "") -> str:
    base = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime(when)) + suffix
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def promote(dest: Destination, when: float, suffix: str = "", move_latest: bool = True) -> Snapshot:
    """Staging becomes a snapshot by rename; `latest` moves by an atomic rename.

    A pre-restore snapshot (suffix) keeps the state a restore replaced without
    becoming `latest`.
    """
    name = snapshot_name(when, {s.name for s in dest.snapshots()}, suffix)
    target = dest.snapshots_dir / name
    os.rename(dest.staging, target)
    if move_latest:
        tmp_link = dest.root / ".latest.tmp"
        if tmp_link.is_symlink():
            tmp_link.unlink()
        os.symlink(f"snapshots/{name}", tmp_link)
        os.replace(tmp_link, dest.latest_link)
    _fsync_dir(dest.snapshots_dir)
    _fsync_dir(dest.root)
    return Snapshot(name, target)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_private(path: Path) -> int:
    """A file descriptor of `path`, created or emptied, mode 0600 whatever the umask (an
    existing file's mode is set too): what a snapshot holds is for its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_json_atomic(path: Path, data: object) -> None:
    """Write to a temporary name, fsync, rename: readers see all or nothing."""
    tmp = path.with_name(path.name + ".tmp")
    with open(open_private(tmp), "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


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


def _verified(snap: Snapshot) -> str | None:
    try:
        return json.loads((snap.path / "verified.json").read_text()).get("time")
    except (OSError, ValueError, AttributeError):
        return None


def describe_snapshots(dest: Destination) -> list[dict]:
    """Each snapshot with its size and the bytes not shared with the one before."""
    latest = dest.latest()
    rows, previous = [], {}
    for snap in dest.snapshots():
        manifest = snap.manifest() if snap.complete else {}
        sizes = _inode_sizes(snap.path)
        when = name_time(snap.name)
        rows.append({
            "name": snap.name, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None,
            "complete": snap.complete, "latest": bool(latest) and latest.name == snap.name,
            "mode": manifest.get("mode"), "result": manifest.get("result", "incomplete"),
            "downtime_seconds": manifest.get("downtime_seconds"),
            "total_bytes": sum(sizes.values()),
            "new_bytes": sum(n for ino, n in sizes.items() if ino not in previous),
            "verified": _verified(snap),
        })  # fmt: skip
        previous = sizes
    return rows


def _rmtree(path: Path) -> None:
    """Remove a snapshot even if it holds read-only folders (chmod folders only: files
    are hard links shared with other snapshots)."""
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


def remove_snapshot(dest: Destination, name: str) -> None:
    """Rename out of the listing first: a half-removed snapshot is never taken for one."""
    path = dest.snapshots_dir / name
    try:
        if not name.startswith(DELETING):
            os.rename(path, dest.snapshots_dir / f"{DELETING}{name}")
            _fsync_dir(dest.snapshots_dir)
            path = dest.snapshots_dir / f"{DELETING}{name}"
        _rmtree(path)
    except OSError as exc:
        raise RunFailed(f"{path}: cannot remove: {exc.strerror}") from None


def prune(dest: Destination, rules: Retention, dry_run: bool) -> dict:
    """Apply the retention rules; the caller holds the lock unless this is a dry run."""
    latest = dest.latest()
    listed = dest.snapshots()
    decision = decide([(s.name, s.complete) for s in listed], latest.name if latest else None,
                      rules)  # fmt: skip
    leftovers = sorted(p.name for p in dest.snapshots_dir.glob(DELETING + "*"))
    if not dry_run:
        for name in leftovers:
            log.info("removing %s (left by an interrupted prune)", name)
            remove_snapshot(dest, name)
        for name in decision.remove:
            log.info("removing %s", name)
            remove_snapshot(dest, name)
    return {
        "dry_run": dry_run, "rules": rules.to_dict(),
        "keep": [{"name": n, "reasons": list(why)} for n, why in decision.keep],
        "remove": list(decision.remove), "leftovers": leftovers,
    }  # fmt: skip
