"""`klink-sync live`: a backup that stops nothing. The database is copied by mariadb-backup
(MariaDB's physical hot backup) from its own image, then prepared so it starts as after a
clean shutdown; the index is copied with only its service paused, before the database's
backup point (so it never names a row the copy lacks); the documents after it (so every
row the copy holds has its file). Commits wait only while mariadb-backup holds BACKUP
STAGE BLOCK_COMMIT: that time is measured from its log and reported."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from . import docker, inflight, process, state
from .backup import Run, _iso
from .classify import image_repository
from .destination import Destination
from .destination.local import rmtree
from .errors import RunFailed, UsageError
from .models import Classified, Login, Phase, Report, VolumeClass
from .plan import CopyUnit, Plan
from .preflight import Preflight
from .stack import check_frozen, paused_stack
from .steps import Inputs, LiveInputs, Step, database_steps, live_steps

log = logging.getLogger(__name__)

DATADIR = "/var/lib/mysql"
MARIADB_IMAGES = frozenset({"mariadb", "mysql"})
OTHER_DATABASES = ("/var/lib/postgresql/data", frozenset({"postgres", "mongo", "redis"}))
# Search indexes: copied with their own service paused (a consistent set of index files).
INDEX_TARGETS = ("/opt/solr/k-search/k-search/data",)
PASSWORD_VARIABLES = ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD")
HINT = "use hot-cold (it stops the stack for the database's copy)"


@dataclass(frozen=True)
class Selection:
    """Which unit live copies how (pure: from the plan)."""

    database: CopyUnit
    service: str
    datadir: str  # the volume's target in the database container
    image: str  # as the compose file names it
    paused: tuple[CopyUnit, ...]  # copied with `paused_services` paused
    paused_services: tuple[str, ...]
    after: tuple[CopyUnit, ...]  # copied after the database, nothing paused


def _uses(plan: Plan, unit: CopyUnit) -> list[Classified]:
    return [c for c in plan.volumes
            if c.volume.type is unit.type and c.volume.source == unit.source]  # fmt: skip


def _under(target: str, path: str) -> bool:
    target = target.rstrip("/") or "/"
    return target == path or target.startswith(path + "/")


def _datadirs(plan: Plan) -> list[tuple[CopyUnit, Classified]]:
    """Cold units a MariaDB/MySQL datadir is mounted from: by container path first (stable),
    else by image (a datadir mounted elsewhere), as classify decides."""
    cold = [(u, c) for u in plan.units if u.cls is VolumeClass.COLD and u.dest != "folder"
            for c in _uses(plan, u)]  # fmt: skip
    by_path = [(u, c) for u, c in cold if _under(c.volume.target, DATADIR)]
    return by_path or [(u, c) for u, c in cold
                       if image_repository(c.volume.image) in MARIADB_IMAGES]  # fmt: skip


def _refuse_other_databases(plan: Plan) -> None:
    """A database mariadb-backup cannot copy: refused before anything is touched."""
    path, images = OTHER_DATABASES
    for c in plan.volumes:
        repository = image_repository(c.volume.image)
        if c.cls is VolumeClass.COLD and (_under(c.volume.target, path) or repository in images):
            raise UsageError(f"live copies MariaDB/MySQL databases only; service "
                             f"{c.volume.service} (image {c.volume.image or 'unknown'}) holds "
                             f"{c.volume.target}: {HINT}")  # fmt: skip


def _refuse_second_database(plan: Plan, unit: CopyUnit, service: str) -> None:
    """Another MariaDB/MySQL's files would be copied paused, raw: a crash image, where live
    promises a prepared database."""
    for c in _uses(plan, unit):
        if c.volume.service != service and image_repository(c.volume.image) in MARIADB_IMAGES:
            raise UsageError(f"live copies one MariaDB/MySQL database (service {service}); "
                             f"service {c.volume.service} (image {c.volume.image}) is another, "
                             f"at {c.volume.target}: {HINT}")  # fmt: skip


def select(plan: Plan) -> Selection:
    """The MariaDB datadir (exactly one), the units copied with their service paused (the
    index, and other services' cold volumes), and the rest, copied after the database."""
    _refuse_other_databases(plan)
    found = _datadirs(plan)
    if not found:
        raise UsageError(
            f"live needs a MariaDB/MySQL database (a volume at {DATADIR}, or a "
            f"mariadb/mysql image) and the compose file has none: {HINT}"
        )
    if len({u.dest for u, _ in found}) > 1:
        raise UsageError("live copies one MariaDB/MySQL database; the compose file has "
                         f"{len({u.dest for u, _ in found})}: {HINT}")  # fmt: skip
    database = found[0][0]
    # the service that runs the database: a sidecar mounting the datadir (read-only, say)
    # is not it
    uses = [c for u, c in found if u == database]
    use = min(uses, key=lambda c: (c.volume.read_only,
                                   image_repository(c.volume.image) not in MARIADB_IMAGES))
    service = use.volume.service
    paused, services, after = [], set(), []
    for unit in plan.units:
        if unit == database:
            continue
        _refuse_second_database(plan, unit, service)
        others = {c.volume.service for c in _uses(plan, unit)} - {service}
        index = any(_under(c.volume.target, t) for c in _uses(plan, unit) for t in INDEX_TARGETS)
        if others and (index or unit.cls is VolumeClass.COLD) and unit.dest != "folder":
            paused.append(unit)
            services |= others
        else:
            after.append(unit)
    return Selection(database, service, use.volume.target, use.volume.image, tuple(paused),
                     tuple(sorted(services)), tuple(after))  # fmt: skip


def login_from(environment: Mapping[str, str], service: str) -> Login:
    """root and the root password the database service's environment sets."""
    for name in PASSWORD_VARIABLES:
        if environment.get(name):
            return Login("root", environment[name], f"{name} of service {service}")
    raise UsageError(f"live needs the database's login: no {' or '.join(PASSWORD_VARIABLES)} "
                     f"in service {service}'s environment; set database.password_file (and "
                     "database.user) in the config")  # fmt: skip


def defaults_file_text(login: Login) -> str:
    """A MariaDB option file with the login (quoted: '#' and spaces stay the password's)."""
    for what, value in (("user", login.user), ("password", login.password)):
        if any(c in value for c in "\n\r\0"):
            raise UsageError(f"the database {what} ({login.origin}) holds a line break: "
                             "mariadb-backup cannot read it")  # fmt: skip

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"[client]\nuser={quoted(login.user)}\npassword={quoted(login.password)}\n"


# mariadb-backup's log: commits wait from the request of BLOCK_COMMIT until BACKUP STAGE END
# has run; the lock is held (the backup point) from "Acquired locks for ... BLOCK_COMMIT".
_BLOCK_START = re.compile(r"Starting BACKUP STAGE BLOCK_COMMIT")
_BACKUP_POINT = re.compile(r"Acquired locks for BACKUP STAGE BLOCK_COMMIT")
_BLOCK_ENDS = (re.compile(r"All tables unlocked"), re.compile(r"BACKUP STAGE END"))


@dataclass(frozen=True)
class CommitBlock:
    seconds: float | None  # None: the log did not show the stage
    backup_point: float | None  # when the lock was held (same clock as the lines' times)


def commit_block(lines: Sequence[tuple[float, str]]) -> CommitBlock:
    """From mariadb-backup's log lines, each with the time it arrived (its own stamps have
    whole seconds only): how long commits were blocked, and the backup point."""
    start = next((t for t, line in lines if _BLOCK_START.search(line)), None)
    point = next((t for t, line in lines if _BACKUP_POINT.search(line)), start)
    if start is None:
        return CommitBlock(None, None)
    for pattern in _BLOCK_ENDS:  # the first that shows the end, in order of exactness
        ends = [t for t, line in lines if t >= start and pattern.search(line)]
        if ends:
            return CommitBlock(ends[-1] - start, point)
    return CommitBlock(None, point)


def _scratch_name(plan: Plan) -> str:
    """One scratch folder per deployment (runs on one are serialised by its lock)."""
    return "live-database-" + hashlib.sha256(os.fsencode(str(plan.folder))).hexdigest()[:12]


def live_inputs(plan: Plan, dest: Destination, pre: Preflight, sel: Selection,
                program: str = docker.BACKUP_PROGRAMS[0]) -> LiveInputs:  # fmt: skip
    """LiveInputs from what the preflight found: the database's running container (its
    image and address), the datadir's owner on this host, the scratch folder."""
    ids = pre.survey.containers.get(sel.service, ())
    if not ids:
        raise UsageError(f"live copies the database while it runs, and service {sel.service} "
                         f"is not running: start it, or {HINT}")  # fmt: skip
    fields = process.run(docker.container_argv(ids[0])).stdout.strip().split("\t")
    image = fields[0] or sel.image  # the running server's own image, by id
    named = fields[1] if len(fields) > 1 and fields[1] else sel.image
    addresses = fields[2].split() if len(fields) > 2 else []
    st = os.stat(pre.sources[sel.database.dest].path)
    paused_ids = tuple(pre.survey.ids(sel.paused_services))
    key = _scratch_name(plan).rsplit("-", 1)[-1]  # one deployment's: runs on it are serialised
    cnf = str(state.login_path(plan.folder))
    # its own address, not 127.0.0.1: a root@'%' login matches it, where images that keep
    # a password-less root@127.0.0.1 from mariadb-install-db would refuse the password
    return LiveInputs(sel.database, sel.service, ids[0], image, program,
                      addresses[0] if addresses else "127.0.0.1", sel.datadir,
                      (st.st_uid, st.st_gid), str(dest.scratch(_scratch_name(plan))), cnf,
                      f"klink-sync-live-{key}", sel.paused, paused_ids,
                      sel.after, named)  # fmt: skip


def backup_program(image: str, name: str = "") -> str:
    """The image's mariadb-backup (or mariabackup); UsageError (exit 2) without one."""
    try:
        out = process.run(docker.which_backup_argv(image)).stdout.strip()
    except process.CommandFailed:
        out = ""
    if not out:
        raise UsageError(f"image {name or image} has no mariadb-backup (nor mariabackup): live "
                         f"copies the database with it; {HINT}")  # fmt: skip
    return os.path.basename(out.splitlines()[-1])


def live_dry_run(plan: Plan, dest: Destination, pre: Preflight, inputs: Inputs,
                 options: object) -> list[Step]:  # fmt: skip
    """The commands a live run would issue now (the image's program is not asked)."""
    live = live_inputs(plan, dest, pre, select(plan))
    return live_steps(plan, dest, inputs, live, progress=getattr(options, "progress", None)
                      is not None)  # fmt: skip


@contextmanager
def _defaults_file(path: str, login: Login) -> Iterator[None]:
    """The login in a file only root can read, for the container's --defaults-extra-file;
    removed on every path."""
    state.state_dir()  # created private if needed
    state.remove_login(path)  # a killed run's (the deployment's lock is held: not a live run's)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(defaults_file_text(login))
        yield
    finally:
        state.remove_login(path)


def _empty(path: str) -> None:
    """A scratch folder emptied (a killed run's leftovers), private."""
    folder = Path(path)
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)


class LiveRun(Run):
    """A backup run that stops nothing: see the module's docstring."""

    block = CommitBlock(None, None)

    def ready(self) -> None:
        """Before anything is created or copied: the database found, running, and its image
        holding mariadb-backup; a login to give it."""
        self.sel = select(self.plan)
        if self.options.database is None:
            raise UsageError("live needs the database's login (database.password_file, or "
                             "the compose file's MARIADB_ROOT_PASSWORD)")  # fmt: skip
        live = live_inputs(self.plan, self.dest, self.pre, self.sel)
        self.live = replace(live, program=backup_program(live.image, live.image_name))
        log.info("live: database %s (%s, %s) by %s; paused for their copy: %s", live.service,
                 live.datadir, live.image, self.live.program,
                 ", ".join(self.sel.paused_services) or "nothing")  # fmt: skip

    def execute(self) -> Report:
        self.prepare()
        self.hot_pass(skip={self.live.database.dest})
        times: dict[str, float] = {}
        copies = self._paused_round(times)
        self._database(times)
        # a document deleted after the backup point (its row is in the copy) keeps its file
        copies += self.passes.final(self.live.after, keep=True)
        self.phases[Phase.COLD.value] = copies
        return self.with_checksums(self.finish(times))

    def _paused_round(self, times: dict[str, float]) -> float:
        """The index's strict copy with only its service paused (docker pause, recorded on
        disk first, thawed on every path); before the database's backup point, so the copy
        names no row the database copy lacks."""
        units, services = self.live.paused, self.sel.paused_services
        project = self.stack.project(self.stack.survey().ids(services))
        if not project:  # no container at all: no project name to watch the events of
            return self.passes.final(units)
        # listed again now: one recreated or scaled up during the hot rounds is paused too,
        # and a one-off `compose run` of the service, which writes where it does
        ids = self.stack.running_in(project, services)
        with paused_stack(self.stack, services, ids, project) as window:
            drained = inflight.drain(self.pre.sources[u.dest].path for u in units)
            if drained:
                self.passes.warnings.append(drained)
            seconds = self.passes.final(units)
            check_frozen(self.stack, project, window, services)
        times.update(window.times)
        if ids:
            log.info("live: %s paused %.1fs", ", ".join(services),
                     window.times["unpause_end"] - window.times["pause_begin"])  # fmt: skip
        return seconds

    def _database(self, times: dict[str, float]) -> None:
        """mariadb-backup --backup, --prepare, chown, then the copy into staging; the
        scratch folder and the defaults file are removed on every path."""
        began, live = time.monotonic(), self.live
        assert self.options.database is not None
        backup, prepare, chown = database_steps(live)
        lines: list[tuple[float, str]] = []
        _empty(live.scratch)
        self._remove_containers(backup, prepare, chown)  # a killed run's, still running
        try:
            with _defaults_file(live.cnf, self.options.database):
                self._docker(backup, lambda line: lines.append((time.time(), line)))
            self.block = commit_block(lines)
            self._docker(prepare)
            self._docker(chown)
            self.passes.copy_from(live.database, live.source)
        except BaseException:
            self._remove_containers(backup, prepare, chown)  # a signal may leave one running
            raise
        finally:
            if os.path.isdir(live.scratch):
                rmtree(Path(live.scratch))
        times["backup_point"] = self.block.backup_point or time.time()
        self.phases[Phase.DATABASE.value] = time.monotonic() - began
        log.info("live: database copied in %.1fs; commits blocked %s", time.monotonic() - began,
                 "(not in the log)" if self.block.seconds is None
                 else f"{self.block.seconds:.3f}s")  # fmt: skip

    @staticmethod
    def _remove_containers(*steps: Step) -> None:
        for step in steps:
            process.run(docker.remove_argv(step.argv[step.argv.index("--name") + 1]),
                        ok_codes=range(256))  # fmt: skip

    def _docker(self, step: Step, on_stderr: Callable[[str], None] | None = None) -> None:
        """One database step; a failure is one line (the login's password masked)."""
        try:
            process.run(step.argv, on_stderr=on_stderr)
        except process.CommandFailed as exc:
            detail = exc.result.last_error_line if exc.result is not None else str(exc)
            raise RunFailed(f"{step.why}: {self.live.program} failed: {detail or exc}; nothing "
                            "was promoted, nothing was stopped") from None  # fmt: skip

    def reported(self, report: Report) -> Report:
        return replace(report, commit_block_seconds=self.block.seconds or 0.0)

    def manifest_extra(self) -> dict:
        """How the database was copied: never the login."""
        point = self.block.backup_point
        return {"live": {
            "database_service": self.live.service, "image": self.live.image_name,
            "image_id": self.live.image,
            "tool": self.live.program, "datadir": self.live.datadir,
            "backup_point": _iso(point) if point else None,
            "commit_block_seconds": self.block.seconds,
            "paused_services": list(self.sel.paused_services),
        }}  # fmt: skip
