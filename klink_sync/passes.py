"""The copies of one backup run: hot rounds while the stack runs, then the exact cold pass.

Every command comes from `steps`; what differs between destinations is asked of the
Destination (where copies are, whether dropping one is cheap)."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields

from . import fileindex, process, rsync
from .destination import STAGING, CopyState, Destination, Snapshot
from .errors import UsageError
from .models import PassResult, Phase, Source
from .plan import CopyUnit, Plan
from .preflight import Preflight, scan
from .steps import HOT_REPEAT_BYTES, HOT_ROUNDS, Step, copy_step, hot_units, landing, refresh_step

log = logging.getLogger(__name__)

WRITE_BACK_FROM = 128 * 2**20  # less waiting for the disk: the stop does not queue behind it
CUTS = ("rounds", "seed", "parallel", "plain", "write-back")
Progress = Callable[[str, int, int, str], None]  # (what, bytes, %, rate)


@dataclass(frozen=True)
class Cuts:
    """The downtime cuts, each on unless turned off to measure what it brings (the
    benchmark, through KLINK_SYNC_DISABLE). Never needed otherwise."""

    rounds: bool = True  # another hot round while much changed during one
    seed: bool = True  # the hot pass also copies the cold volumes
    parallel: bool = True  # the units of a pass side by side
    plain: bool = True  # cold copies without -A -X where no walk found any
    write_back: bool = True  # what the hot pass wrote goes to disk before the stop

    @classmethod
    def parse(cls, text: str, origin: str = "KLINK_SYNC_DISABLE") -> Cuts:
        """Comma-separated names of cuts to turn off."""
        names = {n.strip() for n in text.split(",") if n.strip()}
        unknown = sorted(names - set(CUTS))
        if unknown:
            raise UsageError(f"{origin}: unknown {', '.join(unknown)} (known: {', '.join(CUTS)})")
        return cls(**{f.name: f.name.replace("_", "-") not in names for f in fields(cls)})


def unwritten_bytes(meminfo: str = "/proc/meminfo") -> int | None:
    """Data written but not yet on disk, system-wide (Dirty + Writeback); None: unknown."""
    try:
        with open(meminfo, encoding="ascii") as src:
            found = dict(line.split(":", 1) for line in src if ":" in line)
        return sum(int(found[k].split()[0]) * 1024 for k in ("Dirty", "Writeback"))
    except (OSError, KeyError, ValueError, IndexError):
        return None


@contextmanager
def _listed(data: bytes | None) -> Iterator[str | None]:
    """A private temporary file holding `data` (one per unit: units run side by side)."""
    if data is None:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="klink-sync-list-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        yield name
    finally:
        os.unlink(name)


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


class Passes:
    """The copies into staging and what they found; results and warnings for the report."""

    def __init__(self, plan: Plan, dest: Destination, pre: Preflight, cuts: Cuts,
                 progress: Progress | None = None):  # fmt: skip
        self.plan, self.dest, self.pre, self.cuts, self.progress = plan, dest, pre, cuts, progress
        self.sources: Mapping[str, Source] = pre.sources
        self.latest: Snapshot | None = pre.latest
        self.results: list[PassResult] = []
        self.warnings: list[str] = []
        self.hot_refs: dict[str, fileindex.HotReference] = {}
        self.cold_scans: dict[str, fileindex.Scan] = {}
        self.copy_state: Callable[[str], CopyState | None] | None = None  # see copy_states

    def _step(self, phase: Phase, unit: CopyUnit, link_to: Snapshot | None,
              xattrs: bool = True) -> Step:  # fmt: skip
        return copy_step(phase, unit, self.sources[unit.dest], self.dest, link_to,
                         self.pre.latest_folders, progress=self.progress is not None,
                         xattrs=xattrs)  # fmt: skip

    def _copy(self, step: Step, unit: CopyUnit, round: int = 1, refreshed: int = 0) -> set[str]:
        """Run one copy step; the files it wrote (hot copies only)."""
        hot = step.phase is Phase.HOT
        began = time.monotonic()
        label = f"{step.phase.value} {unit.dest}" + (f" #{round}" if round > 1 else "")
        show = self.progress

        def on_output(line: str) -> None:
            update = rsync.parse_progress(line)
            if update and show:
                show(label, *update)

        ok = (0, *rsync.HOT_WARNING_CODES) if hot else (0,)
        result = process.run(step.argv, ok_codes=ok, on_output=on_output if show else None)
        warning = rsync.HOT_WARNING_CODES.get(result.exit_code, "")
        if warning:
            self.warnings.append(f"hot pass {unit.dest}: {warning}")
        stats = rsync.parse_stats(result.stdout)
        if show:  # done, even with nothing to move (rsync then shows 0%)
            show(label, stats.transferred_size, 100, "")
        seconds = time.monotonic() - began
        self.results.append(PassResult(step.phase, unit.dest, seconds, result.exit_code, stats,
                                       refreshed=refreshed, warning=warning, round=round))
        log.info("%s pass %s%s: %d files, %d bytes copied in %.1fs", step.phase.value, unit.dest,
                 f" (round {round})" if round > 1 else "", stats.regular_files_transferred,
                 stats.transferred_size, seconds)  # fmt: skip
        return rsync.parse_received(result.stdout) if hot else set()

    def side_by_side(self, jobs: Sequence[Callable]) -> list:
        """The units of a pass side by side: the pass takes its slowest unit's time."""
        if not self.cuts.parallel:
            return [job() for job in jobs]
        return process.run_many(jobs)

    # --- the hot pass
    def hot(self, skip: Collection[str] = ()) -> float:
        """Hot rounds while much changes; then the state of the copies, read once.
        `skip`: units not copied (live: the database, copied by mariadb-backup)."""
        began = time.monotonic()
        units = tuple(u for u in hot_units(self.plan, self.pre.inputs(self.cuts.seed))
                      if u.dest not in skip)  # fmt: skip
        rounds = HOT_ROUNDS if self.cuts.rounds else 1
        scans = self.pre.first_scans
        for round in range(1, rounds + 1 if units else 1):
            if round > 1:
                # Another round only pays when much changed during the last one: what
                # changes during this one is left to the cold pass all the same.
                pending = self._changed_bytes([u for u in units if u.hot], scans)
                log.info("hot pass: %d bytes changed during round %d", pending, round - 1)
                if pending < HOT_REPEAT_BYTES:
                    break
            copied = _Countdown(len(units), self._start_write_back)
            walks = self.side_by_side([functools.partial(
                self._hot_unit, unit, round, scans[unit.dest], round < rounds, copied)
                for unit in units])  # fmt: skip
            scans = {unit.dest: walk for unit, walk in zip(units, walks, strict=True)}
        if units:
            self._write_back()
        self._read_copy_states()
        return time.monotonic() - began

    def _read_copy_states(self) -> None:
        """What the ctime check reads of staging and `latest`, once, after the last copy
        into staging before the cold pass (over ssh: one walk of both trees)."""
        rels = [STAGING] + ([self.latest.rel] if self.latest else [])
        self.copy_state = self.dest.copy_states(rels)

    def _hot_unit(
        self, unit: CopyUnit, round: int, scan_: fileindex.Scan, walk_after: bool,
        copied: Callable[[], None],
    ) -> fileindex.Scan | None:  # fmt: skip
        """One unit's hot copy, `scan_` its reference; then, if another round may follow,
        a walk of it (what decides that round, and its reference) while others still copy.
        `copied` is told when the copy is done."""
        src = self.sources[unit.dest]
        reference = self.hot_refs.setdefault(unit.dest, fileindex.HotReference())
        if round == 1:
            written = self._copy(self._step(Phase.HOT, unit, self.latest), unit, round)
        else:
            written = self._again(unit, src, reference.changed(scan_), round)
        copied()
        reference.record(scan_, None if round == 1 else written)
        return scan(unit, src, not reference.xattrs, reference) if walk_after else None

    def _again(self, unit: CopyUnit, src: Source, names: list[str], round: int) -> set[str]:
        """A later round: only the files its walk found changed, each as a new file (the
        others may be hard links to an older snapshot: rsync would change their attributes
        in place, through the link, if a change landed after the walk)."""
        if not names:
            return set()
        self.dest.drop_copies(f"{STAGING}/{landing(unit, src)}", names)
        with _listed(fileindex.null_list(names)) as listing:
            step = refresh_step(unit, src, self.dest, str(listing), Phase.HOT)
            return self._copy(step, unit, round)

    def _changed_bytes(self, units: list[CopyUnit], scans: Mapping[str, fileindex.Scan]) -> int:
        """Bytes of the files changed since their last hot copy (new ones included)."""
        total = 0
        for unit in units:
            scan_ = scans[unit.dest]
            total += sum(scan_.files[rel][3] for rel in self.hot_refs[unit.dest].changed(scan_))
        return total

    def _start_write_back(self) -> None:
        """Once a round's copies are done, the disk writes them back beside the walks."""
        if self.cuts.write_back:
            threading.Thread(target=os.sync, name="write-back", daemon=True).start()

    def _write_back(self) -> None:
        """Flush what the hot pass wrote now: the database's fsyncs at its stop would
        otherwise wait behind it, inside the downtime."""
        if not self.cuts.write_back:
            return
        waiting = unwritten_bytes()
        if waiting is not None and waiting < WRITE_BACK_FROM:
            log.info("hot pass: %d bytes wait for the disk, too few to flush now", waiting)
            return
        began = time.monotonic()
        os.sync()
        log.info("hot pass written back to disk in %.1fs", time.monotonic() - began)

    # --- the cold pass
    def cold(self, beside: Callable[[], None] | None = None) -> float:
        """With the stack stopped: copy everything, strict, then what rsync cannot see.

        Side by side, one job per unit: the downtime is the slowest unit's, not the sum.
        `beside` runs with them (its failure ends the copies).
        """
        began = time.monotonic()
        if self.copy_state is None:  # no hot pass ran (a restore's pre-restore snapshot)
            self._read_copy_states()
        jobs: list = [functools.partial(self._cold_unit, unit) for unit in self.plan.units]
        if beside is not None:
            jobs.append(beside)
        self.side_by_side(jobs)
        return time.monotonic() - began

    def final(self, units: Sequence[CopyUnit], keep: bool = False) -> float:
        """Strict copies of `units` side by side, each as in the cold pass (live: while the
        stack runs, after what makes them consistent); their seconds. `keep`: files deleted
        from the source since the hot rounds keep their staged copy (no --delete)."""
        began = time.monotonic()
        self.side_by_side([functools.partial(self._cold_unit, unit, keep) for unit in units])
        return time.monotonic() - began

    def copy_from(self, unit: CopyUnit, source: Source) -> None:
        """A unit's strict copy from another folder than its own (live: the database copy
        mariadb-backup made), complete: never linked to an older snapshot."""
        step = copy_step(Phase.COLD, unit, source, self.dest, None, self.pre.latest_folders,
                         progress=self.progress is not None)  # fmt: skip
        self._copy(step, unit)

    def _cold_unit(self, unit: CopyUnit, keep: bool = False) -> None:
        """Walk (stack stopped), copy strictly, then copy again what rsync cannot see."""
        src = self.sources[unit.dest]
        hot = self.hot_refs.get(unit.dest)
        # A unit the hot pass filled, where no walk found an xattr or ACL, is copied without
        # -A -X (faster over unchanged files) if none appeared since either.
        plain = hot is not None and not hot.xattrs and self.cuts.plain
        now = self.cold_scans[unit.dest] = scan(unit, src, plain, hot)
        plain = plain and not now.xattrs
        stale = self._stale(unit, src, now, hot)
        dropped = 0
        if hot is not None:
            # Staged copies that may be stale, and (copying plain) copies of every file that
            # changed since the hot pass, are dropped: the strict copy below, with no
            # --link-dest, copies them whole, with no second rsync inside the downtime.
            drop = sorted({*stale, *hot.changed(now)}) if plain else stale
            into = f"{STAGING}/{landing(unit, src)}"
            if drop and self.dest.drop_copies(into, drop):
                if stale:
                    log.info("cold pass %s: %d files changed without rsync seeing it, copied "
                             "again", unit.dest, len(stale))  # fmt: skip
                dropped, stale = len(stale), []
            elif drop:
                plain = False  # copies kept with their attributes: rsync must compare them
        # Before the strict copy: it would change attributes in place, through a stale copy
        # hard-linked to an older snapshot; the refresh replaces such copies first.
        self._refresh(unit, src, stale)
        # A unit the hot pass filled needs no --link-dest (slower over many hard links).
        link_to = None if hot is not None else self.latest
        with _listed(rsync.exclude_list(stale) if stale and link_to else None) as fresh:
            step = copy_step(Phase.COLD, unit, src, self.dest, link_to, self.pre.latest_folders,
                             progress=self.progress is not None, xattrs=not plain,
                             exclude_from=fresh, delete=not keep)  # fmt: skip
            self._copy(step, unit, refreshed=dropped)

    def _stale(self, unit: CopyUnit, src: Source, now: fileindex.Scan,
               hot: fileindex.HotReference | None) -> list[str]:  # fmt: skip
        """Copies rsync's quick check would wrongly keep (see fileindex.files_to_refresh)."""
        into = landing(unit, src)
        prev = self.pre.previous.get(unit.dest)
        return fileindex.files_to_refresh(
            now, self.dest.path(f"{STAGING}/{into}"),
            self.dest.path(f"{self.latest.rel}/{into}") if self.latest else None,
            hot=hot, previous=prev if prev and prev.root == src.path else None,
            lstat=self.copy_state,
        )  # fmt: skip

    def _refresh(self, unit: CopyUnit, source: Source, names: list[str]) -> None:
        """Copy again the files rsync's quick check would wrongly keep."""
        if not names:
            return
        began = time.monotonic()
        with _listed(fileindex.null_list(names)) as listing:
            result = process.run(refresh_step(unit, source, self.dest, str(listing)).argv)
        self.results.append(
            PassResult(Phase.COLD, unit.dest + " (ctime refresh)", time.monotonic() - began,
                       result.exit_code, rsync.parse_stats(result.stdout), refreshed=len(names))
        )  # fmt: skip
        log.info("cold pass %s: %d files changed without rsync seeing it, copied again",
                 unit.dest, len(names))  # fmt: skip
