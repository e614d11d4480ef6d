"""Put a snapshot back: setup folder, volumes, owners; keep what it replaces first."""

from __future__ import annotations

import logging
import os
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from . import checksums, docker, process, rsync, steps, trust
from .backup import Run
from .compose import find_compose_files, load_deployment
from .config import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Settings
from .destination import Destination, Snapshot
from .errors import KlinkSyncError, RestartFailed, RunFailed, UsageError
from .load import real_folder
from .models import Mode, Phase, Report
from .plan import build_plan, resolved
from .preflight import preflight
from .recover import recover
from .stack import Stack, detect_compose_command, stopped_stack
from .state import deployment_locked
from .steps import Step

log = logging.getLogger(__name__)

KBOX_HINT = "K-Box: rebuild the search index if needed: cd {folder} && {compose} exec {service} " \
    "php artisan dms:reindex"  # fmt: skip


@dataclass(frozen=True)
class Move:
    """One unit of a snapshot and where it goes back to."""

    unit: str  # the unit's path in the snapshot
    source: str  # a folder (trailing slash added) or a single file in the snapshot
    target: str  # the folder that receives it
    excludes: tuple[str, ...] = ()
    is_file: bool = False
    volume_names: tuple[str, ...] = ()  # named volume: Docker names, to create if missing
    patterns: tuple[str, ...] = ()  # excluded from the backup: left alone in the target


@dataclass(frozen=True)
class RestoreReport:
    snapshot: str
    folder: str
    moves: tuple[Move, ...]
    bytes_restored: int
    files_repaired: int  # files rewritten: missing, or their content differed
    safety_snapshot: str | None
    services_before: tuple[str, ...]
    services_after: tuple[str, ...]
    rewritten: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()


def parse_maps(maps: Sequence[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for m in maps:
        old, sep, new = m.partition("=")
        if not sep or not old.startswith("/") or not new.startswith("/"):
            raise UsageError(f"--map {m}: must be OLD=NEW with two absolute paths")
        pairs.append((old.rstrip("/") or "/", new.rstrip("/") or "/"))
    return tuple(pairs)


def _mapped(path: str, maps: Sequence[tuple[str, str]]) -> str:
    for old, new in maps:
        if path == old or path.startswith(old + "/"):
            return new + path[len(old):]
    return path


def plan_moves(
    units: Sequence[Mapping], snapshot: str, folder: Path, maps: Sequence[tuple[str, str]] = ()
) -> tuple[Move, ...]:
    """Where each unit goes (pure): inside the folder, or its (mapped) path. `units`: the
    manifest's, checked against the snapshot's compose files (trust.checked_units);
    `snapshot`: the snapshot's folder on the destination's host."""
    moves = []
    for unit in units:
        dest, is_file = unit["dest"], unit["is_file"]
        if dest == "folder" or dest.startswith("folder/"):
            target = folder / dest.removeprefix("folder").lstrip("/")
        elif unit["type"] == "volume":
            target = Path("<volume>")  # resolved through Docker when the move runs
        else:
            target = Path(_mapped(unit["source"], maps))
        if is_file:
            inside = posixpath.join(snapshot, dest)
            if dest.startswith("folder/"):
                inside, name = posixpath.dirname(inside), posixpath.basename(dest)
            else:
                name = posixpath.basename(unit["source"])
            moves.append(Move(dest, posixpath.join(inside, name), str(target.parent), (), True))
        else:
            moves.append(Move(dest, posixpath.join(snapshot, dest), str(target),
                              tuple(unit["excludes"]), False, tuple(unit["volume_names"]),
                              tuple(unit["patterns"])))  # fmt: skip
    return tuple(moves)


def restore_step(move: Move, target: str, dest: Destination, by_content: bool = True) -> Step:
    return steps.restore_step(move.source, target, dest, move.excludes, move.is_file,
                              move.patterns, by_content)  # fmt: skip


def _links_left_out(moves: Sequence[Move], links: set[bytes], folder: Path
                    ) -> tuple[Move, ...]:  # fmt: skip
    """A symlink of the snapshot's folder copy on the way to a volume's place (`storage ->
    /bigdisk/storage`) is not put back: the volume comes back into the folder itself, and
    never through a link a snapshot brought (into another folder it would lead into the
    live deployment's data, or where a tampered snapshot says). A link already there, the
    admin's own, is followed."""
    skip = set()
    for move in moves:
        inside = os.path.relpath(move.target, folder)
        if move.unit.startswith("folder") or inside.startswith(".."):
            continue
        parts = inside.split("/")
        for i in range(1, len(parts) + 1):
            if os.fsencode("folder/" + "/".join(parts[:i])) in links:
                skip.add("/".join(parts[:i]))
    for path in sorted(skip):
        log.info("%s is a symlink in the snapshot: not put back; the volume below it comes "
                 "back into the folder itself", folder / path)  # fmt: skip
    return tuple(replace(m, excludes=(*m.excludes, *sorted(skip))) if m.unit == "folder" else m
                 for m in moves)  # fmt: skip


def _volume_path(move: Move, project: str, key: str) -> str:
    """The named volume's mountpoint, created (labelled as Compose does) when missing."""
    name = move.volume_names[0] if move.volume_names else f"{project}_{key}"
    inspect = docker.volume_mountpoint_argv(name)
    try:
        return process.run(inspect).stdout.strip()
    except process.CommandFailed:
        process.run(docker.volume_create_argv(name, project, key))
        return process.run(inspect).stdout.strip()


def quick_verify(dest: Destination, snapshot: Snapshot) -> None:
    """Refuse a snapshot whose listed files are not all there (no content read)."""
    if not snapshot.has_sums:
        return  # written after every run, once the stack is up
    listed = checksums.parse_sums(dest.read(f"{snapshot.rel}/{checksums.SUMS}"))
    regular, _ = dest.files(snapshot.rel)
    missing = [n for n in listed if n not in regular]  # gone, or no longer a regular file
    extra = [n for n in regular if n not in listed]  # put there since: never restored
    for what, names in (("listed file(s) missing", missing), ("file(s) not listed", extra)):
        if names:
            raise UsageError(
                f"snapshot {snapshot.name} fails a quick verify: {len(names)} {what}, first "
                f"{os.fsdecode(sorted(names)[0])!r}; run klink-sync verify {snapshot.name}"
            )


def _rewrite_paths(folder: Path, files: Sequence[Path], maps: Sequence[tuple[str, str]]):
    """Point the restored compose and env files at the remapped host paths."""
    changed = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = text
        for old, new_path in maps:  # a whole path: /mnt/data is not the start of /mnt/data2
            whole = r"(?<![\w./-])" + re.escape(old) + r"(?![\w.-])"
            new = re.sub(whole, new_path.replace("\\", r"\\"), new)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(str(path))
    return changed


class Restore:
    """One restore: stop what runs, keep it first (a pre-restore snapshot), put the
    snapshot back, start again what ran (or everything, with `start`)."""

    def __init__(
        self,
        dest: Destination,
        snapshot: Snapshot,
        folder: Path,
        compose: tuple[str, ...],
        maps: Sequence[tuple[str, str]] = (),
        safety: bool = True,
        start: bool = False,
        stop_timeout: int = DEFAULT_STOP_TIMEOUT,
        start_timeout: int = DEFAULT_START_TIMEOUT,
    ):
        self.dest, self.snapshot, self.folder = dest, snapshot, folder
        self.compose, self.maps, self.safety, self.start = compose, maps, safety, start
        self.stop_timeout, self.start_timeout = stop_timeout, start_timeout
        self.manifest = dest.manifest(snapshot)
        expected = trust.expected_units(dest, snapshot, self.manifest, folder)
        self.units = trust.checked_units(self.manifest, expected, folder)
        self.moves = _links_left_out(plan_moves(self.units, dest.path(snapshot.rel), folder,
                                                maps), dest.links(snapshot.rel), folder)
        trust.check_targets([(f"manifest.json: units[{i}].dest ({m.unit})", m.target)
                             for i, m in enumerate(self.moves) if not m.target.startswith("<")])
        # Where each target really is now, before anything is written: a copy never goes
        # through a symlink that an earlier copy of this restore put back.
        self.real = {m.unit: os.path.realpath(m.target) for m in self.moves
                     if not m.target.startswith("<")}  # fmt: skip

    def current_stack(self) -> Stack | None:
        """The deployment now in the target folder, if it has a compose file."""
        try:
            files = find_compose_files(self.folder)
        except UsageError:
            return None
        return Stack(self.compose, self.folder, files)

    def _safety_run(self, stack: Stack) -> Run:
        """The cold backup of what the restore replaces, into the same destination."""
        deployment = resolved(load_deployment(self.folder, (), os.environ), real_folder)
        process.add_secrets(deployment.secrets)
        plan = build_plan(deployment, mode=Mode.COLD, stop_timeout=self.stop_timeout)
        return Run(plan, self.dest, stack)

    def dry_run_lines(self) -> list[str]:
        """The commands the restore would run now, as a backup's --dry-run prints them."""
        stack = self.current_stack()
        lines = [f"restore snapshot {self.snapshot.name} into {self.folder}"]
        out: list[Step] = []
        if stack:
            before = stack.running_services()
            out.append(steps.stop_step(stack, self.stop_timeout))
            if self.safety:
                safety = self._safety_run(stack)
                pre = preflight(safety.plan, self.dest, stack)
                self.dest.show_as_locked()
                cold = steps.backup_steps(safety.plan, self.dest, stack, pre.inputs())
                out += [replace(s, phase=Phase.SAFETY) for s in cold if s.phase is Phase.COLD]
        else:
            out.append(steps.rule(Phase.STOP, f"nothing: no compose file in {self.folder} yet"))
        self.dest.show_as_locked()
        for by_content in (True, False):
            for move in self.moves:
                target = move.target if not move.target.startswith("<") else "<docker volume>"
                out.append(restore_step(move, target, self.dest, by_content))
        if stack:
            out.append(steps.start_step(stack, self._to_start(before), recreate=True))
        elif self.start:
            out.append(steps.rule(Phase.START, "up -d every service of the restored folder"))
        return lines + [s.line() for s in out]

    def _to_start(self, before: Sequence[str]) -> tuple[str, ...]:
        if self.start:
            return load_deployment(self.folder, (), os.environ).services
        return tuple(before)

    def _copy_back(self) -> tuple[int, int]:
        """Every unit back, content compared; then every unit's attributes once more: rsync
        sets a new folder's ACL before its final mode (a sticky folder's named entries then
        lose group::), and the volumes' folders, made after the setup folder's copy, move
        the mtimes of their parents (storage/)."""
        moved = repaired = 0
        project = None
        done = []
        for move in self.moves:
            target = move.target
            if target.startswith("<"):
                if project is None:
                    project = load_deployment(self.folder, (), os.environ).project_name
                key = next(u["source"] for u in self.units if u["dest"] == move.unit)
                target = _volume_path(move, project, key)  # Docker's own answer
            else:
                self._still_where_it_was(move, target)
            os.makedirs(os.path.realpath(target), exist_ok=True)
            result = process.run(restore_step(move, target, self.dest).argv)
            stats = rsync.parse_stats(result.stdout)
            moved += stats.total_size
            repaired += stats.regular_files_transferred
            log.info("restored %s -> %s (%d files, %d rewritten)", move.unit, target, stats.files,
                     stats.regular_files_transferred)  # fmt: skip
            done.append((move, target))
        for move, target in done:
            process.run(restore_step(move, target, self.dest, by_content=False).argv)
        return moved, repaired

    def _still_where_it_was(self, move: Move, target: str) -> None:
        """The snapshot's own folder copy may hold a symlink (storage -> elsewhere): a
        restore does not follow a link it put back itself (into another folder it would
        lead into the live deployment's data, or anywhere a tampered snapshot says)."""
        now = os.path.realpath(target)
        if now != self.real[move.unit]:
            raise UsageError(f"{target}: the restore put back a symlink on the way (it now "
                             f"leads to {now}): not followed. Make the link yourself first, "
                             "or restore that path with --map OLD=NEW")  # fmt: skip
        trust.check_targets([(f"restore target of {move.unit}", target)])

    def execute(self, owed: tuple[str, ...] = ()) -> RestoreReport:
        """`owed`: services a restore that died left stopped, started again at the end."""
        stack = self.current_stack()
        before: tuple[str, ...] = stack.running_services() if stack else ()
        before = tuple(sorted({*before, *owed}))
        safety_report: Report | None = None
        if stack:
            moved, rewritten, safety_report = self._over_a_stack(stack, before)
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            moved, rewritten = self._restore_files()
        restored = Stack(self.compose, self.folder, find_compose_files(self.folder))
        if self.start and not stack:
            start_fresh(restored, load_deployment(self.folder, (), os.environ).services,
                        self.start_timeout)  # fmt: skip
        after = restored.running_services()
        return RestoreReport(
            snapshot=self.snapshot.name, folder=str(self.folder), moves=self.moves,
            bytes_restored=moved[0], files_repaired=moved[1],
            safety_snapshot=safety_report.snapshot if safety_report else None,
            services_before=before, services_after=after, rewritten=tuple(rewritten),
            hints=self._hints(),
        )  # fmt: skip

    def _over_a_stack(self, stack: Stack, before: tuple[str, ...]
                      ) -> tuple[tuple[int, int], list[str], Report | None]:  # fmt: skip
        """Stop, keep the current state, restore, start again (not if the restore failed)."""
        safety_run = self._safety_run(stack) if self.safety else None
        if safety_run:
            safety_run.prepare()
            safety_run.hot_pass()  # a cold plan copies nothing here: it reads the copies'
            # state (over ssh, one walk) before the stop, not inside the downtime
        kept = False
        try:
            with stopped_stack(stack, self._to_start(before), self.stop_timeout,
                               self.start_timeout, recreate=True) as window:  # fmt: skip
                if safety_run:
                    safety_run.cold_pass()
                    kept = True
                window.restoring(self.snapshot.name)  # recorded: nothing starts half-restored
                moved, rewritten = self._restore_files()
                window.restored()
        except KlinkSyncError:
            if kept and safety_run:  # the state it replaced, kept as the message says
                safety_run.with_checksums(safety_run.finish(window.times, kind="pre-restore"))
            raise
        if not safety_run:
            return moved, rewritten, None
        report = safety_run.with_checksums(safety_run.finish(window.times, kind="pre-restore"))
        return moved, rewritten, report

    def _restore_files(self) -> tuple[tuple[int, int], list[str]]:
        try:
            moved = self._copy_back()
            compose_files = [self.folder / Path(f).name for f in self.manifest["compose_files"]]
            rewritten = _rewrite_paths(self.folder, [*compose_files, self.folder / ".env"],
                                       self.maps) if self.maps else []  # fmt: skip
        except KlinkSyncError as exc:
            if self.current_stack() is None:  # a new folder: no stack, nothing kept before
                raise RunFailed(f"restore failed half way: {exc}") from exc
            hint = "; the state before the restore is in the pre-restore snapshot" if (
                self.safety) else ""  # fmt: skip
            raise RunFailed(f"restore failed, the stack is left stopped: {exc}{hint}") from exc
        return moved, rewritten

    def _hints(self) -> tuple[str, ...]:
        images = {v.get("service"): v.get("image", "") for v in self.manifest["volumes"]}
        kbox = [s for s, image in images.items() if s == "kbox" or "k-box" in (image or "")]
        compose = " ".join(self.compose)
        return tuple(KBOX_HINT.format(folder=self.folder, compose=compose, service=s)
                     for s in kbox[:1])  # fmt: skip


def start_fresh(stack: Stack, services: Sequence[str],
                timeout: float = DEFAULT_START_TIMEOUT) -> None:
    """First start of a deployment restored into a folder that had none."""
    stack.up()
    down, _ = stack.wait_running(services, timeout)
    if down:
        raise RestartFailed(f"restored, but services did not start: {', '.join(down)}; "
                            f"see: {process.show(stack.argv('logs', *down))}")  # fmt: skip


def run_restore(restore: Restore) -> RestoreReport:
    """Under the deployment's lock (no backup snapshots a half-restored state) and the
    destination's; what a dead run left held is released first."""
    with deployment_locked(restore.folder), restore.dest.lock():
        began = time.monotonic()
        stack = restore.current_stack()
        recovered = recover(stack, restore.start_timeout, restore=True) if stack else None
        owed = recovered.restoring.services if recovered and recovered.restoring else ()
        report = restore.execute(owed)
        log.info("restore done in %.1fs", time.monotonic() - began)
        return report


def open_restore(dest: Destination, name: str, folder: Path | None, settings: Settings,
                 maps: Sequence[str] = (), safety: bool = True, start: bool = False
                 ) -> Restore:  # fmt: skip
    """Every check a restore makes before it touches anything: the destination, the
    snapshot (complete, its listed files there), the maps; the target folder is --folder,
    else the config's, else the one the snapshot was taken from."""
    dest.check_existing()
    snap = dest.find(name)
    if not snap.complete:
        raise UsageError(f"snapshot {snap.name} is incomplete (no manifest.json): refusing")
    quick_verify(dest, snap)
    pairs = parse_maps(maps)
    target = folder or (Path(settings.folder) if settings.folder else None)
    target = (target or trust.manifest_folder(dest.manifest(snap))).absolute()
    trust.refuse_a_strangers_folder(target, "--folder")
    compose = detect_compose_command(os.environ.get("KLINK_SYNC_COMPOSE")
                                     or settings.compose_command)  # fmt: skip
    return Restore(dest, snap, target, compose, pairs, safety=safety, start=start,
                   stop_timeout=settings.stop_timeout, start_timeout=settings.start_timeout)
