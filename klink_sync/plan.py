"""Deployment + settings -> Plan: what is copied, when, and why (pure)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .classify import Override, classify_all
from .compose import Deployment
from .config import DEFAULT_STOP_TIMEOUT
from .errors import UsageError
from .models import Classified, Mode, Phase, VolumeClass, VolumeType


@dataclass(frozen=True)
class CopyUnit:
    """One rsync source and where it lands inside a snapshot."""

    dest: str  # path inside the snapshot: "folder", "folder/storage/data", "volumes/<name>"
    source: str  # absolute host path; for named volumes the compose key (resolved at run time)
    type: VolumeType  # BIND (host path) or VOLUME (Docker named volume)
    cls: VolumeClass
    reason: str
    excludes: tuple[str, ...] = ()  # paths below source owned by other units or skipped
    volume_names: tuple[str, ...] = ()  # named volumes: Docker names to try, in order
    patterns: tuple[str, ...] = ()  # the config's excludes for this unit (rsync patterns)
    declared: str = ""  # the bind's source as the compose file writes it, if symlinks differ

    @property
    def hot(self) -> bool:
        return self.cls is VolumeClass.HOT


@dataclass(frozen=True)
class Stage:
    """One stage of a run, as `plan` tells it to people."""

    phase: Phase
    text: str


@dataclass(frozen=True)
class Plan:
    mode: Mode
    folder: Path
    compose_files: tuple[Path, ...]
    project_name: str
    volumes: tuple[Classified, ...]
    units: tuple[CopyUnit, ...]
    stop_timeout: int

    @property
    def hot_units(self) -> tuple[CopyUnit, ...]:
        return tuple(u for u in self.units if u.hot)

    @property
    def hot_pass_units(self) -> tuple[CopyUnit, ...]:
        """What the hot pass copies: hot units, and cold ones as a seed (the cold pass
        corrects them, moving only what changed since)."""
        return self.units

    @property
    def steps(self) -> tuple[Stage, ...]:
        if self.mode is Mode.LIVE:
            return self._live_steps()
        hot = [u.dest for u in self.hot_units] if self.mode.copies_hot else []
        steps = [Stage(Phase.PREFLIGHT, "check destination, sources, rsync and compose; "
                      "note which services run")]  # fmt: skip
        if hot:
            text = f"copy while the stack runs: {', '.join(hot)}"
            seeds = [u.dest for u in self.hot_pass_units if not u.hot]
            if seeds:
                text += f"; seed (the cold pass corrects them): {', '.join(seeds)}"
            text += "; again while 16 MiB or more changed during a round"
            steps.append(Stage(Phase.HOT, text))
        steps += [
            *self._hold(),
            Stage(Phase.COLD, "copy everything, strict: " + ", ".join(u.dest for u in self.units)
                 + "; then copy again files whose ctime shows a change rsync cannot see"),
            self._release(),
            Stage(Phase.FINISH, "write manifest.json, promote staging to snapshots/<time>, "
                 "move latest"),
        ]  # fmt: skip
        return tuple(steps)


    def _hold(self) -> list[Stage]:
        if self.mode is Mode.PAUSE:
            return [Stage(Phase.PAUSE, f"freeze every running container of project "
                          f"'{self.project_name}' (docker pause); wait for writes in flight")]
        return [Stage(Phase.STOP, f"stop every service of project '{self.project_name}' "
                      f"(timeout {self.stop_timeout}s)")]  # fmt: skip

    def _release(self) -> Stage:
        if self.mode is Mode.PAUSE:
            return Stage(Phase.UNPAUSE, "thaw them (docker unpause), on every path")
        return Stage(Phase.START, "start again exactly the services that were running")

    def _live_steps(self) -> tuple[Stage, ...]:
        return (
            Stage(Phase.PREFLIGHT, "check destination, sources, rsync and compose; the "
                  "database runs and its image has mariadb-backup"),
            Stage(Phase.HOT, "copy while the stack runs: every volume but the database; again "
                  "while 16 MiB or more changed during a round"),
            Stage(Phase.PAUSE, "pause only the index's service (docker pause), copy the index "
                  "strictly, unpause it"),
            Stage(Phase.DATABASE, "mariadb-backup --backup of the running database (commits "
                  "wait only for its BLOCK_COMMIT stage), --prepare, into staging"),
            Stage(Phase.COLD, "copy the documents strictly after the database's backup point, "
                  "nothing paused: every row has its file"),
            Stage(Phase.FINISH, "write manifest.json, promote staging to snapshots/<time>, "
                  "move latest"),
        )  # fmt: skip


def resolved(deployment: Deployment, resolve: Callable[[str], str]) -> Deployment:
    """Binds with their symlinks followed once (`resolve`: real_folder), so that nesting,
    overlap and what is copied are decided on real paths (`storage -> /bigdisk/storage` is
    copied from /bigdisk, not as a bare link); the path as written is kept, to show and to
    restore through."""
    volumes = []
    for volume in deployment.volumes:
        if volume.type is VolumeType.BIND and volume.source:
            real = resolve(volume.source)
            if real != volume.source:
                volume = replace(volume, source=real, declared=volume.source)
        volumes.append(volume)
    return replace(deployment, volumes=tuple(volumes))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _strongest(items: Sequence[Classified]) -> Classified:
    """One source mounted twice is as delicate as its most delicate use."""
    rank = {VolumeClass.COLD: 0, VolumeClass.HOT: 1, VolumeClass.SKIP: 2}
    return min(items, key=lambda c: rank[c.cls])


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "root"


def _volume_names(project: str, key: str, fixed: str) -> tuple[str, ...]:
    if fixed:
        return (fixed,)
    v1_project = re.sub(r"[^-_a-z0-9]", "", project.lower())
    return tuple(dict.fromkeys((f"{project}_{key}", f"{v1_project}_{key}")))


def build_plan(
    deployment: Deployment,
    overrides: Sequence[Override] = (),
    mode: Mode = Mode.HOT_COLD,
    stop_timeout: int = DEFAULT_STOP_TIMEOUT,
    excludes: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    if not deployment.volumes:
        raise UsageError(
            f"{deployment.compose_files[0]}: no service declares a volume: is this the "
            "K-Link compose file?"
        )
    classified = classify_all(deployment.volumes, overrides)
    folder = str(deployment.folder)
    units, skipped = _units(classified, folder, deployment.project_name)
    folder_unit = CopyUnit(
        "folder", folder, VolumeType.BIND, VolumeClass.COLD,
        "the setup folder: compose and env files, relative volumes", (),
    )  # fmt: skip
    with_excludes = _with_excludes([folder_unit, *units], skipped)
    return Plan(
        mode=mode,
        folder=deployment.folder,
        compose_files=deployment.compose_files,
        project_name=deployment.project_name,
        volumes=classified,
        units=tuple(_with_patterns(with_excludes, excludes or {}, folder)),
        stop_timeout=stop_timeout,
    )


def _units(classified: Sequence[Classified], folder: str, project: str
           ) -> tuple[list[CopyUnit], list[str]]:  # fmt: skip
    """One unit per source (its most delicate use decides the class), and the skipped
    bind sources."""
    by_source: dict[tuple[VolumeType, str], list[Classified]] = {}
    for c in classified:
        if c.volume.type is not VolumeType.ANONYMOUS:
            by_source.setdefault((c.volume.type, c.volume.source), []).append(c)
    units: list[CopyUnit] = []
    skipped: list[str] = []
    taken: set[str] = set()
    for (vtype, source), uses in sorted(by_source.items(), key=lambda kv: kv[0][1]):
        chosen = _strongest(uses)
        if chosen.cls is VolumeClass.SKIP:
            if vtype is VolumeType.BIND:
                skipped.append(source)
            continue
        if vtype is VolumeType.BIND and _inside(source, folder):
            if source == folder:
                continue  # the folder itself is always copied, cold
            dest = "folder/" + os.path.relpath(source, folder)
        else:
            base = "volumes/" + _safe_name(source if vtype is VolumeType.VOLUME else source[1:])
            dest, n = base, 1
            while dest in taken:
                n += 1
                dest = f"{base}-{n}"
        taken.add(dest)
        names = ()
        if vtype is VolumeType.VOLUME:
            names = _volume_names(project, source, chosen.volume.volume_name)
        units.append(CopyUnit(dest, source, vtype, chosen.cls, chosen.reason, (), names,
                              declared=chosen.volume.declared))  # fmt: skip
    return units, skipped


def _with_excludes(units: Sequence[CopyUnit], skipped: Sequence[str]) -> list[CopyUnit]:
    """Each unit leaves out what lies inside it and belongs to another unit or is
    skipped, so every byte is copied once, by the unit that knows its class."""
    others = [o.source for o in units if o.type is VolumeType.BIND] + list(skipped)
    with_excludes = []
    for unit in units:
        inner = sorted({
            os.path.relpath(other, unit.source) for other in others
            if unit.type is VolumeType.BIND and other != unit.source
            and _inside(other, unit.source)
        })  # fmt: skip
        with_excludes.append(replace(unit, excludes=tuple(inner)))
    return with_excludes


def _with_patterns(
    units: Sequence[CopyUnit], excludes: Mapping[str, Sequence[str]], folder: str
) -> list[CopyUnit]:
    """Attach the config's exclude patterns, keyed by a volume's source as the compose
    file names it (./storage/data, /mnt/x, a named volume) or `.` for the setup folder."""
    by_source = {u.source: u for u in units}
    by_source.update({u.declared: u for u in units if u.declared})
    patterns: dict[str, tuple[str, ...]] = {}
    for key, pats in excludes.items():
        source = os.path.normpath(os.path.join(folder, key)) if not key.startswith("/") and (
            key.startswith(".") or key not in by_source) else key.rstrip("/") or "/"
        if source not in by_source:
            raise UsageError(f"config: excludes[{key!r}]: no volume with that source is copied")
        patterns[by_source[source].source] = tuple(pats)
    return [replace(u, patterns=patterns.get(u.source, ())) for u in units]
