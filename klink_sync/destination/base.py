"""Where snapshots live: the interface both destinations implement, and all that is
written once on top of it (listing, latest, find, describe, prune, checksums, index).

Layout (see DESIGN.md): DEST/.klink-sync, DEST/snapshots/<UTC time>/,
DEST/latest -> snapshots/<name>, DEST/.staging/ for the run in progress. A snapshot is
complete when its manifest.json exists. Paths inside a destination are relative
strings ("snapshots/NAME/manifest.json"); `path()` makes them absolute on its host.
"""

from __future__ import annotations

import json
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .. import checksums, fileindex
from ..errors import DestinationUnavailable, KlinkSyncError, UsageError
from ..retention import Retention, decide, name_time, sort_key

MARKER = ".klink-sync"
DELETING = ".deleting-"  # a snapshot being removed: renamed first, so never listed
MANIFEST = "manifest.json"
INDEX = "source-index.json.gz"
VERIFIED = "verified.json"
STAGING = ".staging"
SNAPSHOTS = "snapshots"

log = logging.getLogger(__name__)


class CopyState(Protocol):
    """What the ctime check reads of a copy (names as in os.stat_result)."""

    st_ino: int
    st_size: int
    st_mtime_ns: int


@dataclass(frozen=True)
class Snapshot:
    name: str
    complete: bool  # manifest.json exists
    has_sums: bool  # SHA256SUMS exists

    @property
    def rel(self) -> str:
        return f"{SNAPSHOTS}/{self.name}"


@dataclass(frozen=True)
class Listing:
    """The destination's layout as one look finds it."""

    exists: bool
    marker: bool
    snapshots_dir: bool
    latest_target: str | None
    folders: tuple[str, ...]  # every folder in snapshots/, dot names included
    files: frozenset[str]  # "<name>/manifest.json", "<name>/SHA256SUMS"


def snapshot_name(when: float, taken: set[str], suffix: str = "") -> str:
    base = time.strftime("%Y-%m-%dT%H-%M-%SZ", time.gmtime(when)) + suffix
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


class Destination(ABC):
    """A backup destination; LocalDestination and SshDestination implement the primitives."""

    spec: str  # as the admin gave it: what messages and reports name

    # --- places and rsync
    @abstractmethod
    def path(self, rel: str = "") -> str:
        """The absolute path of `rel` on the destination's host."""

    @abstractmethod
    def rsync_address(self, path: str) -> str:
        """What rsync names `path` as (host:path over ssh)."""

    @abstractmethod
    def rsync_argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        """A local rsync command line made to reach the destination."""

    def local_path(self, rel: str) -> Path:
        """`rel` as a folder of this host, for what runs here (verify --database)."""
        raise UsageError(f"{self.spec}: the snapshot is not on this host: verify it with "
                         "--database on the backup host")  # fmt: skip

    def scratch(self, name: str) -> Path:
        """A private folder of this host for a run's intermediate files (live: the database
        copy before its rsync into staging); not created here. Over ssh: the state folder."""
        from ..state import state_dir  # it builds on the local destination's lock

        return state_dir() / name

    # --- checks, before anything is stopped
    @abstractmethod
    def check_usable(self, require_mount: bool = False, create: bool = False) -> None:
        """Refuse a destination that cannot take a backup; `create`: make the layout."""

    @abstractmethod
    def check_existing(self) -> None:
        """For prune, verify, restore: the folder exists and is klink-sync's."""

    @abstractmethod
    def check_apart(self, sources: Sequence[str]) -> None:
        """A destination inside a source copies itself; a source inside it gets --delete'd."""

    @abstractmethod
    def free_bytes(self) -> int: ...

    @abstractmethod
    def lock(self) -> AbstractContextManager[None]:
        """One run per destination."""

    def check_lock(self) -> None:  # noqa: B027 (a local lock cannot be lost)
        """Before a promotion: is the lock still held?"""

    def show_as_locked(self) -> None:  # noqa: B027 (a local lock changes no command)
        """For a dry run: build commands as they run while the lock is held."""

    # --- small files
    @abstractmethod
    def read(self, rel: str) -> bytes: ...

    def read_many(self, rels: Sequence[str]) -> dict[str, bytes]:
        """Each of `rels` that exists."""
        found = {}
        for rel in rels:
            try:
                found[rel] = self.read(rel)
            except (OSError, KlinkSyncError):
                continue
        return found

    @abstractmethod
    def write_atomic(self, rel: str, data: bytes) -> None:
        """Temporary name, sync, rename, mode 0600: readers see all or nothing."""

    # --- the layout
    @abstractmethod
    def listing(self) -> Listing: ...

    @abstractmethod
    def fresh_staging(self, folders: Sequence[str]) -> None:
        """An empty .staging (a failed run's leftovers are never trusted) with `folders`."""

    @abstractmethod
    def existing_folders(self, rel: str, folders: Sequence[str]) -> set[str]: ...

    @abstractmethod
    def copy_states(self, rels: Sequence[str]) -> Callable[[str], CopyState | None]:
        """Looks at the regular files below these trees, by absolute path on the host."""

    @abstractmethod
    def drop_copies(self, rel: str, names: Sequence[str]) -> bool:
        """Remove these copies below `rel`, if that is cheap here; False: left in place."""

    @abstractmethod
    def promote(self, name: str, move_latest: bool) -> None:
        """.staging becomes snapshots/NAME by a rename; `latest` moves atomically."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Rename out of the listing first, then delete."""

    # --- contents
    @abstractmethod
    def files(self, rel: str) -> tuple[dict[bytes, int], set[bytes]]:
        """Regular files (name -> size) and every other entry below folder/ and volumes/."""

    @abstractmethod
    def links(self, rel: str) -> set[bytes]:
        """Every symlink below folder/ and volumes/ of `rel`."""

    @abstractmethod
    def hash_files(self, rel: str, names: Sequence[bytes]) -> dict[bytes, str]:
        """name -> sha256; names that could not be read are left out."""

    @abstractmethod
    def compute_sums(self, rel: str, previous: str | None, background: bool = False
                     ) -> tuple[dict[bytes, str], checksums.ChecksumResult]:  # fmt: skip
        """Every covered file's sha256; same inode as in `previous`: reused."""

    @abstractmethod
    def sizes(self, names: Sequence[str]) -> list[tuple[int, int]]:
        """Per snapshot: bytes of its files (a hard link once), and those new since the one
        before it in `names`."""

    # --- written once on top of the primitives
    def prepare(self, require_mount: bool = False) -> None:
        self.check_usable(require_mount, create=True)

    def check_free_space(self, needed: int) -> None:
        """Fail before the stop, not half way through the cold pass."""
        free = self.free_bytes()
        if free < needed:
            raise DestinationUnavailable(
                f"{self.spec}: not enough free space: about {needed // 2**20} MiB needed, "
                f"{free // 2**20} MiB free"
            )

    def write_json(self, rel: str, data: object) -> None:
        text = json.dumps(data, indent=2, sort_keys=True) + "\n"
        self.write_atomic(rel, text.encode())

    def manifest(self, snapshot: Snapshot) -> dict:
        """The snapshot's manifest.json; a damaged one is a message, not a traceback."""
        rel = f"{snapshot.rel}/{MANIFEST}"
        try:
            found = json.loads(self.read(rel))
        except ValueError as exc:
            raise UsageError(f"{self.spec}: {rel}: not a manifest ({exc})") from None
        if not isinstance(found, dict):
            raise UsageError(f"{self.spec}: {rel}: not a manifest (not a JSON object)")
        return found

    def snapshots(self, listing: Listing | None = None) -> list[Snapshot]:
        """Every snapshot folder, oldest first; never one that prune is removing."""
        listing = listing or self.listing()
        names = [n for n in listing.folders if not n.startswith(".")]
        return [_snapshot(listing, n) for n in sorted(names, key=sort_key)]

    def latest(self, listing: Listing | None = None) -> Snapshot | None:
        """The snapshot `latest` points to, if it is complete."""
        listing = listing or self.listing()
        if listing.latest_target is None:
            return None
        name = os.path.basename(listing.latest_target)
        if name not in listing.folders:
            return None
        snapshot = _snapshot(listing, name)
        return snapshot if snapshot.complete else None

    def find(self, name: str) -> Snapshot:
        listing = self.listing()
        if name == "latest":
            found = self.latest(listing)
            if found is None:
                raise UsageError(f"{self.spec}: no complete snapshot yet")
            return found
        for snapshot in self.snapshots(listing):
            if snapshot.name == name:
                return snapshot
        raise UsageError(f"{self.spec}: no snapshot named '{name}'")

    def count_complete(self) -> int:
        return sum(1 for s in self.snapshots() if s.complete)

    def load_index(self, snapshot: Snapshot | None) -> dict[str, fileindex.Scan]:
        """The walks the run of `snapshot` saved; none (or unreadable) trusts nothing."""
        return self.read_index(f"{snapshot.rel}/{INDEX}") if snapshot else {}

    def read_index(self, rel: str) -> dict[str, fileindex.Scan]:
        try:
            return fileindex.loads(self.read(rel))
        except (OSError, KlinkSyncError) as exc:
            log.debug("no previous index: %s", exc)
            return {}

    def save_index(self, rel: str, scans: Mapping[str, fileindex.Scan]) -> None:
        self.write_atomic(rel, fileindex.dumps(scans))

    def write_sums(self, rel: str, previous: str | None, background: bool = False
                   ) -> checksums.ChecksumResult:  # fmt: skip
        """SHA256SUMS of the tree at `rel` (a snapshot, or staging), for `verify`."""
        entries, result = self.compute_sums(rel, previous, background)
        self.write_atomic(f"{rel}/{checksums.SUMS}", checksums.format_sums(entries))
        return result

    def promote_staging(self, when: float, suffix: str = "", move_latest: bool = True
                        ) -> Snapshot:  # fmt: skip
        """Staging becomes snapshots/<time><suffix>; a pre-restore snapshot (suffix) keeps
        the state a restore replaced without becoming `latest`."""
        self.check_lock()
        name = snapshot_name(when, set(self.listing().folders), suffix)
        self.promote(name, move_latest)
        return Snapshot(name, True, False)

    def describe(self) -> list[dict]:
        """Each snapshot: time, mode, result, downtime, size, new bytes, last verified."""
        listing = self.listing()
        snaps = self.snapshots(listing)
        latest = self.latest(listing)
        if not snaps:
            return []
        docs = self.read_many([f"{s.rel}/{f}" for s in snaps for f in (MANIFEST, VERIFIED)])
        sizes = self.sizes([s.name for s in snaps])
        return [_describe(s, latest, _json(docs, f"{s.rel}/{MANIFEST}") if s.complete else {},
                          _json(docs, f"{s.rel}/{VERIFIED}"), size)
                for s, size in zip(snaps, sizes, strict=True)]  # fmt: skip

    def prune(self, rules: Retention, dry_run: bool) -> dict:
        """Apply the retention rules; the caller holds the lock unless this is a dry run."""
        listing = self.listing()
        latest = self.latest(listing)
        listed = self.snapshots(listing)
        decision = decide([(s.name, s.complete) for s in listed],
                          latest.name if latest else None, rules)  # fmt: skip
        leftovers = sorted(n for n in listing.folders if n.startswith(DELETING))
        if not dry_run:
            for name in leftovers:
                log.info("removing %s (left by an interrupted prune)", name)
                self.remove(name)
            for name in decision.remove:
                log.info("removing %s", name)
                self.remove(name)
        return {
            "dry_run": dry_run, "rules": rules.to_dict(),
            "keep": [{"name": n, "reasons": list(why)} for n, why in decision.keep],
            "remove": list(decision.remove), "leftovers": leftovers,
        }  # fmt: skip

    def prune_command(self, rules: Retention, dry_run: bool) -> dict:
        """`klink-sync prune`: its checks, the lock (never while a backup runs), the removal."""
        if rules.empty:
            raise UsageError("no retention rules: give --keep-last, --keep-daily, --keep-weekly "
                             "or --keep-monthly, or retention: in the config")  # fmt: skip
        listing = self.listing()
        if not listing.exists or not listing.snapshots_dir:
            raise DestinationUnavailable(f"{self.spec}: no snapshots folder: nothing to prune")
        if not listing.marker:
            raise UsageError(f"{self.spec}: no {MARKER} marker: refusing to prune")
        if dry_run:
            return self.prune(rules, dry_run=True)
        with self.lock():
            return self.prune(rules, dry_run=False)


def _snapshot(listing: Listing, name: str) -> Snapshot:
    complete = f"{name}/{MANIFEST}" in listing.files
    return Snapshot(name, complete, f"{name}/{checksums.SUMS}" in listing.files)


def _json(docs: Mapping[str, bytes], key: str) -> dict:
    try:
        found = json.loads(docs[key])
    except (KeyError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _describe(snap: Snapshot, latest: Snapshot | None, manifest: Mapping, verified: Mapping,
              size: tuple[int, int]) -> dict:  # fmt: skip
    when = name_time(snap.name)
    return {
        "name": snap.name, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None,
        "complete": snap.complete, "latest": bool(latest) and latest.name == snap.name,
        "mode": manifest.get("mode"), "result": manifest.get("result", "incomplete"),
        "downtime_seconds": manifest.get("downtime_seconds"),
        "total_bytes": size[0], "new_bytes": size[1], "verified": verified.get("time"),
    }  # fmt: skip
