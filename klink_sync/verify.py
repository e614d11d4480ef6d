"""Is a snapshot still what was copied, and does its database start?

Files: re-read and compare with SHA256SUMS (all, or a random sample); a
metadata walk finds every missing and every extra file either way.
Database (dbcheck.py): a throwaway MariaDB/MySQL container, no network, on a
copy of the snapshot's datadir, then `mariadb-check --all-databases`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from . import checksums
from .dbcheck import Database as Database  # re-exported: verify.Database still works
from .dbcheck import DatabaseCheck, check_database, databases
from .destination import MANIFEST, VERIFIED, Destination, Snapshot
from .errors import KlinkSyncError, UsageError
from .models import Mode
from .stack import Interrupted

log = logging.getLogger(__name__)


VerifyInterrupted = Interrupted  # a signal stops verify --all at once


@dataclass(frozen=True)
class FileCheck:
    listed: int  # files in SHA256SUMS
    checked: int  # files re-read
    sample: float  # percent of the listed files re-read
    bytes_read: int
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)

    def problems(self) -> list[str]:
        """One line per problem, for people."""
        return ([f"missing: {n}" for n in self.missing] + [f"changed: {n}" for n in self.changed]
                + [f"extra: {n}" for n in self.extra])  # fmt: skip

    def summary(self) -> str:
        return f"{len(self.missing)} missing, {len(self.changed)} changed, {len(self.extra)} extra"


@dataclass(frozen=True)
class Verdict:
    snapshot: str
    files: FileCheck
    databases: tuple[DatabaseCheck, ...] = ()
    database_checked: bool = False
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.files.ok and all(d.ok for d in self.databases)

    def to_dict(self) -> dict:
        f = self.files
        return {
            "snapshot": self.snapshot, "ok": self.ok, "listed": f.listed, "checked": f.checked,
            "sample": percent(f.sample), "bytes_read": f.bytes_read, "missing": list(f.missing),
            "changed": list(f.changed), "extra": list(f.extra),
            "database": [d.__dict__ for d in self.databases] if self.database_checked else None,
            "warnings": list(self.warnings),
        }  # fmt: skip

    def failure(self) -> str:
        """The one-line reason for exit 1."""
        parts = [] if self.files.ok else [f"damaged ({self.files.summary()})"]
        parts += [f"database check failed ({d.service}): {d.reason}"
                  for d in self.databases if not d.ok]  # fmt: skip
        return f"snapshot {self.snapshot}: " + "; ".join(parts) if parts else ""


# ------------------------------------------------------------------ files


def usable(snapshot: Snapshot) -> None:
    """Refuse what cannot be verified: a snapshot never completed, or without checksums."""
    if not snapshot.complete:
        raise KlinkSyncError(f"snapshot {snapshot.name} is incomplete (no {MANIFEST}): refusing it")
    if not snapshot.has_sums:
        raise KlinkSyncError(
            f"snapshot {snapshot.name} has no checksums ({checksums.SUMS}): nothing to verify "
            "against (made before klink-sync wrote them, or its run is still finishing)"
        )


def verify_targets(dest: Destination, name: str | None, every: bool, sample: float,
                   database: bool) -> list[Snapshot]:  # fmt: skip
    """The snapshots `verify` is asked for, after every check of the request."""
    if every and name:
        raise UsageError("give a snapshot name or --all, not both")
    check_sample(sample)
    dest.check_existing()
    if database:
        dest.local_path("")  # Docker runs the database here: refused for another host
    if not every:
        return [dest.find(name or "latest")]
    targets = dest.snapshots()
    if not targets:
        raise UsageError(f"{dest.spec}: no snapshots")
    return targets


def check_sample(sample: float) -> None:
    if not 0 < sample <= 100:
        raise UsageError(f"--sample {sample:g}: give a percentage above 0, at most 100")


def percent(value: float) -> float | int:
    """10.0 -> 10: whole percentages read as whole numbers in JSON."""
    return int(value) if float(value).is_integer() else value


def sample_size(listed: int, percent: float) -> int:
    """How many files a P% sample re-reads: rounded up, at least one."""
    if listed == 0:
        return 0
    return min(listed, max(1, math.ceil(listed * percent / 100)))


def verify_files(dest: Destination, snapshot: Snapshot, sample: float = 100,
                 rng: random.Random | None = None) -> FileCheck:  # fmt: skip
    """Re-read the listed files (or a random sample); walk the tree for missing and extra ones.

    The walk reads metadata only, so missing and extra files are always found
    in full, whatever the sample.
    """
    usable(snapshot)
    return check_tree(dest, snapshot.rel, f"{dest.spec}: {snapshot.name}", sample, rng)


def check_tree(dest: Destination, rel: str, label: str, sample: float = 100,
               rng: random.Random | None = None) -> FileCheck:  # fmt: skip
    """The tree at `rel` against its own SHA256SUMS: a snapshot, or a pull's staging."""
    listed = checksums.parse_sums(dest.read(f"{rel}/{checksums.SUMS}"),
                                  f"{label}/{checksums.SUMS}")  # fmt: skip
    present, _ = dest.files(rel)
    missing = listed.keys() - present.keys()
    extra = present.keys() - listed.keys()
    candidates = sorted(listed.keys() & present.keys())
    count = sample_size(len(listed), sample)
    chosen = candidates if count >= len(candidates) else sorted(
        (rng or random.SystemRandom()).sample(candidates, count))  # fmt: skip
    digests = dest.hash_files(rel, chosen)
    changed = [n for n in chosen if digests.get(n) != listed[n]]
    return FileCheck(
        listed=len(listed), checked=len(chosen), sample=sample,
        bytes_read=sum(present[n] for n in chosen if n in digests),
        missing=tuple(checksums.names(missing)), changed=tuple(checksums.names(changed)),
        extra=tuple(checksums.names(extra)),
    )  # fmt: skip


def write_verified(dest: Destination, snapshot: Snapshot, check: FileCheck,
                   database: bool) -> None:  # fmt: skip
    """verified.json: when the snapshot last passed, and how thoroughly (read by `snapshots`)."""
    record: dict[str, object] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sample": percent(check.sample),
        "files": check.checked,
    }
    if database:
        record["database"] = True
    dest.write_json(f"{snapshot.rel}/{VERIFIED}", record)


# ------------------------------------------------------------------ whole


def verify_snapshot(dest: Destination, snapshot: Snapshot, sample: float = 100,
                    database: bool = False, rng: random.Random | None = None
                    ) -> Verdict:  # fmt: skip
    """Files, then (when asked) each database; verified.json only when all passed."""
    check_sample(sample)
    if database:
        dest.local_path(snapshot.rel)  # Docker runs the database here: refused elsewhere
    began = time.monotonic()
    files = verify_files(dest, snapshot, sample, rng)
    log.info("snapshot %s: %d of %d files re-read (%s bytes) in %.1fs; %s", snapshot.name,
             files.checked, files.listed, files.bytes_read, time.monotonic() - began,
             files.summary())  # fmt: skip
    checks: list[DatabaseCheck] = []
    warnings: list[str] = []
    manifest: Mapping = {}
    if database:
        try:
            manifest = dest.manifest(snapshot)
            found = databases(manifest)
        except KlinkSyncError as exc:
            checks.append(DatabaseCheck("-", False, str(exc)))
            found = []
        for db in found:
            result = check_database(dest.local_path(f"{snapshot.rel}/{db.path}"),
                                    dest.local_path(""), db)
            checks.append(result)
            if result.crash_recovery:
                warnings.append(f"database {db.service}: the server ran crash recovery on the copy "
                                + _recovery_cause(manifest))  # fmt: skip
    verdict = Verdict(snapshot.name, files, tuple(checks), database, tuple(warnings))
    if verdict.ok:
        write_verified(dest, snapshot, files, database)
    return verdict


def _recovery_cause(manifest: Mapping) -> str:
    """Expected of a frozen copy (crash-consistent by design); a warning sign of any other."""
    if manifest.get("mode") == Mode.PAUSE.value:
        return "(expected: a hot-cold --pause snapshot is crash-consistent; InnoDB recovered it)"
    return "(the datadir was not copied from a clean shutdown)"
