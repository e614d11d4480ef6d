"""Does a snapshot's database start? The `--database` half of `klink-sync verify`.

A throwaway MariaDB/MySQL container, no network, on a `cp -a` copy of the
snapshot's datadir (the snapshot itself is never written), then
`mariadb-check --all-databases`. The server runs with skip-grant-tables, so no
password is needed or read: the copy is private and the container has no network.
Every docker command line comes from docker.py; this module only decides.
Paths in, verdict out: it knows nothing of destinations or snapshots.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import docker, process
from .errors import KlinkSyncError
from .stack import signals_raise

log = logging.getLogger(__name__)

MYSQL_TARGET = "/var/lib/mysql"
START_TIMEOUT = 120.0
# Loaded after the image's own files: no grant checks, no network listener.
VERIFY_CNF = "[mysqld]\nskip-grant-tables\nskip-networking\n"
CNF_TARGET = "/etc/mysql/conf.d/zz-klink-sync-verify.cnf"
VERIFY_LABEL = "klink-sync.verify=1"  # finds a container a killed run left behind
TOOLS = (("mariadb-admin", "mariadb-check"), ("mysqladmin", "mysqlcheck"))  # new, old names
CHECK_FINE = ("OK", "Table is already up to date")
NOT_SUPPORTED = "The storage engine for the table doesn't support check"
_STATUS = re.compile(r"^(error|warning|note|info|status)\s*:\s*(.*)$", re.I)
RECOVERY = re.compile(r"crash recovery|not shut ?down normally|Recovering after a crash", re.I)


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
    mounts = (f"{datadir}:{MYSQL_TARGET}", f"{cnf}:{CNF_TARGET}:ro")
    return docker.run_argv(name, image, label=VERIFY_LABEL, network="none", volumes=mounts)


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
    """How many tables `mariadb-check` named: a check of no table at all proves nothing."""
    return sum(1 for line in output.splitlines() if line.strip() and not _STATUS.match(line.strip())
               and not line[:1].isspace())  # fmt: skip


def _workdir(parent: Path | None) -> Path:
    """Private scratch space in `parent` (next to the snapshots: room for a datadir),
    else the temp dir."""
    if parent is not None:
        try:
            return Path(tempfile.mkdtemp(prefix=".verify-", dir=parent))
        except OSError:
            pass
    return Path(tempfile.mkdtemp(prefix="klink-sync-verify-"))


def check_database(datadir: Path, workdir_parent: Path | None, db: Database,
                   timeout: float = START_TIMEOUT) -> DatabaseCheck:  # fmt: skip
    """Start the image on a copy of `datadir` (the snapshot's, on this host) and check
    every table; always clean up. The copy goes in a `.verify-*` folder of
    `workdir_parent` (None or not writable: the temp dir)."""
    if not datadir.is_dir():
        return DatabaseCheck(db.service, False, f"{db.path} is missing from the snapshot")
    work = _workdir(workdir_parent)
    name = f"klink-sync-verify-{secrets.token_hex(4)}"
    started = False
    try:
        with signals_raise():
            cnf = work / "verify.cnf"
            cnf.write_text(VERIFY_CNF)
            cnf.chmod(0o644)
            copy = work / "datadir"
            process.run(("cp", "-a", "--", str(datadir), str(copy)))  # keeps the owner: not docker
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
    """Whether `docker run` made the container although it failed (or was interrupted)."""
    try:
        process.run(docker.container_exists_argv(name))
    except process.CommandFailed:
        return False
    return True


def _remove_container(name: str) -> None:
    """Remove the throwaway server; a failure is only warned about (the verdict stands)."""
    try:
        process.run(docker.remove_argv(name))
    except process.CommandFailed as exc:
        log.warning("could not remove container %s: %s", name, exc)


def _running(name: str) -> bool:
    """Whether the server still runs: a stopped one will never answer a ping."""
    result = process.run(docker.running_argv(name), ok_codes=range(256))
    return result.exit_code == 0 and result.stdout.strip() == "true"


def _exec(name: str, *argv: str) -> process.Result:
    """A tool inside the server's container; its exit code is for the caller to judge."""
    return process.run(docker.exec_argv(name, *argv), ok_codes=range(256))


def _first_error(name: str) -> str:
    """The server's first [ERROR] line (the cause; the last one is only "Aborting")."""
    logs = process.run(docker.logs_argv(name, tail=100), ok_codes=range(256))
    lines = [ln.strip() for ln in (logs.stderr + logs.stdout).splitlines() if ln.strip()]
    errors = [ln.split("[ERROR]", 1)[1].strip() for ln in lines if "[ERROR]" in ln]
    return (errors or lines[-1:] or [""])[0][:300]


def _check_running(name: str, db: Database, timeout: float) -> DatabaseCheck:
    """Wait for the server to answer (or to give up), then check every table."""
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
    logs = process.run(docker.logs_argv(name), ok_codes=range(256))
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
