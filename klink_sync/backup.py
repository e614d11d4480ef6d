"""A backup run: preflight, hot pass, stop, cold pass, start, then finish with the stack up.

Destination-blind: the same story for a local folder and one over ssh."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, replace

from . import __version__, checksums, inflight
from .config import DEFAULT_START_TIMEOUT
from .destination import INDEX, MANIFEST, STAGING, Destination, Snapshot
from .errors import KlinkSyncError, RunFailed, UsageError
from .models import Login, Mode, Phase, Report, Source
from .passes import Cuts, Passes, Progress
from .plan import Plan
from .preflight import Preflight, preflight, resolve_sources
from .recover import recover
from .retention import Retention
from .stack import Stack, Survey, check_frozen, paused_stack, signals_raise, stopped_stack
from .state import deployment_locked
from .steps import Step, backup_steps, landing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond the Plan: the config's safety and tuning knobs, and the UI."""

    retention: Retention | None = None  # prune after a successful run
    require_mount: bool = False
    allow_unclean_stop: bool = False
    start_timeout: int = DEFAULT_START_TIMEOUT
    progress: Progress | None = None
    cuts: Cuts = Cuts()
    database: Login | None = None  # live: mariadb-backup's login (config or compose)


class Run:
    """One backup run (or a restore's safety snapshot): what its phases share."""

    def __init__(self, plan: Plan, dest: Destination, stack: Stack,
                 options: RunOptions | None = None):  # fmt: skip
        self.plan, self.dest, self.stack = plan, dest, stack
        self.options = options or RunOptions()
        self.phases: dict[str, float] = {}
        self.unsafe = False  # a database was killed at the stop and allow_unclean_stop is set
        # what the thread started with the stack's start hands to finish
        self.sums_thread: threading.Thread | None = None
        self.early_sums: checksums.ChecksumResult | BaseException | None = None
        self.index_saved = False

    def prepare(self) -> None:
        """Preflight, then a fresh staging folder and room for the copies."""
        began = time.monotonic()
        self.pre: Preflight = preflight(self.plan, self.dest, self.stack)
        self.ready()
        self.passes = Passes(self.plan, self.dest, self.pre, self.options.cuts,
                             self.options.progress)  # fmt: skip
        folders = {landing(u, self.pre.sources[u.dest]) for u in self.plan.units}
        self.dest.fresh_staging(sorted({f.rpartition("/")[0] for f in folders} - {""}))
        self.dest.check_free_space(self.pre.bytes_needed(self.plan))
        self.phases[Phase.PREFLIGHT.value] = time.monotonic() - began

    def ready(self) -> None:
        """The mode's own checks, after the preflight and before anything is created."""

    def hot_pass(self, skip: Collection[str] = ()) -> None:
        """`skip`: units the hot pass leaves alone (their copy comes from elsewhere)."""
        seconds = self.passes.hot(skip)
        if self.passes.hot_refs:
            self.phases[Phase.HOT.value] = seconds
        self.pre.first_scans.clear()  # held by the hot references now, where needed (memory)

    def cold_pass(self, check_stop: bool = False) -> None:
        """`check_stop`: check_clean_stop beside the copies (its failure ends them)."""
        beside = self.check_clean_stop if check_stop else None
        self.phases[Phase.COLD.value] = self.passes.cold(beside)

    def check_clean_stop(self) -> None:
        """A database killed at the stop timeout may need crash recovery: not a clean copy."""
        services = self.pre.cold_services
        killed = self.stack.killed(services, self.pre.survey.ids(services))
        if not killed:
            return
        what = (f"{', '.join(killed)} did not stop cleanly (killed, e.g. after the "
                f"{self.plan.stop_timeout}s stop timeout)")  # fmt: skip
        if not self.options.allow_unclean_stop:
            raise RunFailed(f"{what}: its data may need crash recovery, snapshot not promoted "
                            "(raise stop_timeout, or set allow_unclean_stop: true)")  # fmt: skip
        self.passes.warnings.append(f"{what}: snapshot marked unsafe")
        self.unsafe = True

    def execute(self) -> Report:
        self.prepare()
        if self.plan.mode is Mode.PAUSE:
            return self.execute_frozen()
        self.hot_pass()
        before = self.pre.before
        with stopped_stack(self.stack, before, self.plan.stop_timeout,
                           self.options.start_timeout, known=self.pre.survey.ids(before)
                           ) as window:  # fmt: skip
            self.cold_pass(check_stop=True)
            window.on_start = self.sums_while_starting
        return self.with_checksums(self.finish(window.times, after=window.running_after))

    def execute_frozen(self) -> Report:
        """hot-cold --pause: the same hot rounds, then the exact pass over every volume with
        the stack frozen (docker pause), never stopped; crash-consistent, as a power cut at
        the pause would leave the disks."""
        before = self.pre.before
        check_pausable(self.pre.survey, before)
        self.hot_pass()
        project = self.stack.project(self.pre.survey.ids(before))
        # listed again now: a container started during the hot rounds is frozen too
        ids = self.stack.running_in(project)
        with paused_stack(self.stack, before, ids, project) as window:
            drained = inflight.drain(s.path for s in self.pre.sources.values())
            if drained:
                self.passes.warnings.append(drained)
            self.cold_pass()
            if project:  # nothing ran: still, nothing may have started meanwhile
                check_frozen(self.stack, project, window)
        return self.with_checksums(self.finish(window.times))

    def sums_while_starting(self) -> None:
        """Save the index, hash the staged files and write SHA256SUMS while the stack
        starts (its slowest part, mostly idle waiting), in a thread at the lowest CPU
        priority; the snapshot is these files. A failed save is tried again, and fails, in
        finish; failed checksums are a warning (with_checksums)."""

        def work() -> None:
            checksums.lowest_priority()
            try:
                self.dest.save_index(f"{STAGING}/{INDEX}", self.passes.cold_scans)
                self.index_saved = True
            except (OSError, KlinkSyncError):
                pass
            try:
                latest = self.pre.latest.rel if self.pre.latest else None
                self.early_sums = self.dest.write_sums(STAGING, latest, background=True)
            except (OSError, KlinkSyncError) as exc:
                self.early_sums = exc

        self.sums_thread = threading.Thread(target=work, name="checksums", daemon=True)
        self.sums_thread.start()

    def finish(self, times: Mapping[str, float], kind: str = "backup",
               after: tuple[str, ...] | None = None) -> Report:  # fmt: skip
        """With the stack up again: index, manifest (last), promotion. `after`: the services
        the start's wait saw running (None: ask compose)."""
        held, downtime, freeze = hold_phases(times)
        self.phases.update(held)
        began = time.monotonic()
        after = self.stack.running_services() if after is None else after
        report = Report(self.plan.mode, "ok", self.dest.spec, None, downtime, self.phases,
                        self.pre.before, after, tuple(self.passes.results),
                        tuple(self.passes.warnings), freeze_seconds=freeze)  # fmt: skip
        report = self.reported(report)
        manifest = build_manifest(self.plan, report, self.pre.sources, times)
        manifest.update(kind=kind, unsafe=self.unsafe, **self.manifest_extra())
        is_backup = kind == "backup"
        if self.sums_thread is not None:
            self.sums_thread.join()  # before the promotion renames staging under it
        if not self.index_saved:
            self.dest.save_index(f"{STAGING}/{INDEX}", self.passes.cold_scans)
        self.dest.write_json(f"{STAGING}/{MANIFEST}", manifest)
        instants = ("stop_begin", "backup_point", "pause_begin", "copy_begin")
        held_since = next(times[k] for k in instants if k in times)  # what the snapshot is of
        snapshot = self.dest.promote_staging(held_since, "" if is_backup else f"-{kind}",
                                             is_backup)  # fmt: skip
        self.phases[Phase.FINISH.value] = time.monotonic() - began
        order = [p.value for p in Phase]
        self.phases = dict(sorted(self.phases.items(), key=lambda kv: order.index(kv[0])))
        log.info("snapshot %s complete; downtime %.1fs", snapshot.name, downtime)
        return replace(report, snapshot=snapshot.name, phases=self.phases)

    def reported(self, report: Report) -> Report:
        """The mode's own figures added to the report (none here)."""
        return report

    def manifest_extra(self) -> dict:
        """The mode's own record in the manifest (none here); never a secret."""
        return {}

    def with_checksums(self, report: Report) -> Report:
        """SHA256SUMS for `verify`, written with the stack up (never inside the stop).

        A failure here leaves a complete snapshot without checksums: a warning, not a failed run.
        """
        try:
            result = self._sums(Snapshot(str(report.snapshot), True, False))
        except (OSError, KlinkSyncError) as exc:
            warning = f"{checksums.SUMS} not written: {exc}"
            log.warning("%s", warning)
            return replace(report, checksums={"error": str(exc)},
                           warnings=(*report.warnings, warning))  # fmt: skip
        log.info("%s: %d files, %d read (%d bytes), %d reused from the previous snapshot in %.1fs",
                 checksums.SUMS, result.files, result.hashed_files, result.hashed_bytes,
                 result.reused, result.seconds)  # fmt: skip
        return replace(report, checksums=asdict(result))

    def _sums(self, snapshot: Snapshot) -> checksums.ChecksumResult:
        done = self.early_sums
        if isinstance(done, BaseException):
            raise done
        if done is not None:
            return done  # written into staging while the stack started
        latest = self.pre.latest.rel if self.pre.latest else None
        return self.dest.write_sums(snapshot.rel, latest)


def check_pausable(survey: Survey, before: tuple[str, ...]) -> None:
    """--pause freezes containers through Docker: refused, before anything is copied, when
    compose names none (a stand-in compose without Docker)."""
    if before and not survey.ids(before):
        raise UsageError("hot-cold --pause freezes containers through Docker, and compose "
                         "named none running: use hot-cold")  # fmt: skip


def hold_phases(times: Mapping[str, float]) -> tuple[dict[str, float], float, float]:
    """The hold's phases, the downtime (stopped) and the freeze (paused) it caused."""
    if "pause_begin" in times:
        phases = {Phase.PAUSE.value: times["pause_end"] - times["pause_begin"],
                  Phase.UNPAUSE.value: times["unpause_end"] - times["unpause_begin"]}
        return phases, 0.0, times["unpause_end"] - times["pause_begin"]
    if "stop_begin" not in times:  # live without a service to pause: nothing held
        return {}, 0.0, 0.0
    phases = {Phase.STOP.value: times["stop_end"] - times["stop_begin"],
              Phase.START.value: times["start_end"] - times["start_begin"]}
    return phases, times["start_end"] - times["stop_begin"], 0.0


def build_manifest(plan: Plan, report: Report, sources: Mapping[str, Source],
                   times: Mapping[str, float]) -> dict:  # fmt: skip
    """Everything a restore needs to know, and nothing secret."""
    return {
        "format": 1,
        "tool": f"klink-sync {__version__}",
        "host": socket.gethostname(),
        "mode": plan.mode.value,
        "consistency": plan.mode.consistency,
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
        "units": _manifest_units(plan, report, sources),
        "times": {k: _iso(v) for k, v in times.items()},
        "phases_seconds": dict(report.phases),
        "downtime_seconds": report.downtime_seconds,
        "freeze_seconds": report.freeze_seconds,
        "services_before": list(report.services_before),
        "services_after": list(report.services_after),
        "warnings": list(report.warnings),
    }


def _manifest_units(plan: Plan, report: Report, sources: Mapping[str, Source]) -> list[dict]:
    cold = {p.unit: p.stats for p in report.passes if p.phase is Phase.COLD}
    moved: dict[str, dict[str, int]] = {}
    for p in report.passes:
        unit = p.unit.removesuffix(" (ctime refresh)")
        moved.setdefault(unit, {}).setdefault(p.phase.value, 0)
        moved[unit][p.phase.value] += p.stats.transferred_size
    units = []
    for unit in plan.units:
        stats = cold.get(unit.dest)
        units.append({
            "dest": unit.dest, "source": unit.source, "host_path": sources[unit.dest].path,
            "type": unit.type.value, "class": unit.cls.value, "reason": unit.reason,
            "excludes": list(unit.excludes), "is_file": sources[unit.dest].is_file,
            "volume_names": list(unit.volume_names), "patterns": list(unit.patterns),
            "declared": unit.declared,
            "files": stats.files if stats else 0, "bytes": stats.total_size if stats else 0,
            "bytes_transferred": moved.get(unit.dest, {}),
        })  # fmt: skip
    return units


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e6):06d}Z"


def run_backup(plan: Plan, dest: Destination, stack: Stack,
               options: RunOptions | None = None) -> Report:  # fmt: skip
    """Lock the destination and the deployment, run, prune; failures leave every earlier
    snapshot untouched. With retention rules, prune once the new snapshot is complete."""
    options = options or RunOptions()
    # every refusal before anything is created, stopped or locked
    dest.check_apart([s.path for s in resolve_sources(plan).values()])
    dest.prepare(options.require_mount)
    try:
        # a signal before the stop ends the run cleanly too (nothing to start again)
        with signals_raise(), deployment_locked(plan.folder), dest.lock():
            recovered = recover(stack, options.start_timeout)
            report = run_class(plan.mode)(plan, dest, stack, options).execute()
            if recovered.services:
                report = replace(report, recovered=recovered.services,
                                 warnings=(recovered.message(), *report.warnings))
            retention = options.retention
            if retention is not None and not retention.empty:
                pruned = dest.prune(retention, dry_run=False)
                report = replace(report, pruned=tuple(pruned["remove"]))
            return report
    except OSError as exc:  # a disk full or gone, a folder vanished: one line, exit 1
        where = exc.filename or dest.spec
        raise RunFailed(f"{where}: {exc.strerror or exc}; nothing was promoted") from exc


def run_class(mode: Mode) -> type[Run]:
    """The run a mode makes: live copies the database with mariadb-backup, never stopping."""
    if mode is Mode.LIVE:
        from .live import LiveRun  # it builds on Run

        return LiveRun
    return Run


def dry_run(plan: Plan, dest: Destination, stack: Stack, options: RunOptions) -> list[Step]:
    """The commands a run would issue now, in order; reads, touches nothing."""
    dest.check_usable(options.require_mount)
    pre = preflight(plan, dest, stack)
    if plan.mode is Mode.PAUSE:
        check_pausable(pre.survey, pre.before)
    dest.show_as_locked()
    inputs = pre.inputs(options.cuts.seed, options.cuts.plain)
    if plan.mode is Mode.LIVE:
        from .live import live_dry_run

        return live_dry_run(plan, dest, pre, inputs, options)
    return backup_steps(plan, dest, stack, inputs, progress=options.progress is not None)
