"""Preflight, before anything is stopped: every check that can fail does so here, and
what the later phases (and --dry-run) decide by is gathered into one record."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import docker, fileindex, process
from .destination import Destination, Snapshot
from .errors import UsageError
from .models import Source, VolumeClass, VolumeType
from .plan import CopyUnit, Plan
from .stack import Stack, Survey
from .steps import Inputs, landing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preflight:
    sources: dict[str, Source]
    survey: Survey
    before: tuple[str, ...]  # services running
    cold_services: tuple[str, ...]  # running services with a cold volume (databases)
    latest: Snapshot | None
    latest_folders: frozenset[str]  # unit folders the latest snapshot has
    previous: Mapping[str, fileindex.Scan]  # the walks the latest snapshot's run saved
    first_scans: dict[str, fileindex.Scan]  # this run's first walk (emptied after the hot pass)
    seconds: float

    def inputs(self, seed: bool = True, plain: bool = True) -> Inputs:
        xattrs = {k: s.xattrs for k, s in self.first_scans.items()}
        return Inputs(self.sources, self.before, self.latest, self.latest_folders, xattrs,
                      seed, plain, tuple(sorted(self.survey.ids(self.before))))  # fmt: skip

    def bytes_needed(self, plan: Plan) -> int:
        """What the copies would write: every file that is new, or has another size or
        mtime, since the last run's walk (the rest are hard links), plus a margin."""
        total = 0
        for unit in plan.units:
            scan = self.first_scans[unit.dest]
            prev = self.previous.get(unit.dest)
            known = prev.files if prev is not None and prev.root == scan.root else {}
            total += sum(state[3] for rel, state in scan.files.items()
                         if known.get(rel, (0, 0, -1, -1))[2:] != state[2:])  # fmt: skip
        return int(total * 1.05) + 16 * 2**20


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
            out = process.run(docker.volume_mountpoint_argv(name))
        except process.CommandFailed:
            continue
        return out.stdout.strip()
    tried = ", ".join(unit.volume_names)
    raise UsageError(f"named volume '{unit.source}' not found in Docker (tried {tried})")


def scan(unit: CopyUnit, source: Source, xattrs: bool = False,
         known: fileindex.HotReference | fileindex.Scan | None = None
         ) -> fileindex.Scan:  # fmt: skip
    """A walk of the unit's source; see fileindex.scan for `xattrs`."""
    return fileindex.scan(source.path, unit.excludes, xattrs,
                          known.unchanged if known is not None else None)  # fmt: skip


def preflight(plan: Plan, dest: Destination, stack: Stack) -> Preflight:
    """Sources, destination apart from them, rsync and compose answer, what runs, the first
    walk (beside the compose call), the previous run's walks. Reads only."""
    began = time.monotonic()
    sources = resolve_sources(plan)
    dest.check_apart([s.path for s in sources.values()])
    latest = dest.latest()
    with ThreadPoolExecutor(max_workers=3) as pool:
        checks = [pool.submit(process.run, ("rsync", "--version")), pool.submit(stack.survey)]
        walks = pool.submit(_first_walks, plan, dest, sources, latest)
    for check in checks:
        check.result()  # the first failure in this order, whichever ended first
    survey = checks[-1].result()
    log.info("running now: %s", ", ".join(survey.running) or "nothing")
    cold = {c.volume.service for c in plan.volumes if c.cls is VolumeClass.COLD}
    previous, first = walks.result()
    folders = [landing(u, sources[u.dest]) for u in plan.units]
    on_latest = dest.existing_folders(latest.rel, folders) if latest else set()
    return Preflight(sources, survey, survey.running,
                     tuple(s for s in survey.running if s in cold), latest, frozenset(on_latest),
                     previous, first, time.monotonic() - began)  # fmt: skip


def _first_walks(plan: Plan, dest: Destination, sources: Mapping[str, Source],
                 latest: Snapshot | None) -> tuple[dict, dict]:  # fmt: skip
    """The previous run's walks, then this run's first: xattrs are asked (in case the
    stack runs, for a hot pass) except of files unchanged since a walk that found none."""
    previous = dest.load_index(latest)
    xattrs = plan.mode.copies_hot
    scans = {}
    for unit in plan.units:
        prev = previous.get(unit.dest)
        if prev is None or prev.root != sources[unit.dest].path or prev.xattrs:
            prev = None
        scans[unit.dest] = scan(unit, sources[unit.dest], xattrs, prev)
    return previous, scans
