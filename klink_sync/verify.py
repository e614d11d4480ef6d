"""Is a snapshot still what was copied, and does its database start?

Files: re-read and compare with SHA256SUMS (all, or a random sample); a
metadata walk finds every missing and every extra file either way.
Database: a throwaway MariaDB/MySQL container, no network, on a `cp -a` copy
of the snapshot's datadir (the snapshot itself is never written), then
`mariadb-check --all-databases`. The server runs with skip-grant-tables, so no
password is needed or read: the copy is private and the container has no network.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import checksums, destination, process
from .destination import Destination, Snapshot
from .errors import KlinkSyncError, UsageError
from .stack import Interrupted, signals_raise

log = logging.getLogger(__name__)

VERIFIED = "verified.json"
MYSQL_TARGET = "/var/lib/mysql"
START_TIMEOUT = 120.0
# Loaded after the image's own files: no grant checks, no network listener.
VERIFY_CNF = "[mysqld]\nskip-grant-tables\nskip-networking\n"
CNF_TARGET = "/etc/mysql/conf.d/zz-klink-sync-verify.cnf"
TOOLS = (("mariadb-admin", "mariadb-check"), ("mysqladmin", "mysqlcheck"))  # new, old names
CHECK_FINE = ("OK", "Table is already up to date")
NOT_SUPPORTED = "The storage engine for the table doesn't support check"
_STATUS = re.compile(r"^(error|warning|note|info|status)\s*:\s*(.*)$", re.I)
RECOVERY = re.compile(r"crash recovery|not shut ?down normally|Recovering after a crash", re.I)


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
class Database:
    """A MariaDB/MySQL datadir inside a snapshot and the image that runs it."""

    service: str
    image: str
    path: str  # relative to the snapshot


@dataclass(frozen=True)
class DatabaseCheck:
    service: str
    ok: bool
    reason: str = ""  # why not ok: one line
    tables: int = 0
    crash_recovery: bool = False  # the server had to recover: the copy was not of a clean shutdown


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
        raise KlinkSyncError(
            f"snapshot {snapshot.name} is incomplete (no {destination.MANIFEST}): refusing it"
        )
    if not (snapshot.path / checksums.SUMS).is_file():
        raise KlinkSyncError(
            f"snapshot {snapshot.name} has no checksums ({checksums.SUMS}): nothing to verify "
            "against (made before klink-sync wrote them, or its run is still finishing)"
        )


def percent(value: float) -> float | int:
    """10.0 -> 10: whole percentages read as whole numbers in JSON."""
    return int(value) if float(value).is_integer() else value


def sample_size(listed: int, percent: float) -> int:
    """How many files a P% sample re-reads: rounded up, at least one."""
    if listed == 0:
        return 0
    return min(listed, max(1, math.ceil(listed * percent / 100)))


def verify_files(snapshot: Snapshot, sample: float = 100, rng: random.Random | None = None
                 ) -> FileCheck:  # fmt: skip
    """Re-read the listed files (or a random sample); walk the tree for missing and extra ones.

    The walk reads metadata only, so missing and extra files are always found
    in full, whatever the sample.
    """
    usable(snapshot)
    listed = checksums.read_sums(snapshot.path / checksums.SUMS)
    try:
        present = {name for name, _ in checksums.walk(snapshot.path)}
    except OSError as exc:
        raise KlinkSyncError(f"{snapshot.path}: cannot read the snapshot: {exc}") from None
    missing = listed.keys() - present
    extra = present - listed.keys()
    candidates = sorted(listed.keys() & present)
    count = sample_size(len(listed), sample)
    chosen = candidates if count >= len(candidates) else sorted(
        (rng or random.SystemRandom()).sample(candidates, count))  # fmt: skip
    root = os.fsencode(snapshot.path)
    changed: list[bytes] = []
    read = 0
    for name in chosen:
        try:
            digest, size = checksums.sha256_file(os.path.join(root, name))
        except OSError as exc:
            log.warning("%s: %s", checksums.show_name(name), exc.strerror)
            changed.append(name)
            continue
        read += size
        if digest != listed[name]:
            changed.append(name)
    return FileCheck(
        listed=len(listed), checked=len(chosen), sample=sample, bytes_read=read,
        missing=tuple(checksums.names(missing)), changed=tuple(checksums.names(changed)),
        extra=tuple(checksums.names(extra)),
    )  # fmt: skip


def write_verified(snapshot: Snapshot, check: FileCheck, database: bool) -> None:
    """verified.json: when the snapshot last passed, and how thoroughly (read by `snapshots`)."""
    record: dict[str, object] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sample": percent(check.sample),
        "files": check.checked,
    }
    if database:
        record["database"] = True
    destination.write_json_atomic(snapshot.path / VERIFIED, record)


# --------------------------------------------------------------- database


def databases(manifest: Mapping) -> list[Database]:
    """Each MariaDB/MySQL datadir the snapshot holds, with its service's image (pure)."""
    found: list[Database] = []
    units = manifest.get("units", [])
    for volume in manifest.get("volumes", []):
        if volume.get("target", "").rstrip("/") != MYSQL_TARGET:
            continue
        service = volume.get("service", "?")
        if volume.get("class") == "skip":
            raise KlinkSyncError(f"the database of service '{service}' was skipped: "
                                 "it is not in this snapshot")  # fmt: skip
        if not volume.get("image"):
            raise KlinkSyncError(f"the manifest names no image for service '{service}' "
                                 "(snapshot made by an older klink-sync)")  # fmt: skip
        path = _unit_path(units, volume.get("source", ""), volume.get("type", ""))
        if path is None:
            where = volume.get("source")
            raise KlinkSyncError(f"the database of service '{service}' ({where}) "
                                 "is in no unit of the manifest")  # fmt: skip
        found.append(Database(service, volume["image"], path))
    if not found:
        raise KlinkSyncError(f"no database in this snapshot: no volume mounted at {MYSQL_TARGET}")
    return list({d.path: d for d in found}.values())  # one datadir mounted twice: once


def _unit_path(units: Sequence[Mapping], source: str, vtype: str) -> str | None:
    """Where a volume's files are in the snapshot: its own unit, or inside a bind unit."""
    for unit in units:
        if unit.get("source") == source and not unit.get("is_file"):
            return unit["dest"]
    if vtype != "bind":
        return None
    best = None
    for unit in units:
        base = unit.get("source", "")
        if unit.get("type") == "bind" and source.startswith(base.rstrip("/") + "/"):
            if best is None or len(base) > len(best.get("source", "")):
                best = unit
    if best is None:
        return None
    return best["dest"] + "/" + os.path.relpath(source, best["source"])


def run_argv(name: str, image: str, datadir: str, cnf: str) -> tuple[str, ...]:
    """The throwaway server: no network, the copy as its datadir, the image's own command."""
    return ("docker", "run", "-d", "--name", name, "--label", "klink-sync.verify=1",
            "--network", "none", "-v", f"{datadir}:{MYSQL_TARGET}",
            "-v", f"{cnf}:{CNF_TARGET}:ro", image)  # fmt: skip


def bad_check_lines(output: str) -> list[str]:
    """`mariadb-check` entries that are not fine, as '<table>: <status>' (pure).

    A table line ends in its status; status lines ("Error : ...", "note : ...")
    below a bare table name belong to it.
    """
    bad: list[str] = []
    table, statuses = "", []

    def close() -> None:
        if not table:
            return
        notes = [s for s in statuses if s not in CHECK_FINE and s != NOT_SUPPORTED]
        if notes or not statuses:
            bad.append(f"{table}: {notes[0] if notes else 'no status'}")

    for raw in output.splitlines():
        line = raw.strip()
        if not line:
            continue
        status = _STATUS.match(line)
        if status and table:
            statuses.append(status.group(2).strip() if status.group(1).lower() in (
                "status", "note") else f"{status.group(1)}: {status.group(2).strip()}")  # fmt: skip
            continue
        close()
        parts = line.split(None, 1)
        table, statuses = parts[0], [parts[1].strip()] if len(parts) > 1 else []
    close()
    return bad


def check_tables_count(output: str) -> int:
    return sum(1 for line in output.splitlines() if line.strip() and not _STATUS.match(line.strip())
               and not line[:1].isspace())  # fmt: skip


def _workdir(dest: Destination) -> Path:
    """Private scratch space next to the snapshots (room for a datadir), else the temp dir."""
    try:
        return Path(tempfile.mkdtemp(prefix=".verify-", dir=dest.root))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="klink-sync-verify-"))


def check_database(dest: Destination, snapshot: Snapshot, db: Database,
                   timeout: float = START_TIMEOUT) -> DatabaseCheck:  # fmt: skip
    """Start the image on a copy of the datadir and check every table; always clean up."""
    source = snapshot.path / db.path
    if not source.is_dir():
        return DatabaseCheck(db.service, False, f"{db.path} is missing from the snapshot")
    work = _workdir(dest)
    name = f"klink-sync-verify-{secrets.token_hex(4)}"
    started = False
    try:
        with signals_raise():
            cnf = work / "verify.cnf"
            cnf.write_text(VERIFY_CNF)
            cnf.chmod(0o644)
            copy = work / "datadir"
            process.run(("cp", "-a", "--", str(source), str(copy)))
            log.info("database %s: starting %s on a copy of %s", db.service, db.image, db.path)
            try:
                process.run(run_argv(name, db.image, str(copy), str(cnf)))
            except process.CommandFailed as exc:
                why = exc.result.last_error_line if exc.result else str(exc)
                return DatabaseCheck(db.service, False, f"cannot start {db.image}: {why}")
            started = True
            return _check_running(name, db, timeout)
    finally:
        if started or _exists(name):
            _remove_container(name)
        shutil.rmtree(work, ignore_errors=True)
        if work.exists():
            log.warning("could not remove the temporary copy %s", work)


def _exists(name: str) -> bool:
    try:
        process.run(("docker", "container", "inspect", "--format", "{{.Id}}", name))
    except process.CommandFailed:
        return False
    return True


def _remove_container(name: str) -> None:
    try:
        process.run(("docker", "rm", "-f", "-v", name))
    except process.CommandFailed as exc:
        log.warning("could not remove container %s: %s", name, exc)


def _running(name: str) -> bool:
    result = process.run(("docker", "inspect", "--format", "{{.State.Running}}", name),
                         ok_codes=range(256))  # fmt: skip
    return result.exit_code == 0 and result.stdout.strip() == "true"


def _exec(name: str, *argv: str) -> process.Result:
    return process.run(("docker", "exec", name, *argv), ok_codes=range(256))


def _first_error(name: str) -> str:
    """The server's first [ERROR] line (the cause; the last one is only "Aborting")."""
    logs = process.run(("docker", "logs", "--tail", "100", name), ok_codes=range(256))
    lines = [ln.strip() for ln in (logs.stderr + logs.stdout).splitlines() if ln.strip()]
    errors = [ln.split("[ERROR]", 1)[1].strip() for ln in lines if "[ERROR]" in ln]
    return (errors or lines[-1:] or [""])[0][:300]


def _check_running(name: str, db: Database, timeout: float) -> DatabaseCheck:
    deadline = time.monotonic() + timeout
    tools = TOOLS[0]
    while True:
        ping = _exec(name, tools[0], "ping")
        if ping.exit_code in (126, 127) and tools is TOOLS[0]:
            tools = TOOLS[1]  # an older image: mysqladmin, mysqlcheck
            continue
        if ping.exit_code == 0:
            break
        if not _running(name):
            why = _first_error(name)
            return DatabaseCheck(db.service, False,
                                 "server did not start" + (f": {why}" if why else ""))  # fmt: skip
        if time.monotonic() > deadline:
            return DatabaseCheck(db.service, False, f"server did not start within {timeout:.0f}s")
        time.sleep(1)
    log.info("database %s: server up, checking every table", db.service)
    check = _exec(name, tools[1], "--all-databases")
    logs = process.run(("docker", "logs", name), ok_codes=range(256))
    recovered = bool(RECOVERY.search(logs.stdout + logs.stderr))
    if recovered:
        log.warning("database %s: the server ran crash recovery on the copy", db.service)
    output = check.stdout
    bad = bad_check_lines(output)
    tables = check_tables_count(output)
    if check.exit_code != 0 and not bad:
        still = _running(name)
        detail = check.last_error_line or f"exit {check.exit_code}"
        bad = [detail + ("" if still else " (the server stopped)")]
    if bad:
        return DatabaseCheck(db.service, False, bad[0], tables, recovered)
    return DatabaseCheck(db.service, True, "", tables, recovered)


# ------------------------------------------------------------------ whole


def verify_snapshot(dest: Destination, snapshot: Snapshot, sample: float = 100,
                    database: bool = False, rng: random.Random | None = None
                    ) -> Verdict:  # fmt: skip
    """Files, then (when asked) each database; verified.json only when all passed."""
    if not 0 < sample <= 100:
        raise UsageError(f"--sample {sample:g}: give a percentage above 0, at most 100")
    began = time.monotonic()
    files = verify_files(snapshot, sample, rng)
    log.info("snapshot %s: %d of %d files re-read (%s bytes) in %.1fs; %s", snapshot.name,
             files.checked, files.listed, files.bytes_read, time.monotonic() - began,
             files.summary())  # fmt: skip
    checks: list[DatabaseCheck] = []
    warnings: list[str] = []
    if database:
        try:
            found = databases(snapshot.manifest())
        except KlinkSyncError as exc:
            checks.append(DatabaseCheck("-", False, str(exc)))
            found = []
        for db in found:
            result = check_database(dest, snapshot, db)
            checks.append(result)
            if result.crash_recovery:
                warnings.append(f"database {db.service}: the server ran crash recovery on the copy "
                                "(the datadir was not copied from a clean shutdown)")  # fmt: skip
    verdict = Verdict(snapshot.name, files, tuple(checks), database, tuple(warnings))
    if verdict.ok:
        write_verified(snapshot, files, database)
    return verdict
