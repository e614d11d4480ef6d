"""Release what a klink-sync run that died left held on a deployment: the services it had
stopped are started again (never taken for the admin's choice); a restore it left half done
blocks everything but a restore. Every command on a deployment calls this first, under the
deployment's lock, and so does `klink-sync recover` (the boot-time unit)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import state
from .config import DEFAULT_STOP_TIMEOUT  # for a record that names no stop timeout
from .errors import KlinkSyncError, LockedError, RestartFailed, RunFailed, UsageError
from .stack import Stack, finish_stop, thaw

log = logging.getLogger(__name__)

# s: a stop the dead run began may go on in Docker this long past its timeouts (a record
# younger than that: the stop is finished first, or the start would come before its end)
STOP_GRACE = 30


@dataclass(frozen=True)
class Recovered:
    services: tuple[str, ...] = ()  # started again: a dead run had stopped them
    restoring: state.Hold | None = None  # a restore left half done (only a restore goes on)
    thawed: bool = False  # the dead run had frozen them (docker pause), not stopped them

    def message(self) -> str:
        if not self.services:
            return ""
        did = "thawed" if self.thawed else "started again"
        return (f"{did} {', '.join(self.services)}: a klink-sync run that died had "
                f"{'frozen' if self.thawed else 'stopped'} them")  # fmt: skip


def recover(stack: Stack, start_timeout: float, restore: bool = False) -> Recovered:
    """Start what a dead run stopped. A half-done restore: refused, unless `restore` (the
    restore that finishes or undoes it), which then owes the start of its services."""
    hold = state.held(stack.folder)
    if hold is None:
        return Recovered()
    if hold.how == state.RESTORING:
        if restore:
            log.warning("%s and did not finish: restoring now", hold.describe())
            return Recovered(restoring=hold)
        raise RunFailed(
            f"{hold.describe()} and did not finish: the data there is half restored, so "
            f"nothing is started or backed up; finish it (klink-sync restore {hold.snapshot}) "
            "or undo it (klink-sync restore <its -pre-restore snapshot>)"
        )
    if hold.how == state.PAUSED:
        log.warning("%s and did not thaw it: unpausing now", hold.describe())
        # the record is data: only containers of this deployment's own project are thawed
        ours = stack.all_container_ids()
        thawed = thaw(stack, [cid for cid in hold.containers if cid in ours])
        return Recovered(hold.services if thawed else (), thawed=True)
    log.warning("%s and did not start %s again: starting them now", hold.describe(),
                ", ".join(hold.services) or "anything")  # fmt: skip
    if hold.services:
        if _stop_may_go_on(hold):
            finish_stop(stack, hold.stop_timeout or DEFAULT_STOP_TIMEOUT)
        stack.start(hold.services)
        down, _ = stack.wait_running(hold.services, start_timeout)
        if down:
            raise RestartFailed(f"services still down after a klink-sync run died: "
                                f"{', '.join(down)}; start them now with: "
                                f"{stack.start_command(hold.services)}")  # fmt: skip
    state.clear(stack.folder)
    return Recovered(hold.services)


def _stop_may_go_on(hold: state.Hold) -> bool:
    """The dead run's stop may still be under way in Docker: the run did not see it end,
    and Compose, stopping one level of depends_on after another, each for up to the
    timeout, could still be at it (a level a service at most)."""
    if hold.stop_ended:
        return False
    age = state.age_seconds(hold)
    longest = (hold.stop_timeout or DEFAULT_STOP_TIMEOUT) * max(1, len(hold.services))
    return age is None or age < longest + STOP_GRACE


def recover_all(start_timeout: float, compose_commands: Sequence[Sequence[str]]
                ) -> list[tuple[str, Recovered | KlinkSyncError]]:  # fmt: skip
    """Every deployment a dead run left held (the boot-time unit: no config needed, the
    record names the folder and files), each on its own: one that fails is reported and
    the others are still started. The record's compose command runs only if it is one of
    `compose_commands` (a record is data, never a command line to obey)."""
    done: list[tuple[str, Recovered | KlinkSyncError]] = []
    for hold in state.all_held():
        try:
            if tuple(hold.compose) not in {tuple(c) for c in compose_commands}:
                raise UsageError(
                    f"{hold.folder}: the record names compose command "
                    f"{list(hold.compose)!r}, not one klink-sync uses: not run"
                )
            stack = Stack(hold.compose, Path(hold.folder),
                          tuple(Path(f) for f in hold.compose_files))  # fmt: skip
            with state.deployment_locked(Path(hold.folder)):
                done.append((hold.folder, recover(stack, start_timeout)))
        except LockedError:  # a run holds it, alive: what it holds is its own to release
            log.info("%s: a klink-sync run holds it now: left to that run", hold.folder)
        except KlinkSyncError as exc:
            done.append((hold.folder, exc))
        except OSError as exc:
            done.append((hold.folder, KlinkSyncError(f"{hold.folder}: {exc.strerror or exc}")))
    for name in state.remove_stale_logins():
        log.info("removed %s: a killed live run's database login", name)
    return done
