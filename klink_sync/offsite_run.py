"""The `offsite` verbs: init, push, snapshots, check, pull, prune, each one restic command
or a few, run through `process` with restic's environment built from the secret files.

A push only reads the local snapshot: whatever happens to it (a dead network, a wrong
password, a signal), the local snapshots are untouched and the stack is never held. A pull
writes like a backup does: into `.staging/` under the destination's lock, verified against
the snapshot's own SHA256SUMS, then promoted under the snapshot's own name.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from . import checksums, process
from .destination import STAGING, Destination
from .destination.base import MANIFEST, SNAPSHOTS
from .errors import KlinkSyncError, OffsiteFailed, UsageError
from .offsite import (
    Offsite,
    Stored,
    backup_argv,
    check_argv,
    forget_argv,
    init_argv,
    push_tags,
    restic_env,
    restore_argv,
    snapshots_argv,
    stored,
    summary,
    unlock_argv,
)
from .state import state_dir

log = logging.getLogger(__name__)
STATUS = "offsite.json"  # in the destination: the last push, for metrics and the next run


@dataclass(frozen=True)
class Pushed:
    """One push, for the report, metrics, hooks and notifications."""

    result: str  # "ok" or "failed"
    snapshot: str
    repository: str
    restic_id: str = ""
    added_bytes: int = 0
    files_new: int = 0
    files_changed: int = 0
    files_unmodified: int = 0
    seconds: float = 0.0
    snapshots_total: int | None = None
    error: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Restic:
    """restic for one repository: its environment made once, its secrets masked."""

    def __init__(self, offsite: Offsite):
        self.offsite = offsite
        cache = state_dir() / "restic-cache"
        cache.mkdir(mode=0o700, exist_ok=True)
        self.env, secrets = restic_env(offsite, os.environ, str(cache))
        process.add_secrets(secrets)

    def run(self, argv: Sequence[str], what: str, cwd: str | None = None) -> process.Result:
        try:
            return process.run(argv, env=self.env, cwd=cwd)
        except process.CommandFailed as exc:
            result = exc.result
            detail = result.last_error_line if result is not None else str(exc)
            raise OffsiteFailed(f"offsite {what} ({self.offsite.shown}): "
                                f"{process.mask(detail)}") from None  # fmt: skip

    def stored(self) -> list[Stored]:
        out = self.run(snapshots_argv(self.offsite), "snapshots").stdout
        try:
            return stored(json.loads(out or "[]"))
        except ValueError:
            raise OffsiteFailed(f"offsite snapshots ({self.offsite.shown}): restic's answer "
                                "is not JSON") from None  # fmt: skip


def init(offsite: Offsite) -> str:
    restic = Restic(offsite)
    try:
        restic.run(init_argv(offsite), "init")
    except OffsiteFailed as exc:
        if "already" in str(exc) or "exists" in str(exc):
            raise UsageError(f"{offsite.shown}: already a restic repository: nothing "
                             "done") from None  # fmt: skip
        raise
    return f"created the restic repository {offsite.shown}"


def push(offsite: Offsite, dest: Destination, name: str = "latest") -> Pushed:
    """Back up one local snapshot into the repository, the previous push as parent."""
    snapshot = dest.find(name)
    if not snapshot.complete:
        raise UsageError(f"{dest.spec}: snapshot {snapshot.name} is not complete: not pushed")
    folder = dest.local_path(snapshot.rel)
    manifest = dest.manifest(snapshot)
    deployment = str(manifest.get("project") or os.path.basename(manifest.get("folder", "")))
    restic = Restic(offsite)
    began = time.monotonic()
    restic.run(unlock_argv(offsite), "unlock")  # a killed push's lock must not stop this one
    mine = [s for s in restic.stored() if s.host == deployment]
    parent = mine[-1].id if mine else None
    tags = push_tags(snapshot.name, str(manifest.get("mode", "")), deployment)
    argv = backup_argv(offsite, tags, deployment or "klink-sync", parent)
    found = summary(restic.run(argv, "push", cwd=str(folder)).stdout)
    pushed = Pushed("ok", snapshot.name, offsite.shown, str(found.get("snapshot_id", "")),
                    int(found.get("data_added", 0)), int(found.get("files_new", 0)),
                    int(found.get("files_changed", 0)), int(found.get("files_unmodified", 0)),
                    round(time.monotonic() - began, 3), len(restic.stored()))  # fmt: skip
    _save_status(dest, pushed)
    return pushed


def push_after_backup(offsite: Offsite, dest: Destination, name: str) -> Pushed:
    """The push a backup run makes once the stack is up again: a failure is reported, it
    never undoes the run's snapshot."""
    try:
        return push(offsite, dest, name)
    except KlinkSyncError as exc:
        log.error("%s", process.mask(str(exc)))
        return Pushed("failed", name, offsite.shown, error=process.mask(str(exc)))


def _save_status(dest: Destination, pushed: Pushed) -> None:
    try:
        dest.write_json(STATUS, {"last_success": time.time(), **pushed.to_dict()})
    except (OSError, KlinkSyncError) as exc:
        log.warning("%s: cannot note the push: %s", dest.spec, exc)


def last_success(dest: Destination) -> dict:
    """What the last successful push left in the destination (empty: none yet)."""
    try:
        found = json.loads(dest.read(STATUS))
    except (OSError, ValueError, KlinkSyncError):
        return {}
    return found if isinstance(found, dict) else {}


def listing(offsite: Offsite) -> list[Stored]:
    return Restic(offsite).stored()


def check(offsite: Offsite) -> str:
    restic = Restic(offsite)
    restic.run(unlock_argv(offsite), "unlock")
    restic.run(check_argv(offsite), "check")
    return f"{offsite.shown}: restic check passed (read {offsite.check_subset} of the data)"


def prune(offsite: Offsite, dry_run: bool = False) -> str:
    restic = Restic(offsite)
    if not dry_run:
        restic.run(unlock_argv(offsite), "unlock")
    before = len(restic.stored())
    restic.run(forget_argv(offsite, dry_run), "prune")
    if dry_run:
        return f"{offsite.shown}: {before} snapshots; restic forget --dry-run ran (see -v)"
    after = len(restic.stored())
    return f"{offsite.shown}: {before - after} snapshots forgotten, {after} kept, space freed"


def _choose(found: list[Stored], name: str, deployment: str | None) -> Stored:
    if deployment:
        found = [s for s in found if deployment in (s.deployment, s.host)]
    if name != "latest":
        matches = [s for s in found if s.name == name]
        if not matches:
            raise UsageError(f"no offsite snapshot named '{name}'"
                             + (f" of {deployment}" if deployment else ""))  # fmt: skip
        return matches[-1]
    if not found:
        raise UsageError("the repository holds no klink-sync snapshot"
                         + (f" of {deployment}" if deployment else ""))  # fmt: skip
    hosts = sorted({s.host for s in found})
    if len(hosts) > 1:
        raise UsageError("the repository holds several deployments (" + ", ".join(hosts)
                         + "): name one with --deployment")  # fmt: skip
    return found[-1]


def pull(offsite: Offsite, dest: Destination, name: str, deployment: str | None = None) -> str:
    """DEST/snapshots/NAME from the repository, through staging, checked before promotion."""
    restic = Restic(offsite)
    chosen = _choose(restic.stored(), name, deployment)
    dest.prepare()
    with dest.lock():
        if chosen.name in dest.listing().folders:
            raise UsageError(f"{dest.spec}: {SNAPSHOTS}/{chosen.name} is already here: "
                             "nothing pulled")  # fmt: skip
        dest.fresh_staging([])
        restic.run(restore_argv(offsite, chosen.id, dest.path(STAGING)), "pull")
        checked = _check_staging(dest)
        latest = dest.latest()
        dest.promote(chosen.name, move_latest=latest is None or latest.name < chosen.name)
    return (f"pulled {chosen.name} ({chosen.deployment or chosen.host}) into "
            f"{dest.spec}/{SNAPSHOTS}/{chosen.name}: {checked} files match SHA256SUMS")


def _check_staging(dest: Destination) -> int:
    """Every file SHA256SUMS lists is there with its checksum, before it is promoted."""
    try:
        listed = checksums.parse_sums(dest.read(f"{STAGING}/{checksums.SUMS}"))
        dest.read(f"{STAGING}/{MANIFEST}")
    except (OSError, KlinkSyncError) as exc:
        raise OffsiteFailed(f"offsite pull: the snapshot has no readable SHA256SUMS or "
                            f"manifest ({exc}): not promoted") from None  # fmt: skip
    found = dest.hash_files(STAGING, list(listed))
    bad = [n for n, digest in listed.items() if found.get(n) != digest]
    if bad:
        first = os.fsdecode(bad[0])
        raise OffsiteFailed(f"offsite pull: {len(bad)} files differ from SHA256SUMS (first: "
                            f"{first}): not promoted")  # fmt: skip
    return len(listed)
