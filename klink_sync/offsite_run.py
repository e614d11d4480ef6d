"""The `offsite` verbs: init, push, snapshots, check, pull, prune, each one restic command
or a few, run through `process` with restic's environment built from the secret files.

A push only reads the local snapshot: whatever happens to it (a dead network, a wrong
password, a signal), the local snapshots are untouched and the stack is never held. A pull
writes like a backup does: into `.staging/` under the destination's lock, verified against
the snapshot's own SHA256SUMS, then promoted under the snapshot's own name; a failed pull
gives the space of `.staging/` back. restic runs on this host: push and pull need a local
destination. A signal ends the restic under way (its lock goes stale: the next push,
check or prune removes it) and the command, in one line.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from . import process
from .destination import STAGING, Destination
from .destination.base import MANIFEST, SNAPSHOTS
from .destination.local import rmtree
from .errors import KlinkSyncError, OffsiteFailed, UsageError
from .offsite import (
    Offsite,
    Stored,
    backup_argv,
    check_argv,
    deployment_id,
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
from .stack import signals_raise
from .state import state_dir

log = logging.getLogger(__name__)
_LOCKED = re.compile(r"\b(?:un)?lock")  # "already locked", "the `unlock` command can be used"
STATUS = "offsite.json"  # in the destination: the last push, for metrics and the next run
F = TypeVar("F", bound=Callable)
_COUNTED = re.compile(r"^There were (\d+) errors$")


def _interruptible(fn: F) -> F:
    """SIGTERM, SIGINT and SIGHUP end the restic under way (never left running on its own)
    and raise Interrupted: one line, exit 1, a pull's staging removed."""

    @functools.wraps(fn)
    def run(*args, **kwargs):  # type: ignore[no-untyped-def]
        with signals_raise():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]


def _cause(result: process.Result | None, fallback: str) -> str:
    """restic's `Fatal: ...` line names the cause (the lines after it only add a question),
    unless it only counts the errors before it (a restore): then the first of those."""
    if result is None:
        return process.mask(fallback)
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    fatal = [line.removeprefix("Fatal: ") for line in lines if line.startswith("Fatal: ")]
    first = result.last_error_line or fallback
    if not fatal:
        return process.mask(first)
    counted = _COUNTED.match(fatal[-1])
    if counted and not first.startswith("Fatal: "):
        return process.mask(f"{first} ({counted[1]} errors in all)")
    return process.mask(fatal[-1])


def _on_this_host(dest: Destination, rel: str, verb: str) -> Path:
    """restic runs here: it reads (push) and writes (pull) this host's folders only."""
    try:
        return dest.local_path(rel)
    except UsageError:
        raise UsageError(f"{dest.spec}: not on this host: restic runs here, so `offsite {verb}`"
                         " needs a local destination (run it on the backup host)") from None


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

    def __init__(self, offsite: Offsite, verb: str):
        self.offsite, self.verb = offsite, verb  # what failed, as the admin asked for it
        cache = state_dir() / "restic-cache"
        cache.mkdir(mode=0o700, exist_ok=True)
        self.env, secrets = restic_env(offsite, os.environ, str(cache))
        process.add_secrets(secrets)

    def run(self, argv: Sequence[str], cwd: str | None = None) -> process.Result:
        """One restic command; refused by a lock, stale locks (those of restic processes
        that died: a killed push, check or prune) are removed and it runs once more."""
        try:
            return self._run(argv, cwd)
        except OffsiteFailed as exc:
            if not _LOCKED.search(str(exc)) or argv == unlock_argv(self.offsite):
                raise
            log.info("%s; removing stale locks, then once more", exc)
        self._run(unlock_argv(self.offsite))
        return self._run(argv, cwd)

    def _run(self, argv: Sequence[str], cwd: str | None = None) -> process.Result:
        try:
            return process.run(argv, env=self.env, cwd=cwd)
        except process.CommandFailed as exc:
            raise OffsiteFailed(f"offsite {self.verb} ({self.offsite.shown}): "
                                f"{_cause(exc.result, str(exc))}") from None  # fmt: skip

    def stored(self) -> list[Stored]:
        out = self.run(snapshots_argv(self.offsite)).stdout
        try:
            return stored(json.loads(out or "[]"))
        except ValueError:
            raise OffsiteFailed(f"offsite {self.verb} ({self.offsite.shown}): restic's answer "
                                "is not JSON") from None  # fmt: skip


@_interruptible
def init(offsite: Offsite) -> str:
    restic = Restic(offsite, "init")
    try:
        restic.run(init_argv(offsite))
    except OffsiteFailed as exc:
        if "already" in str(exc) or "exists" in str(exc):
            raise UsageError(f"{offsite.shown}: already a restic repository: nothing "
                             "done") from None  # fmt: skip
        raise
    return f"created the restic repository {offsite.shown}"


@_interruptible
def push(offsite: Offsite, dest: Destination, name: str = "latest", count: bool = False
         ) -> Pushed:  # fmt: skip
    """Back up one local snapshot into the repository, the previous push as parent. One
    restic command when all is well (each costs a key derivation): the parent is the push
    noted in the destination; the repository is listed only when that note is missing or
    wrong, unlocked only when a stale lock is in the way, counted when metrics want it."""
    _on_this_host(dest, "", "push")
    snapshot = dest.find(name)
    if not snapshot.complete:
        raise UsageError(f"{dest.spec}: snapshot {snapshot.name} is not complete: not pushed")
    folder = dest.local_path(snapshot.rel)
    manifest = dest.manifest(snapshot)
    project = str(manifest.get("project") or os.path.basename(manifest.get("folder", "")))
    deployment = deployment_id(project, socket.gethostname())
    restic = Restic(offsite, "push")
    began = time.monotonic()
    noted = last_success(dest)
    same = (noted.get("repository"), noted.get("deployment")) == (offsite.shown, deployment)
    parent = noted.get("restic_id") if same else _last_push(restic, deployment)
    tags = push_tags(snapshot.name, str(manifest.get("mode", "")), deployment)
    found = _backup(restic, tags, deployment, parent, str(folder))
    pushed = Pushed("ok", snapshot.name, offsite.shown, str(found.get("snapshot_id", "")),
                    int(found.get("data_added", 0)), int(found.get("files_new", 0)),
                    int(found.get("files_changed", 0)), int(found.get("files_unmodified", 0)),
                    round(time.monotonic() - began, 3),
                    len(restic.stored()) if count else None)  # fmt: skip
    _save_status(dest, pushed, deployment)
    return pushed


def _last_push(restic: Restic, deployment: str) -> str | None:
    """The deployment's newest push in the repository: the parent when none is noted."""
    mine = [s for s in restic.stored() if s.host == (deployment or "klink-sync")]
    return mine[-1].id if mine else None


def _backup(restic: Restic, tags: Sequence[str], deployment: str, parent: str | None,
            folder: str) -> dict:  # fmt: skip
    """restic backup; with a noted parent the repository no longer has (a new repository
    at the same address, a forgotten snapshot), the newest push there instead."""
    offsite = restic.offsite
    host = deployment or "klink-sync"
    try:
        return summary(restic.run(backup_argv(offsite, tags, host, parent), cwd=folder).stdout)
    except OffsiteFailed as exc:
        if parent is None or "invalid id" not in str(exc):
            raise
        parent = _last_push(restic, deployment)
        log.info("offsite push: %s; trying once more", process.mask(str(exc)))
    return summary(restic.run(backup_argv(offsite, tags, host, parent), cwd=folder).stdout)


def push_after_backup(offsite: Offsite, dest: Destination, name: str,
                      count: bool = False) -> Pushed:  # fmt: skip
    """The push a backup run makes once the stack is up again: a failure is reported, it
    never undoes the run's snapshot."""
    try:
        return push(offsite, dest, name, count)
    except KlinkSyncError as exc:
        log.error("%s", process.mask(str(exc)))
        return Pushed("failed", name, offsite.shown, error=process.mask(str(exc)))


def _save_status(dest: Destination, pushed: Pushed, deployment: str) -> None:
    """The push noted in the destination: the next push's parent, without asking restic."""
    try:
        dest.write_json(STATUS, {"last_success": time.time(), "deployment": deployment,
                                 **pushed.to_dict()})  # fmt: skip
    except (OSError, KlinkSyncError) as exc:
        log.warning("%s: cannot note the push: %s", dest.spec, exc)


def last_success(dest: Destination) -> dict:
    """What the last successful push left in the destination (empty: none yet)."""
    try:
        found = json.loads(dest.read(STATUS))
    except (OSError, ValueError, KlinkSyncError):
        return {}
    return found if isinstance(found, dict) else {}


@_interruptible
def listing(offsite: Offsite) -> list[Stored]:
    return Restic(offsite, "snapshots").stored()


@_interruptible
def check(offsite: Offsite) -> str:
    restic = Restic(offsite, "check")
    restic.run(check_argv(offsite))
    return f"{offsite.shown}: restic check passed (read {offsite.check_subset} of the data)"


@_interruptible
def prune(offsite: Offsite, dry_run: bool = False) -> str:
    restic = Restic(offsite, "prune")
    before = len(restic.stored())
    out = restic.run(forget_argv(offsite, dry_run)).stdout
    if dry_run:
        gone = _forgotten(out)
        names = ", ".join(f"{s.name} ({s.deployment or s.host})" for s in gone)
        return (f"{offsite.shown}: {before} snapshots; prune would forget {len(gone)}"
                + (f": {names}" if names else ""))  # fmt: skip
    after = len(restic.stored())
    return f"{offsite.shown}: {before - after} snapshots forgotten, {after} kept, space freed"


def _forgotten(stdout: str) -> list[Stored]:
    """What `restic forget --json` removes (or would), klink-sync's snapshots only."""
    for line in stdout.splitlines():
        if line.startswith("["):
            try:
                groups = json.loads(line)
            except ValueError:
                break
            return stored([s for g in groups if isinstance(g, dict) for s in g.get("remove") or ()])
    return []


def _choose(found: list[Stored], name: str, deployment: str | None) -> Stored:
    """The snapshot to pull: by name or the newest, of one deployment (project@host; the
    project alone will do when only one host has it)."""
    if deployment:
        found = [s for s in found if deployment in (s.host, s.host.partition("@")[0])]
    of = f" of {deployment}" if deployment else ""
    if name != "latest":
        found = [s for s in found if s.name == name]
        if not found:
            raise UsageError(f"no offsite snapshot named '{name}'{of}")
    if not found:
        raise UsageError(f"the repository holds no klink-sync snapshot{of}")
    hosts = sorted({s.host for s in found})
    if len(hosts) > 1:
        raise UsageError("the repository holds several deployments (" + ", ".join(hosts)
                         + "): name one with --deployment")  # fmt: skip
    return found[-1]


@_interruptible
def pull(offsite: Offsite, dest: Destination, name: str, deployment: str | None = None) -> str:
    """DEST/snapshots/NAME from the repository, through staging, checked before promotion."""
    staging = _on_this_host(dest, STAGING, "pull")
    restic = Restic(offsite, "pull")
    chosen = _choose(restic.stored(), name, deployment)
    dest.prepare()
    with dest.lock():
        if chosen.name in dest.listing().folders:
            raise UsageError(f"{dest.spec}: {SNAPSHOTS}/{chosen.name} is already here: "
                             "nothing pulled")  # fmt: skip
        dest.fresh_staging([])
        try:
            restic.run(restore_argv(offsite, chosen.id, str(staging)))
            checked = _check_staging(dest)
        except BaseException:
            rmtree(staging)  # a partial pull (a full disk, a signal) gives its space back
            raise
        latest = dest.latest()
        dest.promote(chosen.name, move_latest=latest is None or latest.name < chosen.name)
    return (f"pulled {chosen.name} ({chosen.deployment or chosen.host}) into "
            f"{dest.spec}/{SNAPSHOTS}/{chosen.name}: {checked} files match SHA256SUMS")


def _check_staging(dest: Destination) -> int:
    """The pulled tree against its own SHA256SUMS, as `verify` checks a snapshot, before it
    is promoted: every listed file there with its checksum, nothing unlisted."""
    from .verify import check_tree  # a pull only: a push does not import it

    try:
        dest.read(f"{STAGING}/{MANIFEST}")
        check = check_tree(dest, STAGING, f"{dest.spec}: pulled snapshot")
    except (OSError, KlinkSyncError) as exc:
        raise OffsiteFailed(f"offsite pull: the snapshot has no readable SHA256SUMS or "
                            f"manifest ({exc}): not promoted") from None  # fmt: skip
    if not check.ok:
        raise OffsiteFailed(f"offsite pull: the files differ from SHA256SUMS ({check.summary()}"
                            f"; first: {check.problems()[0]}): not promoted")  # fmt: skip
    return check.listed
