"""The backup destination: marker, lock, staging, snapshots, `latest`.

Layout (see DESIGN.md): DEST/.klink-sync, DEST/snapshots/<UTC time>/,
DEST/latest -> snapshots/<name>, DEST/.staging/ for the run in progress.
A snapshot is complete when its manifest.json exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import DestinationUnavailable, LockedError, UsageError

MARKER = ".klink-sync"
MANIFEST = "manifest.json"
INDEX = "source-index.json.gz"
PRIVATE = 0o700


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
        """Every snapshot folder, oldest first (names sort by time)."""
        if not self.snapshots_dir.is_dir():
            return []
        return sorted(
            (Snapshot(p.name, p) for p in self.snapshots_dir.iterdir() if p.is_dir()),
            key=lambda s: s.name,
        )

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


def check_usable(root: Path) -> None:
    """Refuse, before anything is stopped, a destination that cannot take a backup."""
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


def prepare(root: Path) -> Destination:
    """Create the layout (owner-only, whatever the umask) and the marker."""
    check_usable(root)
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
    """One run per destination; the kernel drops the lock when the holder dies."""
    path = dest.root / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{dest.root}: another klink-sync run (pid {holder}) holds the lock"
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


def write_json_atomic(path: Path, data: object) -> None:
    """Write to a temporary name, fsync, rename: readers see all or nothing."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
