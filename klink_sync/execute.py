"""Walk a Plan: hot pass, stop, cold pass, start, then finish with the stack up."""

from __future__ import annotations

import functools
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import __version__, checksums, destination, fileindex, process, rsync
from .destination import Destination
from .errors import KlinkSyncError, RunFailed, UsageError
from .models import Phase, VolumeClass, VolumeType
from .plan import CopyUnit, Mode, Plan
from .retention import Retention
from .stack import Stack, signals_raise, stopped_stack

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """A copy unit's source as found on this host at run time."""

    path: str
    is_file: bool = False


@dataclass(frozen=True)
class PassResult:
    phase: Phase
    unit: str
    seconds: float
    exit_code: int
    stats: rsync.RsyncStats
    refreshed: int = 0  # files copied again because their ctime moved
    warning: str = ""
    round: int = 1  # hot passes repeat while they still move much


@dataclass(frozen=True)
class Report:
    mode: Mode
    result: str  # "ok" or "failed"
    dest: str
    snapshot: str | None
    downtime_seconds: float
    phases: Mapping[str, float]  # phase -> seconds
    services_before: tuple[str, ...]
    services_after: tuple[str, ...]
    passes: tuple[PassResult, ...] = ()
    warnings: tuple[str, ...] = ()
    error: str = ""
    pruned: tuple[str, ...] = ()  # snapshots removed by the retention rules after the run
    checksums: Mapping[str, object] = field(default_factory=dict)  # checksums.ChecksumResult

    def bytes_moved(self, phase: Phase) -> int:
        return sum(p.stats.transferred_size for p in self.passes if p.phase is phase)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passes"] = [
            {**asdict(p), "phase": p.phase.value, "stats": asdict(p.stats)} for p in self.passes
        ]
        data["mode"] = self.mode.value
        data["bytes_moved"] = {ph.value: self.bytes_moved(ph) for ph in (Phase.HOT, Phase.COLD)}
        return data


def resolve_sources(plan: Plan) -> dict[str, Source]:
    """Host paths of every unit; named volumes are asked of Docker (read-only)."""
    sources: dict[str, Source] = {}
    for unit in plan.units:
        path = unit.source
        if unit.type is VolumeType.VOLUME:
            path = _volume_mountpoint(unit)
        if not os.path.exists(path):
            raise UsageError(f"{unit.source}: source of {unit.dest} does not exist")
        sources[unit.dest] = Source(path, os.path.isfile(path))
    return sources


def _volume_mountpoint(unit: CopyUnit) -> str:
    for name in unit.volume_names:
        try:
            out = process.run(("docker", "volume", "inspect", "--format", "{{.Mountpoint}}", name))
        except process.CommandFailed:
            continue
        return out.stdout.strip()
    tried = ", ".join(unit.volume_names)
    raise UsageError(f"named volume '{unit.source}' not found in Docker (tried {tried})")


def landing(unit: CopyUnit, source: Source) -> str:
    """The folder in a snapshot that receives the unit's files.

    A file bound from inside the setup folder keeps its place there; any other
    unit fills its own folder (a file from elsewhere lands inside volumes/<name>/).
    """
    if source.is_file and unit.dest.startswith("folder/"):
        return os.path.dirname(unit.dest)
    return unit.dest


def copy_command(
    unit: CopyUnit,
    source: Source,
    staging: Path,
    latest: Path | None,
    itemize: bool = False,
    progress: bool = False,
    xattrs: bool = True,
) -> tuple:
    into = landing(unit, source)
    link_dest = None
    if latest is not None and (latest / into).is_dir():
        link_dest = str(latest / into)
    return rsync.copy_argv(
        source.path,
        str(staging / into),
        link_dest=link_dest,
        excludes=unit.excludes,
        source_is_file=source.is_file,
        itemize=itemize,
        progress=progress,
        patterns=unit.patterns,
        xattrs=xattrs,
    )


def dry_run_commands(plan: Plan, dest: Destination, stack: Stack, sources: Mapping[str, Source]):
    """The exact commands a run would issue, in order (for --dry-run)."""
    latest = dest.latest()
    latest_path = latest.path if latest else None
    staging = dest.staging
    hot = plan.hot_pass_units if plan.mode is Mode.HOT_COLD else ()
    for unit in hot:
        yield Phase.HOT, copy_command(unit, sources[unit.dest], staging, latest_path, itemize=True)
    yield Phase.STOP, stack.argv("stop", "-t", str(plan.stop_timeout))
    for unit in plan.units:  # side by side; a unit filled hot needs no --link-dest
        link = None if unit in hot else latest_path
        yield Phase.COLD, copy_command(unit, sources[unit.dest], staging, link)
    yield Phase.START, stack.argv("start", "<services running before>")


class _Countdown:
    """Calls `then` once, when it has been told `count` times (from any thread)."""

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self.left, self.then, self.lock = count, then, threading.Lock()

    def __call__(self) -> None:
        with self.lock:
            self.left -= 1
            last = self.left == 0
        if last:
            self.then()


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond the Plan: the config's safety and tuning knobs, and the UI."""

    retention: Retention | None = None  # prune after a successful run
    require_mount: bool = False
    allow_unclean_stop: bool = False
    start_timeout: int = 300  # seconds the services get to run (and be healthy) again
    hot_rounds: int = 3  # hot passes at most
    hot_repeat_bytes: int = 16 * 2**20  # another hot round when this much changed during one
    progress: Callable[[str, int, int, str], None] | None = None  # (what, bytes, %, rate)
    # Downtime cuts turned off, to measure what each one brings (scripts/bench.py;
    # KLINK_SYNC_DISABLE): rounds, seed, parallel, plain, write-back. Never needed otherwise.
    disabled: frozenset[str] = frozenset()


CUTS = ("rounds", "seed", "parallel", "plain", "write-back")
WRITE_BACK_FROM = 128 * 2**20  # less waiting for the disk: the stop does not queue behind it


def unwritten_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Data written but not yet on disk, system-wide (Dirty + Writeback); None: unknown."""
    try:
        with open(meminfo, encoding="ascii") as src:
            fields = dict(line.split(":", 1) for line in src if ":" in line)
        return sum(int(fields[k].split()[0]) * 1024 for k in ("Dirty", "Writeback"))
    except (OSError, KeyError, ValueError, IndexError):
        return None


class Run:
    """One backup run: holds what the phases share and the results they add."""

    def __init__(
        self, plan: Plan, dest: Destination, stack: Stack, options: RunOptions | None = None
    ):
        self.plan, self.dest, self.stack = plan, dest, stack
        options = options or RunOptions()
        self.allow_unclean_stop = options.allow_unclean_stop
        self.start_timeout = options.start_timeout
        self.progress = options.progress
        self.off = options.disabled
        self.hot_rounds = 1 if "rounds" in self.off else options.hot_rounds
        self.hot_repeat_bytes = options.hot_repeat_bytes
        self.passes: list[PassResult] = []
        self.warnings: list[str] = []
        self.phases: dict[str, float] = {}
        self.unsafe = False  # a database was killed at the stop and allow_unclean_stop is set
        # what the thread started with the stack's start hands to finish (local only)
        self.sums_thread: threading.Thread | None = None
        self.early_sums: checksums.ChecksumResult | BaseException | None = None
        self.index_saved = False

    # --- The destination's side of a run, for a local folder. remote.RemoteRun (ssh) overrides
    # --- these methods and _drop_copies (and extends hot_pass with one walk of its staging).

    def _check_apart(self) -> None:
        destination.check_apart(self.dest.root, [s.path for s in self.sources.values()])

    def _previous_walks(self) -> dict[str, fileindex.Scan]:
        """latest, and the walks its run saved (read beside the compose checks)."""
        latest = self.dest.latest()
        self.latest_path = latest.path if latest else None
        index = self.latest_path / destination.INDEX if self.latest_path else None
        return fileindex.load(index) if index else {}

    def _open_destination(self) -> None:
        """A fresh staging folder, room for the copies."""
        self.staging = destination.fresh_staging(self.dest)
        destination.check_free_space(self.dest.root, self._bytes_needed())

    def _copy_argv(
        self, unit: CopyUnit, source: Source, latest: Path | None, itemize: bool = False,
        progress: bool = False, xattrs: bool = True,
    ) -> tuple:  # fmt: skip
        (self.dest.staging / landing(unit, source)).parent.mkdir(parents=True, exist_ok=True)
        return copy_command(unit, source, self.dest.staging, latest, itemize=itemize,
                            progress=progress, xattrs=xattrs)  # fmt: skip

    def _refresh_copy(self, root: str, into: str, names: list[str]) -> process.Result:
        """Copy `names` (relative to root) again into staging/into, whatever their mtime."""
        (self.dest.staging / into).parent.mkdir(parents=True, exist_ok=True)
        # a list of its own: the units of a cold pass run side by side
        fd, name = tempfile.mkstemp(prefix=".refresh-list-", dir=self.dest.root)
        os.close(fd)
        listing = Path(name)
        fileindex.write_null_list(listing, names)
        try:
            return process.run(rsync.refresh_argv(root, str(self.dest.staging / into),
                                                  str(listing)))  # fmt: skip
        finally:
            listing.unlink()

    def _stat_copy(self, path: str) -> os.stat_result | None:
        """A regular file in staging or latest, as the ctime check needs it."""
        return fileindex.lstat_file(path)

    def _complete(self, manifest: dict, when: float, suffix: str, move_latest: bool):
        """Index (unless saved while the stack started), manifest (last), promotion."""
        if not self.index_saved:
            fileindex.save(self.staging / destination.INDEX, self.cold_scans)
        destination.write_json_atomic(self.staging / destination.MANIFEST, manifest)
        return destination.promote(self.dest, when, suffix, move_latest)

    def _sums_while_starting(self) -> None:
        """Save the index, hash the staged files and write SHA256SUMS while the stack
        starts (its slowest part, ~2 s of idle waiting here), in a thread at the lowest CPU
        priority; the snapshot is these files. A failed save is tried again, and fails, in
        _complete; failed checksums are a warning (with_checksums)."""

        def work() -> None:
            checksums.lowest_priority()
            try:
                fileindex.save(self.staging / destination.INDEX, self.cold_scans)
                self.index_saved = True
            except OSError:
                pass
            try:
                entries, result = checksums.compute(self.staging, self.latest_path, True)
                checksums.write_sums_file(self.staging, entries)  # promoted with the rest
                self.early_sums = result
            except (OSError, KlinkSyncError) as exc:
                self.early_sums = exc

        self.sums_thread = threading.Thread(target=work, name="checksums", daemon=True)
        self.sums_thread.start()

    def _await_sums(self) -> None:
        """Before the promotion renames the staging folder under the hashing thread."""
        if self.sums_thread is not None:
            self.sums_thread.join()

    def _write_sums(self, name: str) -> checksums.ChecksumResult:
        done = self.early_sums
        if isinstance(done, BaseException):
            raise done
        if done is not None:
            return done  # written into staging while the stack started
        return checksums.write_sums(self.dest.snapshots_dir / name, self.latest_path)

    # --- the run itself

    def _copy(
        self, phase: Phase, unit: CopyUnit, source: Source, latest: Path | None, round: int = 1,
        refreshed: int = 0, xattrs: bool = True,
    ) -> tuple[set[str], rsync.RsyncStats]:  # fmt: skip
        """One rsync of one unit; returns the files it wrote and its statistics."""
        hot = phase is Phase.HOT
        ok = (0, *rsync.HOT_WARNING_CODES) if hot else (0,)
        began = time.monotonic()
        show = self.progress
        argv = self._copy_argv(unit, source, latest, itemize=hot, progress=show is not None,
                               xattrs=xattrs)  # fmt: skip

        def on_output(line: str) -> None:
            update = rsync.parse_progress(line)
            if update and show:
                show(label, *update)

        label = f"{phase.value} {unit.dest}" + (f" #{round}" if round > 1 else "")
        result = process.run(argv, ok_codes=ok, on_output=on_output if show else None)
        warning = rsync.HOT_WARNING_CODES.get(result.exit_code, "")
        if warning:
            self.warnings.append(f"hot pass {unit.dest}: {warning}")
        stats = rsync.parse_stats(result.stdout)
        if show:  # done, even with nothing to move (rsync then shows 0%)
            show(label, stats.transferred_size, 100, "")
        self.passes.append(
            PassResult(phase, unit.dest, time.monotonic() - began, result.exit_code, stats,
                       refreshed=refreshed, warning=warning, round=round)
        )  # fmt: skip
        log.info("%s pass %s%s: %d files, %d bytes copied in %.1fs", phase.value, unit.dest,
                 f" (round {round})" if round > 1 else "", stats.regular_files_transferred,
                 stats.transferred_size, time.monotonic() - began)  # fmt: skip
        return (rsync.parse_received(result.stdout) if hot else set()), stats

    def _refresh(self, unit: CopyUnit, source: Source, names: list[str]) -> None:
        """Copy again the files rsync's quick check would wrongly keep."""
        if not names:
            return
        root = os.path.dirname(source.path) if source.is_file else source.path
        began = time.monotonic()
        result = self._refresh_copy(root, landing(unit, source), names)
        self.passes.append(
            PassResult(Phase.COLD, unit.dest + " (ctime refresh)", time.monotonic() - began,
                       result.exit_code, rsync.parse_stats(result.stdout), refreshed=len(names))
        )  # fmt: skip
        log.info("cold pass %s: %d files changed without rsync seeing it, copied again",
                 unit.dest, len(names))  # fmt: skip

    def prepare(self) -> None:
        """Preflight, before anything is stopped: every check that can fail does so here."""
        began = time.monotonic()
        self.sources = resolve_sources(self.plan)
        self._check_apart()
        cold = sorted({c.volume.service for c in self.plan.volumes if c.cls is VolumeClass.COLD})
        # One walk of every source (the free-space estimate, and the first hot round's
        # reference) beside the compose call (it checks the compose files as `config -q`
        # does), side by side.
        with ThreadPoolExecutor(max_workers=3) as pool:
            checks = [pool.submit(process.run, ("rsync", "--version")),
                      pool.submit(self.stack.survey)]  # fmt: skip
            walks = pool.submit(self._first_walks)
        for check in checks:
            check.result()  # the first failure in this order, whichever ended first
        self.survey = checks[-1].result()
        self.before = self.survey.running
        log.info("running before the backup: %s", ", ".join(self.before) or "nothing")
        self.cold_services = [s for s in cold if s in self.before]
        self.cold_ids = self.survey.ids(self.cold_services)  # for check_clean_stop
        self.previous, self.first_scans = walks.result()
        self._open_destination()
        self.hot_refs: dict[str, fileindex.HotReference] = {}
        self.cold_scans: dict[str, fileindex.Scan] = {}
        self.phases[Phase.PREFLIGHT.value] = time.monotonic() - began

    def _first_walks(self) -> tuple[dict[str, fileindex.Scan], dict[str, fileindex.Scan]]:
        """The previous run's walks, then this run's first: xattrs are asked (in case the
        stack runs, for a hot pass) except of files unchanged since a walk that found none."""
        previous = self._previous_walks()
        xattrs = self.plan.mode is Mode.HOT_COLD
        scans = {}
        for unit in self.plan.units:
            prev = previous.get(unit.dest)
            if prev is None or prev.root != self.sources[unit.dest].path or prev.xattrs:
                prev = None
            scans[unit.dest] = self._scan(unit, xattrs, prev)
        return previous, scans

    def _scan(
        self, unit: CopyUnit, xattrs: bool = False,
        known: fileindex.HotReference | fileindex.Scan | None = None,
    ) -> fileindex.Scan:  # fmt: skip
        """A walk of the unit's source; see fileindex.scan for `xattrs`."""
        return fileindex.scan(self.sources[unit.dest].path, unit.excludes, xattrs,
                              known.unchanged if known is not None else None)  # fmt: skip

    def _bytes_needed(self) -> int:
        """What the copies would write: every file that is new, or has another size or
        mtime, since the last run's walk (the rest are hard links), plus a margin."""
        total = 0
        for unit in self.plan.units:
            scan = self.first_scans[unit.dest]
            prev = self.previous.get(unit.dest)
            known = prev.files if prev is not None and prev.root == scan.root else {}
            total += sum(state[3] for rel, state in scan.files.items()
                         if known.get(rel, (0, 0, -1, -1))[2:] != state[2:])  # fmt: skip
        return int(total * 1.05) + 16 * 2**20

    def check_clean_stop(self) -> None:
        """A database killed at the stop timeout may need crash recovery: not a clean copy."""
        killed = self.stack.killed(self.cold_services, self.cold_ids)
        if not killed:
            return
        what = (f"{', '.join(killed)} did not stop cleanly (killed, e.g. after the "
                f"{self.plan.stop_timeout}s stop timeout)")  # fmt: skip
        if not self.allow_unclean_stop:
            raise RunFailed(f"{what}: its data may need crash recovery, snapshot not promoted "
                            "(raise stop_timeout, or set allow_unclean_stop: true)")  # fmt: skip
        self.warnings.append(f"{what}: snapshot marked unsafe")
        self.unsafe = True

    def hot_pass(self) -> None:
        if self.plan.mode is not Mode.HOT_COLD or not self.before:
            return  # a stopped stack is copied cold only
        began = time.monotonic()
        # Cold volumes are copied too, as a seed only: the strict cold pass corrects every
        # byte, but moves only what changed since (a database's untouched tables, say).
        units = self.plan.hot_units if "seed" in self.off else self.plan.hot_pass_units
        scans = self.first_scans
        for round in range(1, self.hot_rounds + 1):
            if round > 1:
                # Another round only pays when much changed during the last one: what
                # changes during this one is left to the cold pass all the same.
                pending = self._changed_bytes([u for u in units if u.hot], scans)
                log.info("hot pass: %d bytes changed during round %d", pending, round - 1)
                if pending < self.hot_repeat_bytes:
                    break  # little left for the cold pass: stop now
            again = round < self.hot_rounds
            copied = _Countdown(len(units), self._start_write_back)
            walks = self._side_by_side([functools.partial(
                self._hot_unit, unit, round, scans[unit.dest], again, copied) for unit in units])
            scans = {unit.dest: walk for unit, walk in zip(units, walks, strict=True)}
        self._write_back()
        self.phases[Phase.HOT.value] = time.monotonic() - began

    def _hot_unit(
        self, unit: CopyUnit, round: int, scan: fileindex.Scan, walk_after: bool,
        copied: Callable[[], None],
    ) -> fileindex.Scan | None:  # fmt: skip
        """One unit's hot copy, `scan` its reference; then, if another round may follow,
        a walk of it (what decides that round, and its reference) while others still copy.
        `copied` is told when the copy is done."""
        src = self.sources[unit.dest]
        reference = self.hot_refs.setdefault(unit.dest, fileindex.HotReference())
        latest = self.latest_path
        # Staging is full: no --link-dest (3x slower over many hard links), once the
        # copies of files changed since are gone (rsync would change a kept file's
        # attributes in place, through a hard link to an older snapshot).
        if round > 1 and self._drop_copies(landing(unit, src), reference.changed(scan)):
            latest = None
        written, _ = self._copy(Phase.HOT, unit, src, latest, round)
        copied()
        reference.record(scan, None if round == 1 else written)
        return self._scan(unit, not reference.xattrs, reference) if walk_after else None

    def _side_by_side(self, jobs: list[Callable]) -> list:
        """The units of a pass side by side: the pass takes its slowest unit's time."""
        if "parallel" in self.off:
            return [job() for job in jobs]
        return process.run_many(jobs)

    def _changed_bytes(self, units: list[CopyUnit], scans: Mapping[str, fileindex.Scan]) -> int:
        """Bytes of the files changed since their last hot copy (new ones included)."""
        total = 0
        for unit in units:
            scan = scans[unit.dest]
            total += sum(scan.files[rel][3] for rel in self.hot_refs[unit.dest].changed(scan))
        return total

    def _start_write_back(self) -> None:
        """Once a round's copies are done, the disk writes them back beside the walks."""
        if "write-back" not in self.off:
            threading.Thread(target=os.sync, name="write-back", daemon=True).start()

    def _write_back(self) -> None:
        """Flush what the hot pass wrote now: the database's fsyncs at its stop would
        otherwise wait behind gigabytes of it, inside the downtime."""
        if "write-back" in self.off:
            return
        waiting = unwritten_bytes()
        if waiting is not None and waiting < WRITE_BACK_FROM:
            log.info("hot pass: %d bytes wait for the disk, too few to flush now", waiting)
            return
        began = time.monotonic()
        os.sync()
        log.info("hot pass written back to disk in %.1fs", time.monotonic() - began)

    def cold_pass(self, check_stop: bool = False) -> None:
        """With the stack stopped: copy everything, strict, then what rsync cannot see.

        Side by side, one job per unit: the downtime is the slowest unit's, not the sum.
        `check_stop` runs check_clean_stop beside them (its failure ends the copies).
        """
        began = time.monotonic()
        jobs: list = [functools.partial(self._cold_unit, unit) for unit in self.plan.units]
        if check_stop:
            jobs.append(self.check_clean_stop)
        self._side_by_side(jobs)
        self.phases[Phase.COLD.value] = time.monotonic() - began

    def _cold_unit(self, unit: CopyUnit) -> None:
        """Walk (stack stopped), copy strictly, then copy again what rsync cannot see."""
        src = self.sources[unit.dest]
        hot = self.hot_refs.get(unit.dest)
        # A unit the hot pass filled, where no walk found an xattr or ACL, is copied without
        # -A -X (twice as fast over unchanged files) if none appeared since either.
        plain = hot is not None and not hot.xattrs and "plain" not in self.off
        now = self.cold_scans[unit.dest] = self._scan(unit, plain, hot)
        plain = plain and not now.xattrs
        prev = self.previous.get(unit.dest)
        into = landing(unit, src)
        stale = fileindex.files_to_refresh(
            now,
            str(self.staging / into),
            str(self.latest_path / into) if self.latest_path else None,
            hot=hot,
            previous=prev if prev and prev.root == src.path else None,
            lstat=self._stat_copy,
        )
        dropped = 0
        if hot is not None:
            # Staged copies that may be stale, and (copying plain) copies of every file that
            # changed since the hot pass, are dropped: the strict copy below, with no
            # --link-dest, copies them whole, with no second rsync inside the downtime.
            drop = sorted({*stale, *hot.changed(now)}) if plain else stale
            if drop and self._drop_copies(into, drop):
                if stale:
                    log.info("cold pass %s: %d files changed without rsync seeing it, copied "
                             "again", unit.dest, len(stale))  # fmt: skip
                dropped, stale = len(stale), []
            elif drop:
                plain = False  # copies kept with their attributes: rsync must compare them
        # Before the strict copy: it would change attributes in place, through a stale copy
        # hard-linked to an older snapshot; the refresh replaces such copies first.
        self._refresh(unit, src, stale)
        # A unit the hot pass filled needs no --link-dest (3x slower over many hard links).
        self._copy(Phase.COLD, unit, src, None if hot is not None else self.latest_path,
                   refreshed=dropped, xattrs=not plain)  # fmt: skip

    def _drop_copies(self, into: str, names: list[str]) -> bool:
        """Remove these staged copies (a hard link's other names keep their data)."""
        for rel in names:
            try:
                os.unlink(self.staging / into / rel)
            except FileNotFoundError:
                pass
        return True

    def finish(
        self, times: Mapping[str, float], kind: str = "backup", after: tuple[str, ...] | None = None
    ) -> Report:
        """With the stack up again: index, manifest (last), promotion. `after`: the services
        the start's wait saw running (None: ask compose)."""
        self.phases[Phase.STOP.value] = times["stop_end"] - times["stop_begin"]
        self.phases[Phase.START.value] = times["start_end"] - times["start_begin"]
        downtime = times["start_end"] - times["stop_begin"]
        began = time.monotonic()
        after = self.stack.running_services() if after is None else after
        report = Report(self.plan.mode, "ok", str(self.dest.root), None, downtime, self.phases,
                        self.before, after, tuple(self.passes), tuple(self.warnings))  # fmt: skip
        manifest = build_manifest(self.plan, report, self.sources, times)
        manifest["kind"] = kind
        manifest["unsafe"] = self.unsafe
        is_backup = kind == "backup"
        suffix = "" if is_backup else f"-{kind}"
        self._await_sums()
        snapshot = self._complete(manifest, times["stop_begin"], suffix, is_backup)
        self.phases[Phase.FINISH.value] = time.monotonic() - began
        order = [p.value for p in Phase]
        self.phases = dict(sorted(self.phases.items(), key=lambda kv: order.index(kv[0])))
        log.info("snapshot %s complete; downtime %.1fs", snapshot.name, downtime)
        return Report(**{**report.__dict__, "snapshot": snapshot.name, "phases": self.phases})

    def execute(self) -> Report:
        self.prepare()
        self.hot_pass()
        self.first_scans.clear()  # held by the hot references now, where needed (memory)
        known = self.survey.ids(self.before)
        with stopped_stack(self.stack, self.before, self.plan.stop_timeout, self.start_timeout,
                           known=known) as window:
            self.cold_pass(check_stop=True)
            window.on_start = self._sums_while_starting
        return self.with_checksums(self.finish(window.times, after=window.running_after))

    def with_checksums(self, report: Report) -> Report:
        """SHA256SUMS for `verify`, written with the stack up (never inside the stop).

        A failure here leaves a complete snapshot without checksums: a warning, not a failed run.
        """
        try:
            result = self._write_sums(str(report.snapshot))
        except (OSError, KlinkSyncError) as exc:
            warning = f"{checksums.SUMS} not written: {exc}"
            log.warning("%s", warning)
            return Report(**{**report.__dict__, "checksums": {"error": str(exc)},
                             "warnings": (*report.warnings, warning)})  # fmt: skip
        log.info("%s: %d files, %d read (%d bytes), %d reused from the previous snapshot in %.1fs",
                 checksums.SUMS, result.files, result.hashed_files, result.hashed_bytes,
                 result.reused, result.seconds)  # fmt: skip
        return Report(**{**report.__dict__, "checksums": asdict(result)})


def build_manifest(
    plan: Plan, report: Report, sources: Mapping[str, Source], times: Mapping[str, float]
) -> dict:
    """Everything a restore needs to know, and nothing secret."""
    cold = {p.unit: p.stats for p in report.passes if p.phase is Phase.COLD}
    moved: dict[str, dict[str, int]] = {}
    for p in report.passes:
        unit = p.unit.removesuffix(" (ctime refresh)")
        moved.setdefault(unit, {}).setdefault(p.phase.value, 0)
        moved[unit][p.phase.value] += p.stats.transferred_size
    units = []
    for unit in plan.units:
        stats = cold.get(unit.dest, rsync.RsyncStats())
        units.append({
            "dest": unit.dest, "source": unit.source, "host_path": sources[unit.dest].path,
            "type": unit.type.value, "class": unit.cls.value, "reason": unit.reason,
            "excludes": list(unit.excludes), "is_file": sources[unit.dest].is_file,
            "volume_names": list(unit.volume_names), "patterns": list(unit.patterns),
            "files": stats.files, "bytes": stats.total_size,
            "bytes_transferred": moved.get(unit.dest, {}),
        })  # fmt: skip
    return {
        "format": 1,
        "tool": f"klink-sync {__version__}",
        "host": socket.gethostname(),
        "mode": plan.mode.value,
        "result": report.result,
        "folder": str(plan.folder),
        "compose_files": [str(f) for f in plan.compose_files],
        "project": plan.project_name,
        "volumes": [
            {"service": c.volume.service, "source": c.volume.source, "target": c.volume.target,
             "type": c.volume.type.value, "class": c.cls.value, "reason": c.reason,
             "image": c.volume.image}
            for c in plan.volumes
        ],  # fmt: skip
        "units": units,
        "times": {k: _iso(v) for k, v in times.items()},
        "phases_seconds": dict(report.phases),
        "downtime_seconds": report.downtime_seconds,
        "services_before": list(report.services_before),
        "services_after": list(report.services_after),
        "warnings": list(report.warnings),
    }


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


def run_backup(
    plan: Plan,
    dest_root: Path,
    stack: Stack,
    options: RunOptions | None = None,
) -> Report:
    """Lock the destination and run; failures leave every earlier snapshot untouched.

    With retention rules, prune once the new snapshot is complete (stack up).
    """
    # every refusal before anything is created, stopped or locked
    sources = resolve_sources(plan)
    destination.check_apart(dest_root, [s.path for s in sources.values()])
    options = options or RunOptions()
    dest = destination.prepare(dest_root, options.require_mount)
    try:
        # a signal before the stop ends the run cleanly too (nothing to start again)
        with signals_raise(), destination.deployment_locked(plan.folder), destination.locked(dest):
            report = Run(plan, dest, stack, options).execute()
            retention = options.retention
            if retention is not None and not retention.empty:
                pruned = destination.prune(dest, retention, dry_run=False)
                report = Report(**{**report.__dict__, "pruned": tuple(pruned["remove"])})
            return report
    except OSError as exc:  # a disk full or gone, a folder vanished: one line, exit 1
        where = exc.filename or dest_root
        raise RunFailed(f"{where}: {exc.strerror or exc}; nothing was promoted") from exc



