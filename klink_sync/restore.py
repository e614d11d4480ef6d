"""Put a snapshot back: setup folder, volumes, owners; keep what it replaces first."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import destination, process, rsync
from .compose import find_compose_files, load_deployment
from .destination import Destination, Snapshot
from .errors import KlinkSyncError, RestartFailed, RunFailed, UsageError
from .execute import Report, Run
from .plan import Mode, build_plan
from .stack import Stack, stopped_stack

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
    manifest: Mapping, snapshot: Path, folder: Path, maps: Sequence[tuple[str, str]] = ()
) -> tuple[Move, ...]:
    """Where each unit of the manifest goes (pure): inside the folder, or its (mapped) path."""
    moves = []
    for unit in manifest["units"]:
        dest, is_file = unit["dest"], unit.get("is_file", False)
        if dest == "folder" or dest.startswith("folder/"):
            target = folder / dest.removeprefix("folder").lstrip("/")
        elif unit["type"] == "volume":
            target = Path("<volume>")  # resolved through Docker when the move runs
        else:
            target = Path(_mapped(unit["host_path"], maps))
        if is_file:
            name = os.path.basename(unit["host_path"])
            inside = (snapshot / dest).parent if dest.startswith("folder/") else snapshot / dest
            moves.append(Move(dest, str(inside / name), str(target.parent), (), True))
        else:
            moves.append(Move(dest, str(snapshot / dest), str(target), tuple(unit["excludes"]),
                              False, tuple(unit.get("volume_names", ())),
                              tuple(unit.get("patterns", ()))))  # fmt: skip
    return tuple(moves)


def restore_argv(move: Move, target: str) -> tuple[str, ...]:
    return rsync.copy_argv(move.source, target, excludes=move.excludes,
                           source_is_file=move.is_file, patterns=move.patterns)  # fmt: skip


def _volume_path(move: Move, project: str, key: str) -> str:
    """The named volume's mountpoint, created (labelled as Compose does) when missing."""
    name = move.volume_names[0] if move.volume_names else f"{project}_{key}"
    inspect = ("docker", "volume", "inspect", "--format", "{{.Mountpoint}}", name)
    try:
        return process.run(inspect).stdout.strip()
    except process.CommandFailed:
        process.run(("docker", "volume", "create",
                     "--label", f"com.docker.compose.project={project}",
                     "--label", f"com.docker.compose.volume={key}", name))  # fmt: skip
        return process.run(inspect).stdout.strip()


def quick_verify(snapshot: Snapshot) -> None:
    """Refuse a snapshot whose listed files are not all there (no content read)."""
    sums = snapshot.path / "SHA256SUMS"
    if not sums.is_file():
        return
    from .checksums import read_sums  # written after every run, once the stack is up

    root = os.fsencode(snapshot.path)
    missing = [rel for rel in read_sums(sums) if not os.path.lexists(os.path.join(root, rel))]
    if missing:
        raise UsageError(
            f"snapshot {snapshot.name} fails a quick verify: {len(missing)} listed file(s) "
            f"missing, first {os.fsdecode(missing[0])!r}; run klink-sync verify {snapshot.name}"
        )


def _rewrite_paths(folder: Path, files: Sequence[Path], maps: Sequence[tuple[str, str]]):
    """Point the restored compose and env files at the remapped host paths."""
    changed = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = text
        for old, new_path in maps:
            new = new.replace(old, new_path)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(str(path))
    return changed


class Restore:
    run_class: type[Run] = Run  # takes the safety snapshot (remote.RemoteRestore: over ssh)

    def __init__(
        self,
        dest: Destination,
        snapshot: Snapshot,
        folder: Path,
        compose: tuple[str, ...],
        maps: Sequence[tuple[str, str]] = (),
        safety: bool = True,
        start: bool = False,
        stop_timeout: int = 120,
        start_timeout: int = 300,
    ):
        self.dest, self.snapshot, self.folder = dest, snapshot, folder
        self.compose, self.maps, self.safety, self.start = compose, maps, safety, start
        self.stop_timeout, self.start_timeout = stop_timeout, start_timeout
        self.manifest = snapshot.manifest()
        self.moves = plan_moves(self.manifest, snapshot.path, folder, maps)

    def _restore_argv(self, move: Move, target: str) -> tuple[str, ...]:
        return restore_argv(move, target)

    def current_stack(self) -> Stack | None:
        """The deployment now in the target folder, if it has a compose file."""
        try:
            files = find_compose_files(self.folder)
        except UsageError:
            return None
        return Stack(self.compose, self.folder, files)

    def dry_run_lines(self) -> list[str]:
        stack = self.current_stack()
        lines = [f"restore snapshot {self.snapshot.name} into {self.folder}"]
        if stack:
            lines.append(f"[stop] {process.show(stack.argv('stop', '-t', str(self.stop_timeout)))}")
            if self.safety:
                lines.append(f"[safety] cold snapshot of {self.folder} into {self.dest.root} "
                             "(marked pre-restore)")  # fmt: skip
        else:
            lines.append(f"[stop] nothing: no compose file in {self.folder} yet")
        for move in self.moves:
            target = move.target if not move.target.startswith("<") else "<docker volume>"
            lines.append(f"[restore] {process.show(self._restore_argv(move, target))}")
        lines.append(f"[start] {'up -d the services running before' if stack else ''}"
                     f"{' (or all, --start)' if self.start else ''}")  # fmt: skip
        return lines

    def _copy_back(self) -> int:
        moved = 0
        project = None
        for move in self.moves:
            target = move.target
            if target.startswith("<"):
                if project is None:
                    project = load_deployment(self.folder, (), os.environ).project_name
                key = next(u["source"] for u in self.manifest["units"] if u["dest"] == move.unit)
                target = _volume_path(move, project, key)
            Path(target).mkdir(parents=True, exist_ok=True)
            result = process.run(self._restore_argv(move, target))
            stats = rsync.parse_stats(result.stdout)
            moved += stats.total_size
            log.info("restored %s -> %s (%d files)", move.unit, target, stats.files)
        return moved

    def execute(self) -> RestoreReport:
        stack = self.current_stack()
        before: tuple[str, ...] = stack.running_services() if stack else ()
        safety_run = None
        if stack and self.safety:
            deployment = load_deployment(self.folder, (), os.environ)
            process.add_secrets(deployment.secrets)
            plan = build_plan(deployment, mode=Mode.COLD, stop_timeout=self.stop_timeout)
            safety_run = self.run_class(plan, self.dest, stack)
            safety_run.prepare()
        safety_report: Report | None = None
        rewritten: list[str] = []
        if stack:
            to_start = tuple(before)
            if self.start:
                to_start = load_deployment(self.folder, (), os.environ).services
            with stopped_stack(stack, to_start, self.stop_timeout, self.start_timeout,
                              recreate=True) as window:
                if safety_run:
                    safety_run.cold_pass()
                window.restart_on_error = False  # from here on the data is being replaced
                moved, rewritten = self._restore_files()
                window.restart_on_error = True
            if safety_run:
                safety_report = safety_run.with_checksums(
                    safety_run.finish(window.times, kind="pre-restore")
                )
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            moved, rewritten = self._restore_files()
        restored = Stack(self.compose, self.folder, find_compose_files(self.folder))
        if self.start and not stack:
            start_fresh(restored, load_deployment(self.folder, (), os.environ).services,
                        self.start_timeout)
        after = restored.running_services()
        return RestoreReport(
            snapshot=self.snapshot.name, folder=str(self.folder), moves=self.moves,
            bytes_restored=moved,
            safety_snapshot=safety_report.snapshot if safety_report else None,
            services_before=before, services_after=after, rewritten=tuple(rewritten),
            hints=self._hints(),
        )  # fmt: skip

    def _restore_files(self) -> tuple[int, list[str]]:
        try:
            moved = self._copy_back()
            compose_files = [self.folder / Path(f).name for f in self.manifest["compose_files"]]
            rewritten = _rewrite_paths(self.folder, [*compose_files, self.folder / ".env"],
                                       self.maps) if self.maps else []  # fmt: skip
        except KlinkSyncError as exc:
            hint = ""
            if self.safety:
                hint = "; the state before the restore is in the pre-restore snapshot"
            raise RunFailed(f"restore failed, the stack is left stopped: {exc}{hint}") from exc
        return moved, rewritten

    def _hints(self) -> tuple[str, ...]:
        images = {v.get("service"): v.get("image", "") for v in self.manifest["volumes"]}
        kbox = [s for s, image in images.items() if s == "kbox" or "k-box" in (image or "")]
        compose = " ".join(self.compose)
        return tuple(KBOX_HINT.format(folder=self.folder, compose=compose, service=s)
                     for s in kbox[:1])  # fmt: skip


def start_fresh(stack: Stack, services: Sequence[str], timeout: float = 300) -> None:
    """First start of a deployment restored into a folder that had none."""
    stack.up()
    down, _ = stack.wait_running(services, timeout)
    if down:
        raise RestartFailed(f"restored, but services did not start: {', '.join(down)}; "
                            f"see: {process.show(stack.argv('logs', *down))}")  # fmt: skip


def run_restore(restore: Restore) -> RestoreReport:
    with destination.locked(restore.dest):
        began = time.monotonic()
        report = restore.execute()
        log.info("restore done in %.1fs", time.monotonic() - began)
        return report
