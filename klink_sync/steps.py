"""The command list: every rsync and compose command a backup or restore runs, with its
phase and why. The run asks these functions for each command it executes; `--dry-run`
prints the list `backup_steps`/`restore_steps` make from the same functions, on the data
as it is now (pure: the decisions' inputs come in as records)."""

from __future__ import annotations

import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from . import docker, inflight, process, rsync
from .destination import STAGING, Destination, Snapshot
from .models import Mode, Phase, Source
from .plan import CopyUnit, Plan
from .stack import Stack

# Another hot round runs when this much changed during the last one (at most HOT_ROUNDS).
HOT_REPEAT_BYTES = 16 * 2**20
HOT_ROUNDS = 3


@dataclass(frozen=True)
class Step:
    phase: Phase
    argv: tuple[str, ...]  # exactly what runs; () for a rule decided during the run
    why: str

    def line(self) -> str:
        """As --dry-run prints it."""
        shown = process.show(self.argv) if self.argv else f"({self.why})"
        return f"  [{self.phase.value}] {shown}"


def landing(unit: CopyUnit, source: Source) -> str:
    """The folder in a snapshot that receives the unit's files.

    A file bound from inside the setup folder keeps its place there; any other
    unit fills its own folder (a file from elsewhere lands inside volumes/<name>/).
    """
    if source.is_file and unit.dest.startswith("folder/"):
        return os.path.dirname(unit.dest)
    return unit.dest


def copy_step(
    phase: Phase, unit: CopyUnit, source: Source, dest: Destination, link_to: Snapshot | None,
    latest_folders: Collection[str], *, progress: bool = False, xattrs: bool = True,
    exclude_from: str | None = None, delete: bool = True,
) -> Step:  # fmt: skip
    """One unit's rsync into staging; hot copies list what they wrote (--itemize-changes).
    `link_to`: hard-link unchanged files to that snapshot's copy, where it has the folder;
    `exclude_from`: files copied fresh just before, which --link-dest would otherwise
    replace by the older snapshot's copy (rsync links a file whose size and mtime match)."""
    into = landing(unit, source)
    link_dest = None
    if link_to is not None and into in latest_folders:
        link_dest = dest.path(f"{link_to.rel}/{into}")
    argv = rsync.copy_argv(source.path, dest.rsync_address(dest.path(f"{STAGING}/{into}")),
                           link_dest=link_dest, excludes=unit.excludes,
                           source_is_file=source.is_file, itemize=phase is Phase.HOT,
                           progress=progress, patterns=unit.patterns, xattrs=xattrs,
                           exclude_from=exclude_from if link_dest else None,
                           delete=delete)  # fmt: skip
    why = f"{'hot' if phase is Phase.HOT else 'strict'} copy of {unit.dest}"
    return Step(phase, dest.rsync_argv(argv), why)


def refresh_step(unit: CopyUnit, source: Source, dest: Destination, files_from: str,
                 phase: Phase = Phase.COLD) -> Step:  # fmt: skip
    """Copy again, whatever their size and mtime, the files listed in `files_from`, each
    as a new file (never written through a hard link to an older snapshot). In the cold
    pass: files rsync cannot see changed; in a later hot round: the files its walk found
    changed, and only those (a change landing after the walk is the cold pass's)."""
    root = os.path.dirname(source.path) if source.is_file else source.path
    target = dest.rsync_address(dest.path(f"{STAGING}/{landing(unit, source)}"))
    argv = rsync.refresh_argv(root, target, files_from, itemize=phase is Phase.HOT)
    why = ("files changed during the last round" if phase is Phase.HOT else
           "files rsync cannot see changed (ctime moved, size and mtime kept)")  # fmt: skip
    return Step(phase, dest.rsync_argv(argv), f"{why}: {unit.dest}")


def stop_step(stack: Stack, timeout: int) -> Step:
    return Step(Phase.STOP, stack.argv("stop", "-t", str(timeout)),
                f"stop every service (MariaDB gets {timeout}s to shut down cleanly)")  # fmt: skip


def pause_steps(containers: Sequence[str]) -> list[Step]:
    if not containers:
        return [rule(Phase.PAUSE, "nothing runs: nothing to freeze")]
    return [Step(Phase.PAUSE, docker.pause_argv(containers),
                 "freeze every running container (requests wait, none fails)"),
            rule(Phase.PAUSE, "wait until the block devices under the volumes have no write "
                 f"in flight (at most {inflight.DRAIN_TIMEOUT:g}s)")]  # fmt: skip


def unpause_step(containers: Sequence[str]) -> Step:
    if not containers:
        return rule(Phase.UNPAUSE, "nothing to thaw")
    return Step(Phase.UNPAUSE, docker.unpause_argv(containers), "thaw them, on every path")


def start_step(stack: Stack, services: Sequence[str], recreate: bool = False) -> Step:
    verb = ("up", "-d") if recreate else ("start",)
    return Step(Phase.START, stack.argv(*verb, *services), "start exactly what ran before")


def restore_step(source: str, target: str, dest: Destination, excludes: Sequence[str] = (),
                 is_file: bool = False, patterns: Sequence[str] = (),
                 by_content: bool = True) -> Step:  # fmt: skip
    """One unit of a snapshot back into its place: content compared (--checksum), so a file
    damaged with its size and mtime kept is repaired too. `by_content=False`: the pass that
    sets attributes again (see Restore._copy_back)."""
    argv = rsync.copy_argv(dest.rsync_address(source), target, excludes=tuple(excludes),
                           source_is_file=is_file, patterns=tuple(patterns),
                           by_content=by_content)  # fmt: skip
    why = "restore into" if by_content else "attributes again in"
    return Step(Phase.RESTORE, dest.rsync_argv(argv), f"{why} {target}")


def rule(phase: Phase, why: str) -> Step:
    """A decision only the run can take, printed with its rule."""
    return Step(phase, (), why)


@dataclass(frozen=True)
class Inputs:
    """What the backup's commands depend on, as the preflight found it."""

    sources: dict[str, Source]
    before: tuple[str, ...]  # services running
    latest: Snapshot | None
    latest_folders: frozenset[str]
    xattrs: dict[str, bool]  # unit -> its walk found an xattr or ACL
    seed: bool = True  # the hot pass copies cold units too
    plain: bool = True  # cold copies without -A -X where no walk found any
    containers: tuple[str, ...] = ()  # the running services' containers (what a pause freezes)


def hot_units(plan: Plan, inputs: Inputs) -> tuple[CopyUnit, ...]:
    """What the hot pass copies: nothing when the stack is stopped (copied cold only)."""
    if not plan.mode.copies_hot or not inputs.before:
        return ()
    return plan.hot_pass_units if inputs.seed else plan.hot_units


def hot_steps(hot: Sequence[CopyUnit], dest: Destination, inputs: Inputs,
              progress: bool = False) -> list[Step]:  # fmt: skip
    """The hot rounds' copies, and the rule for the rounds after the first."""
    out = [copy_step(Phase.HOT, u, inputs.sources[u.dest], dest, inputs.latest,
                     inputs.latest_folders, progress=progress) for u in hot]  # fmt: skip
    if hot:
        out.append(rule(Phase.HOT, f"again, the files a walk found changed (rsync --files-from), "
                        f"while {HOT_REPEAT_BYTES // 2**20} MiB or more changed during a round "
                        f"(at most {HOT_ROUNDS} rounds)"))  # fmt: skip
    return out


def backup_steps(plan: Plan, dest: Destination, stack: Stack, inputs: Inputs,
                 progress: bool = False) -> list[Step]:  # fmt: skip
    """The commands of a run, in order, as it would run them on the data as it is now."""
    hot = hot_units(plan, inputs)
    out = hot_steps(hot, dest, inputs, progress)
    frozen = plan.mode is Mode.PAUSE
    out += pause_steps(inputs.containers) if frozen else [stop_step(stack, plan.stop_timeout)]
    out.append(rule(Phase.COLD, "first, files whose ctime shows a change rsync cannot see are "
                    "copied again (rsync --files-from)"))  # fmt: skip
    for unit in plan.units:  # side by side; a unit filled hot needs no --link-dest
        filled = unit in hot
        plain = filled and inputs.plain and not inputs.xattrs[unit.dest]
        out.append(copy_step(Phase.COLD, unit, inputs.sources[unit.dest], dest,
                             None if filled else inputs.latest, inputs.latest_folders,
                             progress=progress, xattrs=not plain))  # fmt: skip
    if frozen:
        out.append(unpause_step(inputs.containers))
    elif inputs.before:
        out.append(start_step(stack, inputs.before))
    else:
        out.append(rule(Phase.START, "nothing ran before: the stack is left stopped"))
    return out


# ------------------------------------------------------------------------------ live


@dataclass(frozen=True)
class LiveInputs:
    """What live mode's own commands depend on, as its preflight found them."""

    database: CopyUnit  # the MariaDB datadir, copied by mariadb-backup
    service: str
    container: str  # the database's running container: its volumes and network are used
    image: str  # the image it runs: mariadb-backup of the server's own version
    program: str  # mariadb-backup, or mariabackup in older images
    host: str  # where the server listens, seen from its own network namespace
    datadir: str  # the datadir inside the container (the volume's target)
    owner: tuple[int, int]  # uid, gid of the datadir on the host: the copy gets them
    scratch: str  # a local folder for mariadb-backup's copy (emptied before and after)
    cnf: str  # the 0600 defaults file holding the login (written just before, removed after)
    name: str  # the throwaway containers' name prefix (removed if a run is interrupted)
    paused: tuple[CopyUnit, ...]  # copied with their services paused (the index)
    paused_ids: tuple[str, ...]  # those services' running containers
    after: tuple[CopyUnit, ...]  # copied after the database, nothing paused (documents)
    image_name: str = ""  # the image as the compose file names it (for messages)

    @property
    def source(self) -> Source:
        """The prepared copy, as the database unit's source for its rsync into staging."""
        return Source(f"{self.scratch}/data")


def database_steps(live: LiveInputs) -> list[Step]:
    """mariadb-backup's backup, prepare and chown, each in a throwaway container."""
    image, program, scratch = live.image, live.program, live.scratch
    return [
        Step(Phase.DATABASE, docker.mariadb_backup_argv(
            image, program, live.container, scratch, live.cnf, live.datadir, live.host,
            f"{live.name}-backup"),
            f"copy the running database of {live.service} (commits wait only while "
            "mariadb-backup holds BACKUP STAGE BLOCK_COMMIT)"),
        Step(Phase.DATABASE, docker.mariadb_prepare_argv(image, program, scratch,
                                                         f"{live.name}-prepare"),
             "apply its redo log: the copy starts as after a clean shutdown"),
        Step(Phase.DATABASE, docker.chown_argv(image, scratch, *live.owner, f"{live.name}-chown"),
             "give the copy the datadir's owner"),
    ]  # fmt: skip


def live_steps(plan: Plan, dest: Destination, inputs: Inputs, live: LiveInputs,
               progress: bool = False) -> list[Step]:  # fmt: skip
    """The commands of a live run, in order: nothing is stopped; the index is copied with
    its service paused, then the database by mariadb-backup, then the documents."""
    hot = tuple(u for u in hot_units(plan, inputs) if u != live.database)
    out = [Step(Phase.DATABASE, docker.which_backup_argv(live.image),
                "the image has mariadb-backup (checked before anything is copied)")]
    out += hot_steps(hot, dest, inputs, progress)

    def strict(units: Sequence[CopyUnit], keep: bool = False) -> list[Step]:
        """As the run copies them: plain (-aH) where no walk found an xattr or ACL."""
        return [copy_step(Phase.COLD, u, inputs.sources[u.dest], dest, None if u in hot
                          else inputs.latest, inputs.latest_folders, progress=progress,
                          xattrs=not (u in hot and inputs.plain and not inputs.xattrs[u.dest]),
                          delete=not keep) for u in units]  # fmt: skip

    if live.paused_ids:
        out += pause_steps(live.paused_ids)
    out += strict(live.paused)
    if live.paused_ids:
        out.append(unpause_step(live.paused_ids))
    out += database_steps(live)
    out.append(copy_step(Phase.COLD, live.database, live.source, dest, None,
                         inputs.latest_folders, progress=progress))  # fmt: skip
    out.append(rule(Phase.DATABASE, f"remove {live.scratch} and the defaults file"))
    out.append(rule(Phase.COLD, "each strict copy first copies again the files whose ctime "
                    "shows a change rsync cannot see (rsync --files-from)"))  # fmt: skip
    return out + strict(live.after, keep=True)
